//! Fused similarity → hard incidence: the threshold rule (kernels/incidence.cu) and the
//! top-k cap / kNN selection (kernels/topk.cu).

use super::{check_len, Shape};
use crate::cuda::{Device, DeviceBuffer, Float, KArg, LaunchCfg};
use crate::error::{Error, Result};

/// Rows and columns of the similarity tile one block computes.
pub const TILE: usize = 64;
/// Largest `k` the fused selection keeps in shared memory.
pub const MAX_SELECT_K: usize = 64;

/// Which units compute the similarity GEMM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GemmUnits {
    /// fp32 FMA on the CUDA cores (any input dtype, converted to f32).
    Simt,
    /// Tensor cores through wmma: bf16 or f16 inputs, f32 accumulation.
    TensorCores,
}

/// Hard incidence of a symmetric rule: the bitmask `[B, N, words]` and the row counts
/// `deg[b, i] = Σ_j H_ij` (= column counts: H is symmetric).
pub struct ThresholdIncidence {
    pub mask: DeviceBuffer<u32>,
    pub deg: DeviceBuffer<u32>,
}

fn kernel_name<T: Float>(base: &str, units: GemmUnits) -> Result<String> {
    match units {
        GemmUnits::Simt => Ok(format!("{base}_{}", T::DTYPE)),
        GemmUnits::TensorCores if T::DTYPE == "f32" => Err(Error::invalid(
            "gemm units",
            "bf16 or f16 features for tensor cores (or GemmUnits::Simt)",
            "f32 features",
        )),
        GemmUnits::TensorCores => Ok(format!("{base}_wmma_{}", T::DTYPE)),
    }
}

/// Number of upper-triangle tiles (ti ≤ tj) of an `n × n` matrix.
pub fn upper_tiles(n: usize) -> usize {
    let t = n.div_ceil(TILE);
    t * (t + 1) / 2
}

/// `H_ij = [S_ij > tau]` (and `H_jj = 1`) with `S = F̂F̂ᵀ`, never writing S.
pub fn threshold_incidence<T: Float>(
    dev: &Device,
    fhat: &DeviceBuffer<T>,
    shape: Shape,
    tau: f32,
    units: GemmUnits,
) -> Result<ThresholdIncidence> {
    check_len("fhat", fhat, shape.features())?;
    if !tau.is_finite() {
        return Err(Error::invalid("tau", "a finite value", tau));
    }
    let name = kernel_name::<T>("sim_incidence", units)?;
    let mut mask = dev.zeros::<u32>(shape.mask_len())?;
    let mut deg = dev.zeros::<u32>(shape.b * shape.n)?;
    let cfg = LaunchCfg::new(
        &name,
        (upper_tiles(shape.n) as u64, shape.b as u64, 1),
        256,
        0,
    )?;
    dev.launch(
        &name,
        &cfg,
        &mut [
            KArg::input(fhat),
            KArg::output(&mut mask),
            KArg::output(&mut deg),
            KArg::U32(shape.n as u32),
            KArg::U32(shape.d as u32),
            KArg::F32(tau),
        ],
    )?;
    Ok(ThresholdIncidence { mask, deg })
}

/// Which selection rule [`select_incidence`] applies.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Selection {
    /// The `k` most similar members above `tau` (the paper's cap), centre included.
    TopK { k: usize, tau: f32 },
    /// Exactly `k` nearest by cosine, centre included.
    Knn { k: usize },
}

/// Hard incidence of a selection rule as a bitmask `[B, N, words]` (not symmetric: bit (i, j)
/// means vertex i is among hyperedge j's members).
pub fn select_incidence<T: Float>(
    dev: &Device,
    fhat: &DeviceBuffer<T>,
    shape: Shape,
    rule: Selection,
) -> Result<DeviceBuffer<u32>> {
    check_len("fhat", fhat, shape.features())?;
    let (k, tau, knn, arg) = match rule {
        Selection::TopK { k, tau } => (k, tau, 0, "top_k"),
        Selection::Knn { k } => (k, 0.0, 1, "k"),
    };
    if k == 0 || k > shape.n {
        return Err(Error::invalid(
            arg,
            format!("1 <= {arg} <= N = {}", shape.n),
            k,
        ));
    }
    // LIMITATION: the fused selection keeps k ≤ 64 members per hyperedge in shared memory;
    // larger k would need a radix select over a streamed similarity row.
    if k > MAX_SELECT_K {
        return Err(Error::invalid(
            arg,
            format!("{arg} <= {MAX_SELECT_K} on CUDA"),
            k,
        ));
    }
    if !tau.is_finite() {
        return Err(Error::invalid("tau", "a finite value", tau));
    }
    let name = format!("sim_topk_{}", T::DTYPE);
    let smem = (16 * TILE * k + 4 * TILE) as u32;
    let mut mask = dev.zeros::<u32>(shape.mask_len())?;
    let cfg = LaunchCfg::new(
        &name,
        (shape.n.div_ceil(TILE) as u64, shape.b as u64, 1),
        256,
        smem,
    )?;
    dev.launch(
        &name,
        &cfg,
        &mut [
            KArg::input(fhat),
            KArg::output(&mut mask),
            KArg::U32(shape.n as u32),
            KArg::U32(shape.d as u32),
            KArg::U32(k as u32),
            KArg::F32(tau),
            KArg::U32(knn),
        ],
    )?;
    Ok(mask)
}
