//! The incidence op: features `[B, N, D]` → dense incidence `H: [B, N, N]` (row = vertex,
//! column = hyperedge), differentiable in `Soft` and `StraightThrough` modes.

use super::host::{self, dispatch, Compute, Saved};
use crate::autograd::{incidence_backward, incidence_forward, IncidenceCtx};
use crate::hypergraph::{Hypergraph, HypergraphConfig, IncidenceMode};
use crate::validate::check_features_shape;
use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CudaStorage, CustomOp1, Layout, Shape, Tensor};
use ndarray::ArrayView3;

/// Features → dense incidence. The forward saves the hypergraph (for `Soft` mode an
/// `N × N` matrix per image) for the backward.
struct IncidenceOp {
    cfg: HypergraphConfig,
    saved: Saved,
}

type Ctx<T> = (Hypergraph<T>, IncidenceCtx);

impl IncidenceOp {
    fn forward<T: Compute>(&self, features: ArrayView3<T>) -> crate::Result<(Vec<T>, Ctx<T>)> {
        let (hg, ctx) = incidence_forward(features, &self.cfg)?;
        Ok((hg.to_dense(), (hg, ctx)))
    }

    fn cpu<T: Compute>(
        &self,
        s: &CpuStorage,
        l: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let dims = host::dims_of("features", l.shape(), 3, "3 dimensions [B, N, D]")?;
        let (b, n, d) = (dims[0], dims[1], dims[2]);
        let f = host::read::<T>("features", s, l)?;
        let view = ArrayView3::from_shape((b, n, d), &f).expect("length checked by candle");
        let (h, ctx) = self.forward(view).map_err(host::wrap)?;
        self.saved.put(ctx);
        Ok((host::write(h, s.dtype())?, Shape::from((b, n, n))))
    }

    fn backward<T: Compute>(
        &self,
        features: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Tensor> {
        let (b, n, d) = features.dims3()?;
        let f = host::host::<T>(features)?;
        let fv = ArrayView3::from_shape((b, n, d), &f).expect("length");
        let dh = host::host::<T>(grad)?;
        let dhv = ArrayView3::from_shape((b, n, n), &dh).expect("length");
        let df = self.saved.with(|ctx: Option<&Ctx<T>>| match ctx {
            Some((hg, ctx)) => incidence_backward(hg, ctx, fv, dhv),
            None => {
                let (_, (hg, ctx)) = self.forward(fv)?;
                incidence_backward(&hg, &ctx, fv, dhv)
            }
        });
        let df = df.map_err(host::wrap)?;
        host::tensor(
            host::into_vec(df),
            (b, n, d),
            features.dtype(),
            features.device(),
        )
    }
}

impl CustomOp1 for IncidenceOp {
    fn name(&self) -> &'static str {
        "hipl-incidence"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        host::common_dtype(&[("features", s.dtype())])?;
        dispatch!(s.dtype(), T => self.cpu::<T>(s, l))
    }

    /// The same forward on the GPU, on candle's stream and buffers (`candle-cuda`).
    fn cuda_fwd(&self, s: &CudaStorage, l: &Layout) -> candle_core::Result<(CudaStorage, Shape)> {
        host::common_dtype(&[("features", s.dtype())])?;
        #[cfg(feature = "candle-cuda")]
        return super::cuda::incidence(&self.cfg, s, l);
        #[cfg(not(feature = "candle-cuda"))]
        {
            let _ = l;
            Err(host::no_cuda(self.name()))
        }
    }

    /// `Hard`: no gradient. `Soft` / `StraightThrough`: `dF` from `dH` through the
    /// similarity and the row normalisation.
    fn bwd(
        &self,
        arg: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        if self.cfg.mode == IncidenceMode::Hard {
            return Ok(None);
        }
        dispatch!(arg.dtype(), T => self.backward::<T>(arg, grad)).map(Some)
    }
}

/// The dense incidence `H: [B, N, N]` of the hypergraph built from `features: [B, N, D]`
/// under `cfg`, as a candle tensor of the features' dtype.
///
/// In `Soft` mode `H = σ(alpha (S − tau))` (masked by the rule's selection) and gradients
/// reach the features; in `StraightThrough` mode the forward is binary and the backward
/// uses the sigmoid's slope; in `Hard` mode no gradient flows. The forward keeps the
/// hypergraph alive with the graph for the backward.
pub fn incidence(features: &Tensor, cfg: &HypergraphConfig) -> candle_core::Result<Tensor> {
    host::common_dtype(&[("features", features.dtype())])?;
    check_features_shape("features", features.dims()).map_err(host::wrap)?;
    let op = IncidenceOp {
        cfg: *cfg,
        saved: Saved::default(),
    };
    if features.track_op() && cfg.mode != IncidenceMode::Hard {
        features.apply_op1(op)
    } else {
        features.apply_op1_no_bwd(&op)
    }
}
