//! The hypergraph convolution op: the hypergraph built from `features`, then
//! `Y = Dv^-1/2 H W De^-1 Hᵀ Dv^-1/2 X Θ` (or the random-walk form), with gradients for the
//! features (through `X = F`, and through the structure in `Soft` / `StraightThrough`
//! modes), a separate `X`, `Θ` and the hyperedge weights.

use super::host::{self, dispatch, Compute, Saved};
use crate::autograd::{
    build_hypergraph, conv, hypergraph_conv_backward, hypergraph_conv_forward, HypergraphConvCtx,
};
use crate::error::Error;
use crate::hypergraph::HypergraphConfig;
use crate::validate::check_features_shape;
use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CudaStorage, CustomOp3, Layout, Shape, Tensor};
use ndarray::{Array2, Array3, ArrayView2, ArrayView3};
use std::borrow::Cow;

/// Arguments: `fx: [B, N, D]` (the features, also the convolved `X`) or `[B, N, D + Dx]`
/// (features and a separate `X` side by side on the last axis, at most three inputs being
/// what candle's custom ops take), `theta: [Dx, C]`, `weights: [B, N]`.
struct ConvOp {
    cfg: HypergraphConfig,
    /// `Dx` when a separate `X` is packed after the features.
    x_channels: Option<usize>,
    /// Whether the caller gave hyperedge weights. Without them the weights argument is a
    /// placeholder of ones that the core never sees (so that, with hard incidence, it takes
    /// the lean backward and computes no weight gradient).
    weighted: bool,
    /// Whether the forward keeps its context for a backward.
    save: bool,
    saved: Saved,
}

/// Splits `[B, N, D + Dx]` rows into the features `[B, N, D]` and `X: [B, N, Dx]`.
fn split<T: Copy>(fx: &[T], rows: usize, d: usize, dx: usize) -> (Vec<T>, Vec<T>) {
    let mut f = Vec::with_capacity(rows * d);
    let mut x = Vec::with_capacity(rows * dx);
    for row in fx.chunks(d + dx) {
        f.extend_from_slice(&row[..d]);
        x.extend_from_slice(&row[d..]);
    }
    (f, x)
}

/// The hyperedge weights' gradient as a tensor, when the core computed one (it does
/// exactly when it was given weights).
pub(super) fn dweights_tensor<T: Compute>(
    dw: Option<Array2<T>>,
    (b, n): (usize, usize),
    dtype: candle_core::DType,
    dev: &candle_core::Device,
) -> candle_core::Result<Option<Tensor>> {
    dw.map(|dw| host::tensor(host::into_vec(dw), (b, n), dtype, dev))
        .transpose()
}

/// The inverse of [`split`].
fn join<T: Copy>(f: &[T], x: &[T], d: usize, dx: usize) -> Vec<T> {
    let mut out = Vec::with_capacity(f.len() + x.len());
    for (fr, xr) in f.chunks(d).zip(x.chunks(dx)) {
        out.extend_from_slice(fr);
        out.extend_from_slice(xr);
    }
    out
}

/// Host copies of the op's inputs, features and `X` apart.
struct Inputs<'a, T: Clone> {
    dims: (usize, usize, usize),
    f: Cow<'a, [T]>,
    /// A separate `X: [B, N, Dx]` with its `Dx`.
    x: Option<(Vec<T>, usize)>,
    theta: Cow<'a, [T]>,
    theta_dims: (usize, usize),
    /// The caller's weights; `None` when the op was given the placeholder of ones.
    w: Option<Cow<'a, [T]>>,
}

/// Views of the features, `X` (if separate), `Θ` and the weights (if the caller gave them).
type Views<'a, T> = (
    ArrayView3<'a, T>,
    Option<ArrayView3<'a, T>>,
    ArrayView2<'a, T>,
    Option<ArrayView2<'a, T>>,
);

impl<T: Compute> Inputs<'_, T> {
    fn views(&self) -> Views<'_, T> {
        let (b, n, d) = self.dims;
        let f = ArrayView3::from_shape((b, n, d), &self.f).expect("length");
        let x = self
            .x
            .as_ref()
            .map(|(x, dx)| ArrayView3::from_shape((b, n, *dx), x.as_slice()).expect("length"));
        let theta = ArrayView2::from_shape(self.theta_dims, &self.theta).expect("length");
        let w = self
            .w
            .as_ref()
            .map(|w| ArrayView2::from_shape((b, n), w.as_ref()).expect("length"));
        (f, x, theta, w)
    }
}

