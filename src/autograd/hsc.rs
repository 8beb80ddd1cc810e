//! Op: the hypergraph semantic convolution (HSC) layer
//! `F̃ = (F + act(Y)) Aᵀ + b` with `Y` the hypergraph convolution of `F`, and its global
//! pooling `F^g = mean_i(F̃_i) Gᵀ + c`.

use super::conv::{hypergraph_conv_backward, hypergraph_conv_forward, HypergraphConvCtx};
use crate::cpu::gemm::{gemm, Op};
use crate::error::{Error, Result};
use crate::hypergraph::HypergraphConfig;
use crate::real::Real;
use crate::validate::{check_finite, check_shape, contiguous, flat};
use ndarray::{Array1, Array2, Array3, ArrayView2, ArrayView3, Axis};

/// The activation `act` applied to the convolution's output.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Activation {
    Identity,
    Relu,
    /// `max(x, slope x)`.
    LeakyRelu(f64),
    /// GELU, tanh approximation (as candle's `gelu`).
    GeluTanh,
}

impl Activation {
    /// `act(x)` and `act'(x)`.
    pub fn eval<T: Real>(self, x: T) -> (T, T) {
        match self {
            Activation::Identity => (x, T::one()),
            Activation::Relu => {
                if x > T::zero() {
                    (x, T::one())
                } else {
                    (T::zero(), T::zero())
                }
            }
            Activation::LeakyRelu(s) => {
                if x > T::zero() {
                    (x, T::one())
                } else {
                    (x * T::of(s), T::of(s))
                }
            }
            Activation::GeluTanh => {
                let k = T::of((2.0 / std::f64::consts::PI).sqrt());
                let c = T::of(0.044715);
                let half = T::of(0.5);
                let inner = k * (x + c * x * x * x);
                let t = inner.tanh();
                let d_inner = k * (T::one() + T::of(3.0) * c * x * x);
                let value = half * x * (T::one() + t);
                let grad = half * (T::one() + t) + half * x * (T::one() - t * t) * d_inner;
                (value, grad)
            }
        }
    }
}

/// Parameters of an HSC layer with `D` input channels, `D_out` patch channels and `E`
/// global channels.
#[derive(Clone, Debug)]
pub struct HscParams<T> {
    /// `Θ: [D, D]`.
    pub theta: Array2<T>,
    /// `A: [D_out, D]` (PyTorch's `Linear` layout).
    pub a: Array2<T>,
    /// `b: [D_out]`.
    pub b: Array1<T>,
    /// `G: [E, D_out]`, the global linear layer.
    pub g_weight: Array2<T>,
    /// `c: [E]`.
    pub g_bias: Array1<T>,
    pub activation: Activation,
}

/// Outputs of the HSC layer.
#[derive(Clone, Debug)]
pub struct HscOutput<T> {
    /// `F̃: [B, N, D_out]`.
    pub patches: Array3<T>,
    /// `F^g: [B, E]`.
    pub global: Array2<T>,
}

/// Saved by [`hsc_forward`].
#[derive(Clone, Debug)]
pub struct HscCtx<T> {
    conv: HypergraphConvCtx<T>,
    /// `Y: [B, N, D]`, the convolution's output.
    y: Array3<T>,
    /// `Q = F + act(Y)`.
    q: Array3<T>,
    /// `mean_i F̃_i: [B, D_out]`.
    mean: Array2<T>,
}

/// Gradients of every input of the HSC layer.
#[derive(Clone, Debug)]
pub struct HscGrads<T> {
    pub df: Array3<T>,
    pub dtheta: Array2<T>,
    /// Gradient of the hyperedge weights, when they were given.
    pub dweights: Option<Array2<T>>,
    pub da: Array2<T>,
    pub db: Array1<T>,
    pub dg_weight: Array2<T>,
    pub dg_bias: Array1<T>,
}

impl<T: Real> HscParams<T> {
    fn validate(&self, d: usize) -> Result<(usize, usize)> {
        check_shape("theta", self.theta.shape(), &[d, d])?;
        let d_out = self.a.nrows();
        if self.a.ncols() != d || d_out == 0 {
            return Err(Error::shape(
                "a",
                format!("[D_out >= 1, {d}]"),
                self.a.shape(),
            ));
        }
        check_shape("b", self.b.shape(), &[d_out])?;
        let e = self.g_weight.nrows();
        if self.g_weight.ncols() != d_out || e == 0 {
            return Err(Error::shape(
                "g_weight",
                format!("[E >= 1, {d_out}]"),
                self.g_weight.shape(),
            ));
        }
        check_shape("g_bias", self.g_bias.shape(), &[e])?;
        // Checked in place (a copy only for non-standard layouts), with 2-D indices.
        check_finite("a", flat(&contiguous(&self.a)), self.a.shape())?;
        check_finite(
            "g_weight",
            flat(&contiguous(&self.g_weight)),
            self.g_weight.shape(),
        )?;
        check_finite("b", flat(&contiguous(&self.b)), self.b.shape())?;
        check_finite(
            "g_bias",
            flat(&contiguous(&self.g_bias)),
            self.g_bias.shape(),
        )?;
        Ok((d_out, e))
    }
}

