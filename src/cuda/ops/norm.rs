//! Row normalisation `f̂_i = f_i / max(‖f_i‖, eps)` and its backward (kernels/norm.cu).

use super::{blocks, check_len, Shape};
use crate::cuda::{Device, DeviceBuffer, Float, KArg, LaunchCfg};
use crate::error::{Error, Result};

/// Rows per 256-thread block (one warp per row).
const ROWS_PER_BLOCK: usize = 8;

/// `f̂` in the input's dtype, and each row's norm `‖f_i‖` (kept for the backward pass).
pub struct Normalized<T: Float> {
    pub fhat: DeviceBuffer<T>,
    pub norms: DeviceBuffer<f32>,
}

/// Normalises the `B·N` rows of `f: [B, N, D]`. A NaN or infinite feature is an
/// [`Error::NonFinite`] naming the first such row.
pub fn normalize_rows<T: Float>(
    dev: &Device,
    f: &DeviceBuffer<T>,
    shape: Shape,
    eps: f32,
) -> Result<Normalized<T>> {
    check_len("features", f, shape.features())?;
    if !(eps > 0.0 && eps.is_finite()) {
        return Err(Error::invalid("norm_eps", "a finite value > 0", eps));
    }
    let rows = shape.b * shape.n;
    let mut fhat = dev.zeros::<T>(shape.features())?;
    let mut norms = dev.zeros::<f32>(rows)?;
    let mut bad = dev.upload(&[u32::MAX])?;
    let name = format!("normalize_rows_{}", T::DTYPE);
    let cfg = LaunchCfg::new(&name, (blocks(rows, ROWS_PER_BLOCK), 1, 1), 256, 0)?;
    dev.launch(
        &name,
        &cfg,
        &mut [
            KArg::input(f),
            KArg::output(&mut fhat),
            KArg::output(&mut norms),
            KArg::output(&mut bad),
            KArg::U32(rows as u32),
            KArg::U32(shape.d as u32),
            KArg::F32(eps),
        ],
    )?;
    let first_bad = dev.download(&bad)?[0];
    if first_bad != u32::MAX {
        let row = first_bad as usize;
        return Err(Error::NonFinite {
            arg: "features".into(),
            index: format!("image {}, vertex {}", row / shape.n, row % shape.n),
            value: f64::NAN,
        });
    }
    Ok(Normalized { fhat, norms })
}

/// `df = (df̂ − f̂⟨f̂, df̂⟩)/‖f‖` where `‖f‖ > eps`, else `df̂/eps`; `dfhat: [B, N, D]` f32.
pub fn normalize_rows_backward<T: Float>(
    dev: &Device,
    saved: &Normalized<T>,
    dfhat: &DeviceBuffer<f32>,
    shape: Shape,
    eps: f32,
) -> Result<DeviceBuffer<f32>> {
    check_len("fhat", &saved.fhat, shape.features())?;
    check_len("norms", &saved.norms, shape.b * shape.n)?;
    check_len("dfhat", dfhat, shape.features())?;
    let rows = shape.b * shape.n;
    let mut df = dev.zeros::<f32>(shape.features())?;
    let name = format!("normalize_rows_bwd_{}", T::DTYPE);
    let cfg = LaunchCfg::new(&name, (blocks(rows, ROWS_PER_BLOCK), 1, 1), 256, 0)?;
    dev.launch(
        &name,
        &cfg,
        &mut [
            KArg::input(&saved.fhat),
            KArg::input(&saved.norms),
            KArg::input(dfhat),
            KArg::output(&mut df),
            KArg::U32(rows as u32),
            KArg::U32(shape.d as u32),
            KArg::F32(eps),
        ],
    )?;
    Ok(df)
}
