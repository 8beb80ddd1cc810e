//! The HSC op: `F̃ = (F + act(Y)) Aᵀ + b` with `Y` the hypergraph convolution of the
//! features, and the global embedding `F^g = mean_i(F̃_i) Gᵀ + c`, forward and backward
//! through the CPU path's `hsc_forward` / `hsc_backward`.
//!
//! candle's custom ops take at most three inputs, so the five parameters travel packed in
//! one vector (`Θ`, `A`, `b`, `G`, `c`, each row-major) and the two outputs come back
//! packed in one vector (`F̃` then `F^g`); the packing and unpacking are ordinary candle
//! ops (`cat`, `narrow`, `reshape`), so autograd routes every gradient to its parameter.

use super::host::{self, dispatch, Compute, Saved};
use crate::autograd::{hsc_backward, hsc_forward, Activation, HscCtx, HscParams};
use crate::error::Error;
use crate::hypergraph::HypergraphConfig;
use crate::validate::check_features_shape;
use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CudaStorage, CustomOp3, Layout, Shape, Tensor};
use ndarray::{Array1, Array2, ArrayView2, ArrayView3};

/// The parameters of an HSC layer as candle tensors (PyTorch's `Linear` layout).
#[derive(Clone, Debug)]
pub struct HscTensors {
    /// `Θ: [D, D]`.
    pub theta: Tensor,
    /// `A: [D_out, D]`.
    pub a: Tensor,
    /// `b: [D_out]`.
    pub b: Tensor,
    /// `G: [E, D_out]`, the global linear layer.
    pub g_weight: Tensor,
    /// `c: [E]`.
    pub g_bias: Tensor,
}

impl HscTensors {
    /// Checks every shape against `D` input channels; returns `(D_out, E)`.
    fn dims(&self, d: usize) -> candle_core::Result<(usize, usize)> {
        let bad = |arg: &str, expected: String, got: &[usize]| {
            Err(host::wrap(Error::shape(arg, expected, got)))
        };
        if self.theta.dims() != [d, d] {
            return bad(
                "theta",
                format!("[{d}, {d}] (D of the features)"),
                self.theta.dims(),
            );
        }
        let &[d_out, ad] = self.a.dims() else {
            return bad("a", format!("[D_out, {d}]"), self.a.dims());
        };
        if ad != d || d_out == 0 {
            return bad("a", format!("[D_out >= 1, {d}]"), self.a.dims());
        }
        if self.b.dims() != [d_out] {
            return bad("b", format!("[{d_out}] (D_out of `a`)"), self.b.dims());
        }
        let &[e, gd] = self.g_weight.dims() else {
            return bad("g_weight", format!("[E, {d_out}]"), self.g_weight.dims());
        };
        if gd != d_out || e == 0 {
            return bad(
                "g_weight",
                format!("[E >= 1, {d_out}]"),
                self.g_weight.dims(),
            );
        }
        if self.g_bias.dims() != [e] {
            return bad(
                "g_bias",
                format!("[{e}] (E of `g_weight`)"),
                self.g_bias.dims(),
            );
        }
        Ok((d_out, e))
    }

    /// The five parameters in one vector.
    fn packed(&self) -> candle_core::Result<Tensor> {
        let parts = [&self.theta, &self.a, &self.b, &self.g_weight, &self.g_bias]
            .iter()
            .map(|t| t.flatten_all())
            .collect::<candle_core::Result<Vec<_>>>()?;
        Tensor::cat(&parts, 0)
    }
}

/// Arguments: `features: [B, N, D]`, `weights: [B, N]`, the packed parameters. Output:
/// `[B·N·D_out + B·E]`, the patches then the global embeddings.
struct HscOp {
    cfg: HypergraphConfig,
    activation: Activation,
    d_out: usize,
    e: usize,
    /// Whether the caller gave hyperedge weights (else the weights argument is a
    /// placeholder of ones that the core never sees; see the convolution op).
    weighted: bool,
    save: bool,
    saved: Saved,
}

type Ctx<T> = (HscCtx<T>, HscParams<T>);

impl HscOp {
    /// Unpacks the parameter vector for `d` input channels.
    fn params<T: Compute>(&self, p: &[T], d: usize) -> crate::Result<HscParams<T>> {
        let (d_out, e) = (self.d_out, self.e);
        let sizes = [d * d, d_out * d, d_out, e * d_out, e];
        let total: usize = sizes.iter().sum();
        if p.len() != total {
            return Err(Error::shape(
                "params",
                format!("[{total}] (Θ, A, b, G, c packed)"),
                [p.len()],
            ));
        }
        let mut rest = p;
        let mut take = |len: usize| {
            let (head, tail) = rest.split_at(len);
            rest = tail;
            head.to_vec()
        };
        let m = |r: usize, c: usize, v: Vec<T>| Array2::from_shape_vec((r, c), v).expect("length");
        Ok(HscParams {
            theta: m(d, d, take(sizes[0])),
            a: m(d_out, d, take(sizes[1])),
            b: Array1::from(take(sizes[2])),
            g_weight: m(e, d_out, take(sizes[3])),
            g_bias: Array1::from(take(sizes[4])),
            activation: self.activation,
        })
    }

