//! Bitmask → CSR of the sparser of H and H̄, the bit transpose and the weighted vertex
//! degree (kernels/csr.cu).

use super::{blocks, check_len, check_opt, Shape};
use crate::cuda::{Device, DeviceBuffer, KArg, LaunchCfg};
use crate::error::Result;

/// CSR of one incidence orientation for every image of a batch. Image `b`'s row pointers are
/// `row_ptr[b·(N+1) ..][..N+1]`, its column indices start at `col_idx[b·cap]`; where
/// `complement[b] = 1` the rows list the zeros of H (the complement H̄ = 1 − H) instead.
pub struct DeviceCsr {
    pub row_ptr: DeviceBuffer<u32>,
    pub col_idx: DeviceBuffer<u32>,
    pub complement: DeviceBuffer<u32>,
    /// Column-index capacity per image, `max(1, ⌊N²/2⌋)`: the chosen matrix never has more.
    pub cap: usize,
    pub shape: Shape,
}

/// Per-image capacity of the column indices.
// LIMITATION: the capacity is reserved up front (⌊N²/2⌋ u32 per image, 3.7 MB at N = 1369)
// so the CSR needs no host round trip; a two-pass build could size it exactly.
pub fn csr_capacity(n: usize) -> usize {
    (n * n / 2).max(1)
}

/// `cnt[b, i] = Σ_j H_ij` (popcount of row i).
pub fn row_counts(
    dev: &Device,
    mask: &DeviceBuffer<u32>,
    shape: Shape,
) -> Result<DeviceBuffer<u32>> {
    check_len("mask", mask, shape.mask_len())?;
    let mut cnt = dev.zeros::<u32>(shape.b * shape.n)?;
    let name = "mask_row_counts_u32";
    let cfg = LaunchCfg::new(name, (blocks(shape.n, 8), shape.b as u64, 1), 256, 0)?;
    dev.launch(
        name,
        &cfg,
        &mut [
            KArg::input(mask),
            KArg::output(&mut cnt),
            KArg::U32(shape.n as u32),
        ],
    )?;
    Ok(cnt)
}

/// CSR of the sparser of H and its complement, per image.
pub fn to_csr(dev: &Device, mask: &DeviceBuffer<u32>, shape: Shape) -> Result<DeviceCsr> {
    let cnt = row_counts(dev, mask, shape)?;
    let n = shape.n as u32;
    let mut row_ptr = dev.zeros::<u32>(shape.b * (shape.n + 1))?;
    let mut complement = dev.zeros::<u32>(shape.b)?;
    let cfg = LaunchCfg::new("csr_scan_u32", (1, shape.b as u64, 1), 256, 0)?;
    dev.launch(
        "csr_scan_u32",
        &cfg,
        &mut [
            KArg::input(&cnt),
            KArg::output(&mut row_ptr),
            KArg::output(&mut complement),
            KArg::U32(n),
        ],
    )?;

    let cap = csr_capacity(shape.n);
    let mut col_idx = dev.zeros::<u32>(shape.b * cap)?;
    let cfg = LaunchCfg::new(
        "csr_fill_u32",
        (blocks(shape.n, 8), shape.b as u64, 1),
        256,
        0,
    )?;
    dev.launch(
        "csr_fill_u32",
        &cfg,
        &mut [
            KArg::input(mask),
            KArg::input(&row_ptr),
            KArg::input(&complement),
            KArg::output(&mut col_idx),
            KArg::U32(n),
            KArg::U32(cap as u32),
        ],
    )?;
    Ok(DeviceCsr {
        row_ptr,
        col_idx,
        complement,
        cap,
        shape,
    })
}

/// `Hᵀ` as a bitmask of the same layout.
pub fn transpose(
    dev: &Device,
    mask: &DeviceBuffer<u32>,
    shape: Shape,
) -> Result<DeviceBuffer<u32>> {
    check_len("mask", mask, shape.mask_len())?;
    let words = shape.words();
    let mut out = dev.zeros::<u32>(shape.mask_len())?;
    let name = "mask_transpose_u32";
    let cfg = LaunchCfg::new(
        name,
        (words as u64, blocks(words, 8), shape.b as u64),
        256,
        0,
    )?;
    dev.launch(
        name,
        &cfg,
        &mut [
            KArg::input(mask),
            KArg::output(&mut out),
            KArg::U32(shape.n as u32),
        ],
    )?;
    Ok(out)
}

/// `d_v(i) = Σ_j H_ij w_j` with hyperedge weights `w: [B, N]` (None: unit weights).
pub fn weighted_degree(
    dev: &Device,
    mask: &DeviceBuffer<u32>,
    w: Option<&DeviceBuffer<f32>>,
    shape: Shape,
) -> Result<DeviceBuffer<f32>> {
    check_len("mask", mask, shape.mask_len())?;
    check_opt("w", w, shape.b * shape.n)?;
    let mut d_v = dev.zeros::<f32>(shape.b * shape.n)?;
    let name = "weighted_degree_f32";
    let cfg = LaunchCfg::new(name, (blocks(shape.n, 8), shape.b as u64, 1), 256, 0)?;
    dev.launch(
        name,
        &cfg,
        &mut [
            KArg::input(mask),
            KArg::optional(w),
            KArg::output(&mut d_v),
            KArg::U32(shape.n as u32),
        ],
    )?;
    Ok(d_v)
}
