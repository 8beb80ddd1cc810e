//! Sparse products over CSR with fused degree scaling and the complement correction, and
//! the degree → scale vectors (kernels/spmm.cu).

use super::csr::DeviceCsr;
use super::{blocks, check_len, check_opt, Shape};
use crate::cuda::{Device, DeviceBuffer, Float, KArg, LaunchCfg};
use crate::error::{Error, Result};

/// The diagonal scalings of the convolution, `[B, N]` each; zero degree gives 0, never NaN.
pub struct Scales {
    /// `d_v^{-1/2}`
    pub v_inv_sqrt: DeviceBuffer<f32>,
    /// `d_v^{-1}`
    pub v_inv: DeviceBuffer<f32>,
    /// `w_e / d_e`
    pub e_scale: DeviceBuffer<f32>,
}

/// Scales from `d_v` (f32) and hard `d_e` counts (u32); `w: [B, N]` or None for unit weights.
pub fn degree_scales_hard(
    dev: &Device,
    d_v: &DeviceBuffer<f32>,
    d_e: &DeviceBuffer<u32>,
    w: Option<&DeviceBuffer<f32>>,
    count: usize,
) -> Result<Scales> {
    check_len("d_e", d_e, count)?;
    degree_scales(dev, "degree_scales_u32", d_v, KArg::input(d_e), w, count)
}

/// Scales from soft degrees (both f32).
pub fn degree_scales_soft(
    dev: &Device,
    d_v: &DeviceBuffer<f32>,
    d_e: &DeviceBuffer<f32>,
    w: Option<&DeviceBuffer<f32>>,
    count: usize,
) -> Result<Scales> {
    check_len("d_e", d_e, count)?;
    degree_scales(dev, "degree_scales_f32", d_v, KArg::input(d_e), w, count)
}

fn degree_scales(
    dev: &Device,
    name: &str,
    d_v: &DeviceBuffer<f32>,
    d_e: KArg<'_>,
    w: Option<&DeviceBuffer<f32>>,
    count: usize,
) -> Result<Scales> {
    check_len("d_v", d_v, count)?;
    check_opt("w", w, count)?;
    let mut v_inv_sqrt = dev.zeros::<f32>(count)?;
    let mut v_inv = dev.zeros::<f32>(count)?;
    let mut e_scale = dev.zeros::<f32>(count)?;
    let cfg = LaunchCfg::new(name, (blocks(count, 256), 1, 1), 256, 0)?;
    dev.launch(
        name,
        &cfg,
        &mut [
            KArg::input(d_v),
            d_e,
            KArg::optional(w),
            KArg::output(&mut v_inv_sqrt),
            KArg::output(&mut v_inv),
            KArg::output(&mut e_scale),
            KArg::U32(count as u32),
        ],
    )?;
    Ok(Scales {
        v_inv_sqrt,
        v_inv,
        e_scale,
    })
}

/// `out[b, r] = s_out[b, r] · Σ_{c ∈ row r of A} s_in[b, c] · x[b, c]` for the incidence
/// orientation `a` (CSR of H or H̄), `x: [B, N, d]`, scales `[B, N]` or None (= 1).
pub fn spmm<T: Float>(
    dev: &Device,
    a: &DeviceCsr,
    x: &DeviceBuffer<T>,
    d: usize,
    s_in: Option<&DeviceBuffer<f32>>,
    s_out: Option<&DeviceBuffer<f32>>,
) -> Result<DeviceBuffer<f32>> {
    let shape = Shape::new(a.shape.b, a.shape.n, d)?;
    check_len("x", x, shape.features())?;
    check_opt("s_in", s_in, shape.b * shape.n)?;
    check_opt("s_out", s_out, shape.b * shape.n)?;
    check_len("row_ptr", &a.row_ptr, shape.b * (shape.n + 1))?;
    check_len("col_idx", &a.col_idx, shape.b * a.cap)?;
    check_len("complement", &a.complement, shape.b)?;
    if a.cap > u32::MAX as usize {
        return Err(Error::invalid("csr capacity", "< 2^32", a.cap));
    }

    // Column sums for the complement identity (cheap next to the gather; computed for every
    // image so the choice stays on the device).
    // LIMITATION: computed even for images stored without the complement (one extra O(N·D)
    // pass); reading the complement flags on the device inside colsum would skip it.
    let mut colsum = dev.zeros::<f32>(shape.b * d)?;
    let name = format!("colsum_scaled_{}", T::DTYPE);
    let cfg = LaunchCfg::new(&name, (blocks(d, 128), shape.b as u64, 1), 128, 0)?;
    dev.launch(
        &name,
        &cfg,
        &mut [
            KArg::input(x),
            KArg::optional(s_in),
            KArg::output(&mut colsum),
            KArg::U32(shape.n as u32),
            KArg::U32(d as u32),
        ],
    )?;

    let mut out = dev.zeros::<f32>(shape.features())?;
    let name = format!("spmm_gather_{}", T::DTYPE);
    let cfg = LaunchCfg::new(&name, (shape.n as u64, shape.b as u64, 1), 128, 0)?;
    dev.launch(
        &name,
        &cfg,
        &mut [
            KArg::input(&a.row_ptr),
            KArg::input(&a.col_idx),
            KArg::input(&a.complement),
            KArg::input(x),
            KArg::optional(s_in),
            KArg::optional(s_out),
            KArg::input(&colsum),
            KArg::output(&mut out),
            KArg::U32(shape.n as u32),
            KArg::U32(d as u32),
            KArg::U32(a.cap as u32),
        ],
    )?;
    Ok(out)
}

/// `y[r] = s[r] · x[r]` for `rows` rows of `d` columns.
pub fn scale_rows(
    dev: &Device,
    x: &DeviceBuffer<f32>,
    s: &DeviceBuffer<f32>,
    rows: usize,
    d: usize,
) -> Result<DeviceBuffer<f32>> {
    check_len("x", x, rows * d)?;
    check_len("s", s, rows)?;
    let mut y = dev.zeros::<f32>(rows * d)?;
    let name = "scale_rows_f32";
    let cfg = LaunchCfg::new(name, (blocks(d, 128), rows as u64, 1), 128, 0)?;
    dev.launch(
        name,
        &cfg,
        &mut [
            KArg::input(x),
            KArg::input(s),
            KArg::output(&mut y),
            KArg::U32(rows as u32),
            KArg::U32(d as u32),
        ],
    )?;
    Ok(y)
}