    fn forward<T: Compute>(
        &self,
        f: ArrayView3<T>,
        w: ArrayView2<T>,
        p: &[T],
    ) -> crate::Result<(Vec<T>, Ctx<T>)> {
        let params = self.params(p, f.dim().2)?;
        let (out, ctx) = hsc_forward(f, self.weighted.then_some(w), &params, &self.cfg)?;
        let mut flat = host::into_vec(out.patches);
        flat.extend(out.global.iter().copied());
        Ok((flat, (ctx, params)))
    }

    #[allow(clippy::too_many_arguments)]
    fn cpu<T: Compute>(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let fd = host::dims_of("features", l1.shape(), 3, "3 dimensions [B, N, D]")?;
        let (b, n, d) = (fd[0], fd[1], fd[2]);
        host::dims_of("weights", l2.shape(), 2, "2 dimensions [B, N]")?;
        host::dims_of("params", l3.shape(), 1, "1 dimension (packed parameters)")?;
        let f = host::read::<T>("features", s1, l1)?;
        let w = host::read::<T>("weights", s2, l2)?;
        let p = host::read::<T>("params", s3, l3)?;
        let fv = ArrayView3::from_shape((b, n, d), &f).expect("length");
        if l2.dims() != [b, n] {
            return Err(host::wrap(Error::shape(
                "weights",
                format!("[{b}, {n}]"),
                l2.dims(),
            )));
        }
        let wv = ArrayView2::from_shape((b, n), &w).expect("length");

        let (out, ctx) = self.forward(fv, wv, &p).map_err(host::wrap)?;
        if self.save {
            self.saved.put(ctx);
        }
        let len = out.len();
        Ok((host::write(out, s1.dtype())?, Shape::from(len)))
    }

    fn backward<T: Compute>(
        &self,
        features: &Tensor,
        weights: &Tensor,
        params: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Tensor, Option<Tensor>, Tensor)> {
        let (b, n, d) = features.dims3()?;
        let f = host::host::<T>(features)?;
        let w = host::host::<T>(weights)?;
        let p = host::host::<T>(params)?;
        let g = host::host::<T>(grad)?;
        let fv = ArrayView3::from_shape((b, n, d), &f).expect("length");
        let wv = ArrayView2::from_shape((b, n), &w).expect("length");
        let wo = self.weighted.then_some(wv);
        let split = b * n * self.d_out;
        let dp = ArrayView3::from_shape((b, n, self.d_out), &g[..split]).expect("length");
        let dg = ArrayView2::from_shape((b, self.e), &g[split..]).expect("length");

        let grads = self.saved.with(|saved: Option<&Ctx<T>>| match saved {
            Some((ctx, params)) => hsc_backward(ctx, fv, wo, params, Some(dp), Some(dg)),
            None => {
                let (_, (ctx, params)) = self.forward(fv, wv, &p)?;
                hsc_backward(&ctx, fv, wo, &params, Some(dp), Some(dg))
            }
        });
        let g = grads.map_err(host::wrap)?;
        let mut dparams = host::into_vec(g.dtheta);
        dparams.extend(g.da.iter().copied());
        dparams.extend(g.db.iter().copied());
        dparams.extend(g.dg_weight.iter().copied());
        dparams.extend(g.dg_bias.iter().copied());

        let (dtype, dev) = (features.dtype(), features.device());
        let plen = dparams.len();
        Ok((
            host::tensor(host::into_vec(g.df), (b, n, d), dtype, dev)?,
            super::conv::dweights_tensor(g.dweights, (b, n), dtype, dev)?,
            host::tensor(dparams, plen, dtype, dev)?,
        ))
    }
}

impl CustomOp3 for HscOp {
    fn name(&self) -> &'static str {
        "hipl-hsc"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let dtype = host::common_dtype(&[
            ("features", s1.dtype()),
            ("weights", s2.dtype()),
            ("params", s3.dtype()),
        ])?;
        dispatch!(dtype, T => self.cpu::<T>(s1, l1, s2, l2, s3, l3))
    }

    /// Not reached through [`hsc`], which composes CUDA tensors from the convolution op
    /// and candle ops ([`hsc_composed`]); the fused op itself is CPU code.
    fn cuda_fwd(
        &self,
        _: &CudaStorage,
        _: &Layout,
        _: &CudaStorage,
        _: &Layout,
        _: &CudaStorage,
        _: &Layout,
    ) -> candle_core::Result<(CudaStorage, Shape)> {
        Err(candle_core::Error::Cuda(
            "hipl-hsc: the fused HSC op runs on the CPU only; call hipl::candle::hsc, which \
             composes CUDA tensors from hypergraph_conv and candle ops"
                .into(),
        ))
    }

    /// Gradients of the features, the weights and the packed parameters from the saved
    /// context (recomputing the forward if there is none).
    fn bwd(
        &self,
        features: &Tensor,
        weights: &Tensor,
        params: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (a, b, c) = dispatch!(features.dtype(), T => {
            self.backward::<T>(features, weights, params, grad)
        })?;
        Ok((Some(a), b, Some(c)))
    }
}