/// HSC forward: `features: [B, N, D]`, `weights: [B, N]` (default ones).
pub fn hsc_forward<T: Real>(
    features: ArrayView3<T>,
    weights: Option<ArrayView2<T>>,
    params: &HscParams<T>,
    cfg: &HypergraphConfig,
) -> Result<(HscOutput<T>, HscCtx<T>)> {
    let d = features.dim().2;
    let (d_out, e) = params.validate(d)?;
    let (y, conv) = hypergraph_conv_forward(features, None, params.theta.view(), weights, cfg)?;
    let (b, n, _) = y.dim();

    let act = params.activation;
    let q = &features + &y.mapv(|v| act.eval(v).0);
    let patches = linear(
        q.view()
            .into_shape_with_order((b * n, d))
            .expect("contiguous"),
        &params.a,
        &params.b,
    )
    .into_shape_with_order((b, n, d_out))
    .expect("length");
    let mean = patches.mean_axis(Axis(1)).expect("N >= 2");
    let global = linear(mean.view(), &params.g_weight, &params.g_bias);
    debug_assert_eq!(global.ncols(), e);
    Ok((HscOutput { patches, global }, HscCtx { conv, y, q, mean }))
}

/// `x Wᵀ + bias` for `x: [M, K]`, `W: [O, K]`.
fn linear<T: Real>(x: ArrayView2<T>, w: &Array2<T>, bias: &Array1<T>) -> Array2<T> {
    let (m, k) = x.dim();
    let o = w.nrows();
    let xs = contiguous(&x);
    let ws = contiguous(w);
    let mut out = vec![T::zero(); m * o];
    gemm(
        &mut out,
        (m, k, o),
        flat(&xs),
        Op::N,
        flat(&ws),
        Op::T,
        T::one(),
        false,
        true,
    );
    let mut out = Array2::from_shape_vec((m, o), out).expect("length");
    out += bias;
    out
}

/// HSC backward from the gradients of `F̃` and/or `F^g` (either may be absent).
pub fn hsc_backward<T: Real>(
    ctx: &HscCtx<T>,
    features: ArrayView3<T>,
    weights: Option<ArrayView2<T>>,
    params: &HscParams<T>,
    d_patches: Option<ArrayView3<T>>,
    d_global: Option<ArrayView2<T>>,
) -> Result<HscGrads<T>> {
    let (b, n, d) = features.dim();
    let (d_out, e) = params.validate(d)?;
    let mut dp = Array3::<T>::zeros((b, n, d_out));
    if let Some(g) = d_patches {
        check_shape("d_patches", g.shape(), &[b, n, d_out])?;
        check_finite("d_patches", flat(&contiguous(&g)), g.shape())?;
        dp += &g;
    }
    let (dg_weight, dg_bias) = match d_global {
        Some(g) => {
            check_shape("d_global", g.shape(), &[b, e])?;
            check_finite("d_global", flat(&contiguous(&g)), g.shape())?;
            // F^g = m Gᵀ + c: dm = dF^g G, dG = dF^gᵀ m; each F̃_i gets dm / N.
            let dm = g.dot(&params.g_weight) / T::of(n as f64);
            dp += &dm.insert_axis(Axis(1));
            (g.t().dot(&ctx.mean), g.sum_axis(Axis(0)))
        }
        None => (Array2::zeros((e, d_out)), Array1::zeros(e)),
    };

    let q2 = ctx
        .q
        .view()
        .into_shape_with_order((b * n, d))
        .expect("contiguous");
    let dp2 = dp
        .view()
        .into_shape_with_order((b * n, d_out))
        .expect("contiguous");
    let da = dp2.t().dot(&q2);
    let db = dp2.sum_axis(Axis(0));
    let dq = dp2
        .dot(&params.a)
        .into_shape_with_order((b, n, d))
        .expect("length");

    let act = params.activation;
    let mut dy = dq.clone();
    dy.zip_mut_with(&ctx.y, |g, &y| *g *= act.eval(y).1);
    let conv = hypergraph_conv_backward(
        &ctx.conv,
        features,
        None,
        params.theta.view(),
        weights,
        dy.view(),
    )?;
    let df = conv.df + &dq;
    Ok(HscGrads {
        df,
        dtheta: conv.dtheta,
        dweights: conv.dweights,
        da,
        db,
        dg_weight,
        dg_bias,
    })
}
