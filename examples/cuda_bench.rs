//! Times the CUDA kernels at the HiPL shape (B=8, N=1369, D=1024 by default) and prints one
//! JSON object; `scripts/gpu_bench.py` measures PyTorch's dense path on the same shapes in the
//! same run and turns both into ratios. Needs feature `cuda` and a GPU.
//!
//! `cuda_bench [B N D]`

use std::time::Instant;

use half::bf16;
use hipl::cuda::ops::csr::to_csr;
use hipl::cuda::ops::incidence::{select_incidence, threshold_incidence, GemmUnits, Selection};
use hipl::cuda::ops::norm::normalize_rows;
use hipl::cuda::ops::spmm::spmm;
use hipl::cuda::ops::Shape;
use hipl::cuda::{build_on_device, conv_backward_device, conv_device, Device};
use hipl::HypergraphConfig;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Median wall time in milliseconds of `f` (synchronised), after two warm-up calls.
fn time_ms(
    dev: &Device,
    reps: usize,
    mut f: impl FnMut() -> hipl::Result<()>,
) -> hipl::Result<f64> {
    for _ in 0..2 {
        f()?;
    }
    dev.synchronize()?;
    let mut t = Vec::with_capacity(reps);
    for _ in 0..reps {
        let start = Instant::now();
        f()?;
        dev.synchronize()?;
        t.push(start.elapsed().as_secs_f64() * 1e3);
    }
    t.sort_by(|a, b| a.partial_cmp(b).unwrap());
    Ok(t[reps / 2])
}

fn main() -> hipl::Result<()> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let (b, n, d) = match args[..] {
        [b, n, d] => (b, n, d),
        _ => (8, 1369, 1024),
    };
    let dev = Device::cuda_if_available().ok_or_else(|| hipl::Error::Device {
        op: "cuda_bench".into(),
        msg: "no CUDA device".into(),
    })?;
    let shape = Shape::new(b, n, d)?;

    // CLIP-like features: a strong shared direction plus noise (nearly all cosines > tau).
    let mut rng = StdRng::seed_from_u64(0);
    let dir: Vec<f32> = (0..d).map(|_| rng.random_range(-1.0..1.0)).collect();
    let f: Vec<f32> = (0..b * n * d)
        .map(|e| 2.0 * dir[e % d] + rng.random_range(-1.0f32..1.0))
        .collect();
    let f32_buf = dev.upload(&f)?;
    let fb: Vec<bf16> = f.iter().map(|&x| bf16::from_f32(x)).collect();
    let bf_buf = dev.upload(&fb)?;
    let hat32 = normalize_rows(&dev, &f32_buf, shape, 1e-12)?.fhat;
    let hatbf = normalize_rows(&dev, &bf_buf, shape, 1e-12)?.fhat;
    let reps = 10;

    let sim_wmma = time_ms(&dev, reps, || {
        threshold_incidence(&dev, &hatbf, shape, -1e-4, GemmUnits::TensorCores).map(|_| ())
    })?;
    let sim_simt = time_ms(&dev, reps, || {
        threshold_incidence(&dev, &hat32, shape, -1e-4, GemmUnits::Simt).map(|_| ())
    })?;
    let knn = time_ms(&dev, reps, || {
        select_incidence(&dev, &hat32, shape, Selection::Knn { k: 16 }).map(|_| ())
    })?;

    // SpMM on a kNN structure (density k/N): the gather is what is measured.
    let k = 64;
    let mask = select_incidence(&dev, &hat32, shape, Selection::Knn { k })?;
    let csr = to_csr(&dev, &mask, shape)?;
    let nnz = b * n * k;
    let spmm_ms = time_ms(&dev, reps, || {
        spmm(&dev, &csr, &f32_buf, d, None, None).map(|_| ())
    })?;
    // Bytes: each nonzero gathers one D-row; each output row is written once; row_ptr/col_idx.
    let spmm_bytes = (nnz * d * 4 + b * n * d * 4 + nnz * 4 + b * (n + 1) * 4) as f64;

    // Hypergraph convolution forward + backward (dX, dΘ) with the structure rebuilt each time,
    // paper rule, hard incidence, Θ: D × D.
    let cfg = HypergraphConfig::paper();
    let theta: Vec<f32> = (0..d * d)
        .map(|_| rng.random_range(-0.05f32..0.05))
        .collect();
    let theta = dev.upload(&theta)?;
    let dy = dev.upload(
        &(0..b * n * d)
            .map(|_| rng.random_range(-1.0f32..1.0))
            .collect::<Vec<_>>(),
    )?;
    let conv_ms = time_ms(&dev, reps, || {
        let hg = build_on_device(&dev, &f32_buf, shape, &cfg, GemmUnits::Simt)?;
        let _y = conv_device(&hg, &f32_buf, d, &theta, d, None)?;
        let _g = conv_backward_device(&hg, &f32_buf, d, &theta, d, None, &dy)?;
        Ok(())
    })?;
    let conv_bf_ms = time_ms(&dev, reps, || {
        let hg = build_on_device(&dev, &bf_buf, shape, &cfg, GemmUnits::TensorCores)?;
        let _y = conv_device(&hg, &f32_buf, d, &theta, d, None)?;
        let _g = conv_backward_device(&hg, &f32_buf, d, &theta, d, None, &dy)?;
        Ok(())
    })?;

    println!(
        "{{\"device\": {:?}, \"b\": {b}, \"n\": {n}, \"d\": {d}, \"sim_incidence_wmma_bf16_ms\": {sim_wmma:.4}, \
         \"sim_incidence_simt_f32_ms\": {sim_simt:.4}, \"knn16_f32_ms\": {knn:.4}, \"spmm_knn{k}_ms\": {spmm_ms:.4}, \
         \"spmm_bytes\": {spmm_bytes:.0}, \"conv_fwd_bwd_f32_ms\": {conv_ms:.4}, \"conv_fwd_bwd_bf16_structure_ms\": {conv_bf_ms:.4}}}",
        dev.name()
    );
    Ok(())
}