/// The HSC layer through candle: `features: [B, N, D]`, hyperedge `weights: [B, N]`
/// (default all ones) and the parameters → `(F̃: [B, N, D_out], F^g: [B, E])`, both
/// differentiable in every input (the features also through the structure in `Soft` /
/// `StraightThrough` modes). All tensors share one dtype (f32, f64, bf16 or f16; bf16/f16
/// compute in f32).
///
/// When any input tracks gradients the forward keeps its context alive with the graph:
/// the convolution's (see [`super::hypergraph_conv`]) plus `Y` and `F + act(Y)`
/// (`[B, N, D]` each) and a host copy of the parameters.
pub fn hsc(
    features: &Tensor,
    weights: Option<&Tensor>,
    params: &HscTensors,
    activation: Activation,
    cfg: &HypergraphConfig,
) -> candle_core::Result<(Tensor, Tensor)> {
    let mut dtypes = vec![
        ("features", features.dtype()),
        ("theta", params.theta.dtype()),
        ("a", params.a.dtype()),
        ("b", params.b.dtype()),
        ("g_weight", params.g_weight.dtype()),
        ("g_bias", params.g_bias.dtype()),
    ];
    dtypes.extend(weights.map(|w| ("weights", w.dtype())));
    let dtype = host::common_dtype(&dtypes)?;
    let (b, n, d) = check_features_shape("features", features.dims()).map_err(host::wrap)?;
    let (d_out, e) = params.dims(d)?;
    let w = match weights {
        Some(w) if w.dims() != [b, n] => {
            return Err(host::wrap(Error::shape(
                "weights",
                format!("[{b}, {n}]"),
                w.dims(),
            )))
        }
        Some(w) => w.clone(),
        None => Tensor::ones((b, n), dtype, features.device())?,
    };
    // LIMITATION: CUDA tensors take the composed path (the convolution on the hipl kernels,
    // the rest on candle's): several launches and `[B, N, D]` temporaries instead of one fused
    // op; a fused HSC kernel would lift it.
    if features.device().is_cuda() {
        return hsc_composed(features, weights, params, activation, cfg);
    }
    let packed = params.packed()?;
    let track = features.track_op() || w.track_op() || packed.track_op();
    let op = HscOp {
        cfg: *cfg,
        activation,
        d_out,
        e,
        weighted: weights.is_some(),
        save: track,
        saved: Saved::default(),
    };
    let out = if track {
        features.apply_op3(&w, &packed, op)?
    } else {
        features.apply_op3_no_bwd(&w, &packed, &op)?
    };
    let split = b * n * d_out;
    let patches = out.narrow(0, 0, split)?.reshape((b, n, d_out))?;
    let global = out.narrow(0, split, b * e)?.reshape((b, e))?;
    Ok((patches, global))
}

/// The HSC layer composed from [`super::hypergraph_conv`] and candle ops (activation, the
/// two linear layers, the mean over patches): what [`hsc`] runs for CUDA tensors, where the
/// convolution runs on the hipl kernels and the rest on candle's. On the CPU it gives the
/// fused op's values and gradients (more slowly); bf16/f16 tensors round after each candle
/// op instead of once, as candle's own layers do. Arguments as for [`hsc`].
pub fn hsc_composed(
    features: &Tensor,
    weights: Option<&Tensor>,
    params: &HscTensors,
    activation: Activation,
    cfg: &HypergraphConfig,
) -> candle_core::Result<(Tensor, Tensor)> {
    let (_, _, d) = check_features_shape("features", features.dims()).map_err(host::wrap)?;
    params.dims(d)?;
    let y = super::hypergraph_conv(features, None, &params.theta, weights, cfg)?;
    let act = match activation {
        Activation::Identity => y,
        Activation::Relu => y.relu()?,
        // max(x, slope x), the CPU path's definition (also for slopes above 1).
        Activation::LeakyRelu(slope) => y.maximum(&(&y * slope)?)?,
        Activation::GeluTanh => y.gelu()?,
    };
    let patches = (features + act)?
        .broadcast_matmul(&params.a.t()?)?
        .broadcast_add(&params.b)?;
    let global = patches
        .mean(1)?
        .matmul(&params.g_weight.t()?)?
        .broadcast_add(&params.g_bias)?;
    Ok((patches, global))
}
