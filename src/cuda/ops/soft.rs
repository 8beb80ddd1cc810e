//! Soft incidence `I = σ(alpha (S − tau))` with its degrees, masking by a selection, and the
//! elementwise backward (kernels/soft.cu).

use super::incidence::{upper_tiles, GemmUnits, TILE};
use super::{blocks, check_len, check_opt, Shape};
use crate::cuda::{Device, DeviceBuffer, Float, KArg, LaunchCfg};
use crate::error::{Error, Result};

/// Dense `I: [B, N, N]` with `d_v(i) = Σ_e I_ie w_e` and `d_e(e) = Σ_i I_ie`, `[B, N]` each.
pub struct SoftIncidence {
    pub inc: DeviceBuffer<f32>,
    pub d_v: DeviceBuffer<f32>,
    pub d_e: DeviceBuffer<f32>,
}

/// Blocks of a grid-stride elementwise kernel over `count` entries.
fn stride_blocks(count: usize) -> u64 {
    blocks(count, 256).clamp(1, 65_535 * 8)
}

/// Fused similarity + sigmoid, and the degree sums from per-tile partials.
pub fn sigmoid_incidence<T: Float>(
    dev: &Device,
    fhat: &DeviceBuffer<T>,
    shape: Shape,
    alpha: f32,
    tau: f32,
    w: Option<&DeviceBuffer<f32>>,
    units: GemmUnits,
) -> Result<SoftIncidence> {
    check_len("fhat", fhat, shape.features())?;
    check_opt("w", w, shape.b * shape.n)?;
    if !(alpha > 0.0 && alpha.is_finite()) {
        return Err(Error::invalid("alpha", "a finite value > 0", alpha));
    }
    if !tau.is_finite() {
        return Err(Error::invalid("tau", "a finite value", tau));
    }
    let name = match units {
        GemmUnits::Simt if T::DTYPE == "f32" => "sim_sigmoid_f32".to_string(),
        GemmUnits::TensorCores if T::DTYPE != "f32" => format!("sim_sigmoid_wmma_{}", T::DTYPE),
        _ => {
            return Err(Error::invalid(
                "gemm units",
                "Simt with f32 features, or TensorCores with bf16/f16",
                format!("{units:?} with {}", T::DTYPE),
            ))
        }
    };
    let (b, n) = (shape.b, shape.n);
    let tiles = n.div_ceil(TILE);
    let mut inc = dev.zeros::<f32>(b * n * n)?;
    let mut part_w = dev.zeros::<f32>(b * tiles * n)?;
    let mut part_1 = dev.zeros::<f32>(b * tiles * n)?;
    let cfg = LaunchCfg::new(&name, (upper_tiles(n) as u64, b as u64, 1), 256, 0)?;
    dev.launch(
        &name,
        &cfg,
        &mut [
            KArg::input(fhat),
            KArg::optional(w),
            KArg::output(&mut inc),
            KArg::output(&mut part_w),
            KArg::output(&mut part_1),
            KArg::U32(n as u32),
            KArg::U32(shape.d as u32),
            KArg::F32(alpha),
            KArg::F32(tau),
        ],
    )?;

    let mut d_v = dev.zeros::<f32>(b * n)?;
    let mut d_e = dev.zeros::<f32>(b * n)?;
    let cfg = LaunchCfg::new("soft_degrees_f32", (blocks(n, 256), b as u64, 1), 256, 0)?;
    dev.launch(
        "soft_degrees_f32",
        &cfg,
        &mut [
            KArg::input(&part_w),
            KArg::input(&part_1),
            KArg::output(&mut d_v),
            KArg::output(&mut d_e),
            KArg::U32(n as u32),
            KArg::U32(tiles as u32),
        ],
    )?;
    Ok(SoftIncidence { inc, d_v, d_e })
}

