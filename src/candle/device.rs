//! The forwards of the candle ops on a [`Device`]: what their `cuda_fwd` runs on candle's own
//! CUDA stream and buffers (feature `candle-cuda`), and what the tests run on the host
//! emulator against the ops' CPU forward, so the GPU path's logic is checked without a GPU.
//!
//! Everything is f32, as on the CPU, where the ops widen bf16/f16 to f32 and round the
//! results back: `cuda_fwd` does the widening and rounding with candle's cast kernels on the
//! GPU. Inputs are checked on the device (shapes, NaN/infinity, negative weights, zero-norm
//! feature rows, the configuration), giving the CPU forward's errors; only the index of a bad
//! value, and the degrees under `ZeroDegree::Error`, come back to the host.

use crate::cuda::ops::incidence::GemmUnits;
use crate::cuda::ops::norm::check_values;
use crate::cuda::ops::Shape;
use crate::cuda::{build_on_device, conv_device, Device, DeviceBuffer};
use crate::error::{Error, Result};
use crate::hypergraph::HypergraphConfig;

/// The dense incidence `H: [B, N, N]` (row = vertex, column = hyperedge) of the hypergraph
/// built from `features: [B, N, D]`: the forward of [`super::incidence`].
pub fn incidence_forward(
    dev: &Device,
    features: &DeviceBuffer<f32>,
    shape: Shape,
    cfg: &HypergraphConfig,
) -> Result<DeviceBuffer<f32>> {
    crate::validate::check_features_shape("features", &[shape.b, shape.n, shape.d])?;
    build_on_device(dev, features, shape, cfg, GemmUnits::Simt)?.into_dense()
}

/// The inputs of [`hypergraph_conv_forward`], all f32 and row-major.
pub struct ConvInputs<'a> {
    /// `[B, N, D]`: the hypergraph is built from them, and they are `X` when `x` is `None`.
    pub features: &'a DeviceBuffer<f32>,
    /// `[B, N, Dx]`, the convolved signal, with `Dx`.
    pub x: Option<(&'a DeviceBuffer<f32>, usize)>,
    /// `Θ: [Dx, C]` with its dimensions.
    pub theta: (&'a DeviceBuffer<f32>, usize, usize),
    /// The hyperedge weights `[B, N]`, `>= 0`.
    pub weights: &'a DeviceBuffer<f32>,
}

/// `Y = Dv^-1/2 H W De^-1 Hᵀ Dv^-1/2 X Θ` (or the random-walk form) with the hypergraph
/// built from the features: the forward of [`super::hypergraph_conv`], `[B, N, C]`.
pub fn hypergraph_conv_forward(
    dev: &Device,
    inputs: &ConvInputs<'_>,
    shape: Shape,
    cfg: &HypergraphConfig,
) -> Result<DeviceBuffer<f32>> {
    let (b, n) = (shape.b, shape.n);
    crate::validate::check_features_shape("features", &[b, n, shape.d])?;
    let (x, dx) = inputs.x.unwrap_or((inputs.features, shape.d));
    if dx == 0 {
        return Err(Error::shape("x", format!("[{b}, {n}, D >= 1]"), [b, n, dx]));
    }
    let (theta, rows, c) = inputs.theta;
    if rows != dx || c == 0 {
        return Err(Error::shape(
            "theta",
            format!("[{dx}, C >= 1] (rows = x's D)"),
            [rows, c],
        ));
    }
    if inputs.x.is_some() {
        check_values(dev, "x", x, &[b, n, dx], None)?;
    }
    check_values(dev, "theta", theta, &[rows, c], None)?;
    check_values(
        dev,
        "weights",
        inputs.weights,
        &[b, n],
        Some("hyperedge weights >= 0"),
    )?;
    let hg = build_on_device(dev, inputs.features, shape, cfg, GemmUnits::Simt)?;
    // Features in X are checked for NaN by the normalisation inside the build.
    conv_device(&hg, x, dx, theta, c, Some(inputs.weights))
}
