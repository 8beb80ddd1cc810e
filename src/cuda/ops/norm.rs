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

/// The row-major multi-index of flat position `pos` in `shape`, as `[i, j, ...]`.
fn multi_index(mut pos: usize, shape: &[usize]) -> String {
    let mut index = vec![0; shape.len()];
    for (slot, &dim) in index.iter_mut().zip(shape).rev() {
        *slot = pos % dim.max(1);
        pos /= dim.max(1);
    }
    format!("{index:?}")
}

/// The first index of `v` holding a NaN or infinity (or, with `nonneg`, a negative value).
fn first_bad(dev: &Device, v: &DeviceBuffer<f32>, nonneg: bool) -> Result<Option<usize>> {
    let count = u32::try_from(v.len())
        .map_err(|_| Error::invalid("values", "fewer than 2^32 elements", v.len()))?;
    if count == 0 {
        return Ok(None);
    }
    let mut bad = dev.upload(&[u32::MAX])?;
    let cfg = LaunchCfg::new(
        "first_bad_f32",
        (blocks(v.len(), 256).min(65_535 * 8), 1, 1),
        256,
        0,
    )?;
    dev.launch(
        "first_bad_f32",
        &cfg,
        &mut [
            KArg::input(v),
            KArg::output(&mut bad),
            KArg::U32(count),
            KArg::U32(nonneg as u32),
        ],
    )?;
    let first = dev.download(&bad)?[0];
    Ok((first != u32::MAX).then_some(first as usize))
}

/// Checks on the device that `v` (of `shape`, row-major) holds only finite values, and with
/// `nonneg: Some(expected)` none below zero (`expected` says what was wanted, e.g. "hyperedge
/// weights >= 0"): the device-side counterpart of the CPU path's input checks. Only the index
/// of the first offending element comes back to the host (and, for the message, the values
/// when one is not finite).
pub fn check_values(
    dev: &Device,
    arg: &str,
    v: &DeviceBuffer<f32>,
    shape: &[usize],
    nonneg: Option<&str>,
) -> Result<()> {
    check_len(arg, v, shape.iter().product())?;
    if let Some(pos) = first_bad(dev, v, false)? {
        // The error path only: the value itself, for the message.
        let value = dev.download(v)?[pos] as f64;
        return Err(Error::NonFinite {
            arg: arg.into(),
            index: multi_index(pos, shape),
            value,
        });
    }
    if let Some(expected) = nonneg {
        if let Some(pos) = first_bad(dev, v, true)? {
            return Err(Error::invalid(
                arg,
                expected,
                format!("a negative value at {}", multi_index(pos, shape)),
            ));
        }
    }
    Ok(())
}