impl ConvOp {
    /// Separates the packed `fx` into features and `X` (`fx` has `d_total` channels).
    fn inputs<'a, T: Compute>(
        &self,
        fx: Cow<'a, [T]>,
        (b, n, d_total): (usize, usize, usize),
        theta: Cow<'a, [T]>,
        theta_dims: (usize, usize),
        w: Cow<'a, [T]>,
    ) -> Inputs<'a, T> {
        let w = self.weighted.then_some(w);
        match self.x_channels {
            Some(dx) => {
                let d = d_total - dx;
                let (f, x) = split(&fx, b * n, d, dx);
                Inputs {
                    dims: (b, n, d),
                    f: Cow::Owned(f),
                    x: Some((x, dx)),
                    theta,
                    theta_dims,
                    w,
                }
            }
            None => Inputs {
                dims: (b, n, d_total),
                f: fx,
                x: None,
                theta,
                theta_dims,
                w,
            },
        }
    }

    fn forward<T: Compute>(
        &self,
        inp: &Inputs<T>,
    ) -> crate::Result<(Array3<T>, Option<HypergraphConvCtx<T>>)> {
        let (f, x, theta, w) = inp.views();
        if self.save {
            let (y, ctx) = hypergraph_conv_forward(f, x, theta, w, &self.cfg)?;
            return Ok((y, Some(ctx)));
        }
        let hg = build_hypergraph(f, &self.cfg)?;
        Ok((conv(&hg, x.unwrap_or(f), theta, w)?, None))
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
        let td = host::dims_of("theta", l2.shape(), 2, "2 dimensions [D, C]")?;
        if l3.dims() != [fd[0], fd[1]] {
            let expected = format!("[{}, {}] (B and N of the features)", fd[0], fd[1]);
            return Err(host::wrap(Error::shape("weights", expected, l3.dims())));
        }
        let fx = host::read::<T>("features", s1, l1)?;
        let theta = host::read::<T>("theta", s2, l2)?;
        let w = host::read::<T>("weights", s3, l3)?;
        let inp = self.inputs(fx, (fd[0], fd[1], fd[2]), theta, (td[0], td[1]), w);

        let (y, ctx) = self.forward(&inp).map_err(host::wrap)?;
        if let Some(ctx) = ctx {
            self.saved.put(ctx);
        }
        let shape = Shape::from(y.dim());
        Ok((host::write(host::into_vec(y), s1.dtype())?, shape))
    }

    fn backward<T: Compute>(
        &self,
        fx: &Tensor,
        theta: &Tensor,
        weights: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Tensor, Tensor, Option<Tensor>)> {
        let dims = fx.dims3()?;
        let theta_dims = theta.dims2()?;
        let inp = self.inputs(
            Cow::Owned(host::host::<T>(fx)?),
            dims,
            Cow::Owned(host::host::<T>(theta)?),
            theta_dims,
            Cow::Owned(host::host::<T>(weights)?),
        );
        let (b, n, _) = inp.dims;
        let dy = host::host::<T>(grad)?;
        let dyv = ArrayView3::from_shape((b, n, theta_dims.1), &dy).expect("length");
        let (f, x, th, w) = inp.views();
        let grads = self
            .saved
            .with(|ctx: Option<&HypergraphConvCtx<T>>| match ctx {
                Some(ctx) => hypergraph_conv_backward(ctx, f, x, th, w, dyv),
                None => {
                    let (_, ctx) = hypergraph_conv_forward(f, x, th, w, &self.cfg)?;
                    hypergraph_conv_backward(&ctx, f, x, th, w, dyv)
                }
            });
        let g = grads.map_err(host::wrap)?;

        let dfx = match (self.x_channels, g.dx) {
            (Some(dxc), Some(dx)) => {
                join(&host::into_vec(g.df), &host::into_vec(dx), inp.dims.2, dxc)
            }
            _ => host::into_vec(g.df),
        };
        let (dtype, dev) = (fx.dtype(), fx.device());
        Ok((
            host::tensor(dfx, dims, dtype, dev)?,
            host::tensor(host::into_vec(g.dtheta), theta_dims, dtype, dev)?,
            dweights_tensor(g.dweights, (b, n), dtype, dev)?,
        ))
    }
}