/// Zeroes `I_ie` wherever bit (i, e) of the selection `mask` is clear, and recomputes the
/// degrees of the masked (no longer symmetric) incidence.
pub fn mask_soft(
    dev: &Device,
    soft: &mut SoftIncidence,
    mask: &DeviceBuffer<u32>,
    w: Option<&DeviceBuffer<f32>>,
    shape: Shape,
) -> Result<()> {
    let (b, n) = (shape.b, shape.n);
    check_len("inc", &soft.inc, b * n * n)?;
    check_len("mask", mask, shape.mask_len())?;
    check_opt("w", w, b * n)?;
    let count = b * n * n;
    let cfg = LaunchCfg::new("mask_dense_f32", (stride_blocks(count), 1, 1), 256, 0)?;
    dev.launch(
        "mask_dense_f32",
        &cfg,
        &mut [
            KArg::output(&mut soft.inc),
            KArg::input(mask),
            KArg::U32(n as u32),
            KArg::U64(count as u64),
        ],
    )?;
    let (d_v, d_e) = dense_degrees(dev, &soft.inc, w, shape)?;
    soft.d_v = d_v;
    soft.d_e = d_e;
    Ok(())
}

/// The dense 0/1 incidence `[B, N, N]` (f32) of a hard bitmask `[B, N, words]`.
pub fn mask_to_dense(
    dev: &Device,
    mask: &DeviceBuffer<u32>,
    shape: Shape,
) -> Result<DeviceBuffer<f32>> {
    check_len("mask", mask, shape.mask_len())?;
    let count = shape.b * shape.n * shape.n;
    let mut out = dev.zeros::<f32>(count)?;
    let cfg = LaunchCfg::new("mask_to_dense_f32", (stride_blocks(count), 1, 1), 256, 0)?;
    dev.launch(
        "mask_to_dense_f32",
        &cfg,
        &mut [
            KArg::output(&mut out),
            KArg::input(mask),
            KArg::U32(shape.n as u32),
            KArg::U64(count as u64),
        ],
    )?;
    Ok(out)
}

/// `dS = dI ⊙ alpha I (1 − I)` over equal-length buffers.
pub fn sigmoid_backward(
    dev: &Device,
    inc: &DeviceBuffer<f32>,
    d_inc: &DeviceBuffer<f32>,
    alpha: f32,
) -> Result<DeviceBuffer<f32>> {
    check_len("d_inc", d_inc, inc.len())?;
    let count = inc.len();
    let mut d_s = dev.zeros::<f32>(count)?;
    if count == 0 {
        return Ok(d_s);
    }
    let cfg = LaunchCfg::new("sigmoid_bwd_f32", (stride_blocks(count), 1, 1), 256, 0)?;
    dev.launch(
        "sigmoid_bwd_f32",
        &cfg,
        &mut [
            KArg::input(inc),
            KArg::input(d_inc),
            KArg::output(&mut d_s),
            KArg::U64(count as u64),
            KArg::F32(alpha),
        ],
    )?;
    Ok(d_s)
}

/// Degrees of a dense incidence: `(d_v, d_e)` with `d_v(i) = Σ_e I_ie w_e`, `d_e(e) = Σ_i I_ie`.
pub fn dense_degrees(
    dev: &Device,
    inc: &DeviceBuffer<f32>,
    w: Option<&DeviceBuffer<f32>>,
    shape: Shape,
) -> Result<(DeviceBuffer<f32>, DeviceBuffer<f32>)> {
    let (b, n) = (shape.b, shape.n);
    check_len("inc", inc, b * n * n)?;
    check_opt("w", w, b * n)?;
    let mut d_v = dev.zeros::<f32>(b * n)?;
    let mut d_e = dev.zeros::<f32>(b * n)?;
    let cfg = LaunchCfg::new("dense_degrees_f32", (blocks(n, 256), b as u64, 1), 256, 0)?;
    dev.launch(
        "dense_degrees_f32",
        &cfg,
        &mut [
            KArg::input(inc),
            KArg::optional(w),
            KArg::output(&mut d_v),
            KArg::output(&mut d_e),
            KArg::U32(n as u32),
        ],
    )?;
    Ok((d_v, d_e))
}