impl CustomOp3 for ConvOp {
    fn name(&self) -> &'static str {
        "hipl-hypergraph-conv"
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
            ("theta", s2.dtype()),
            ("weights", s3.dtype()),
        ])?;
        dispatch!(dtype, T => self.cpu::<T>(s1, l1, s2, l2, s3, l3))
    }

    /// The same forward on the GPU, on candle's stream and buffers (`candle-cuda`).
    fn cuda_fwd(
        &self,
        s1: &CudaStorage,
        l1: &Layout,
        s2: &CudaStorage,
        l2: &Layout,
        s3: &CudaStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CudaStorage, Shape)> {
        host::common_dtype(&[
            ("features", s1.dtype()),
            ("theta", s2.dtype()),
            ("weights", s3.dtype()),
        ])?;
        #[cfg(feature = "candle-cuda")]
        return super::cuda::hypergraph_conv(&self.cfg, self.x_channels, s1, l1, s2, l2, s3, l3);
        #[cfg(not(feature = "candle-cuda"))]
        {
            let _ = (l1, l2, l3);
            Err(host::no_cuda(self.name()))
        }
    }

    /// Gradients of the packed features (and `X`), `Θ` and the weights (none for the
    /// placeholder of ones), from the saved context (recomputing the forward if there is
    /// none).
    fn bwd(
        &self,
        fx: &Tensor,
        theta: &Tensor,
        weights: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (a, b, c) = dispatch!(fx.dtype(), T => self.backward::<T>(fx, theta, weights, grad))?;
        Ok((Some(a), Some(b), c))
    }
}

/// Hypergraph convolution through candle: builds the hypergraph of `features: [B, N, D]`
/// under `cfg` and convolves `x: [B, N, Dx]` (default: the features) with
/// `theta: [Dx, C]` and hyperedge weights `weights: [B, N]` (default all ones, must be
/// `>= 0`). Returns `Y: [B, N, C]` in the inputs' dtype (all inputs share one of f32, f64,
/// bf16, f16; bf16/f16 compute in f32).
///
/// Every input is differentiable through candle's autograd. When any input tracks
/// gradients, the forward keeps its context alive with the graph, so the backward does not
/// recompute it: the hypergraph and its degree scalings, plus, with `weights` given or in
/// `Soft` / `StraightThrough` mode, `XΘ`, `HᵀZ`, `HE` (three `[B, N, C]` buffers; and
/// `[B, N, N]` in `Soft` mode). Without `weights` under hard incidence the backward streams
/// column blocks (see [`crate::conv_backward`]) and gives no weight gradient.
pub fn hypergraph_conv(
    features: &Tensor,
    x: Option<&Tensor>,
    theta: &Tensor,
    weights: Option<&Tensor>,
    cfg: &HypergraphConfig,
) -> candle_core::Result<Tensor> {
    let mut dtypes = vec![("features", features.dtype()), ("theta", theta.dtype())];
    dtypes.extend(x.map(|x| ("x", x.dtype())));
    dtypes.extend(weights.map(|w| ("weights", w.dtype())));
    let dtype = host::common_dtype(&dtypes)?;
    let (b, n, _) = check_features_shape("features", features.dims()).map_err(host::wrap)?;
    let fx = match x {
        Some(x) => {
            let xd = x.dims();
            if xd.len() != 3 || xd[0] != b || xd[1] != n || xd[2] == 0 {
                let expected = format!("[{b}, {n}, Dx >= 1] (B and N of the features)");
                return Err(host::wrap(Error::shape("x", expected, xd)));
            }
            Tensor::cat(&[features, x], 2)?
        }
        None => features.clone(),
    };
    let w = match weights {
        Some(w) => w.clone(),
        None => Tensor::ones((b, n), dtype, features.device())?,
    };
    let track = fx.track_op() || theta.track_op() || w.track_op();
    let op = ConvOp {
        cfg: *cfg,
        x_channels: x.map(|x| x.dims()[2]),
        weighted: weights.is_some(),
        save: track,
        saved: Saved::default(),
    };
    if track {
        fx.apply_op3(theta, &w, op)
    } else {
        fx.apply_op3_no_bwd(theta, &w, &op)
    }
}
