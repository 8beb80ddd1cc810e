//! Shared by the benches: CLIP-like inputs and a counting allocator for peak memory.
#![allow(dead_code)]

use hipl::cpu::gemm::Op;
use ndarray::{Array2, Array3};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The system allocator, counting live bytes and their peak.
pub struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

/// Bytes allocated at the peak of `f`, above what was live when it started, minus
/// `keep` (the bytes of the result it returns, which every path must produce).
pub fn peak_extra<R>(keep: usize, f: impl FnOnce() -> R) -> (usize, R) {
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let r = f();
    (PEAK.load(Ordering::Relaxed).saturating_sub(base + keep), r)
}

/// Runs one small product on the calling thread and on every rayon thread, so that each has
/// made the lazy per-thread packing buffer of faer's GEMM backend (twice the L3 size the CPU
/// reports, mostly never touched) before memory is measured: otherwise the first product a
/// thread runs inside a measured call adds that one-time reservation to its peak.
pub fn warm_gemm_scratch() {
    let one = || {
        let (m, k, n) = (128, 512, 128);
        let a = vec![1.0f32; m * k];
        let b = vec![1.0f32; k * n];
        let mut c = vec![0.0f32; m * n];
        hipl::cpu::gemm::gemm(&mut c, (m, k, n), &a, Op::N, &b, Op::T, 1.0, false, false);
    };
    one();
    rayon::broadcast(|_| one());
}

/// Patch embeddings shaped like CLIP's: a strong shared direction plus per-patch
/// variation, so nearly every cosine is positive (density of the paper's rule ≈ 1).
pub fn clip_like(b: usize, n: usize, d: usize, seed: u64) -> Array3<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mean: Vec<f32> = (0..d).map(|_| rng.random_range(-1.0..1.0)).collect();
    Array3::from_shape_fn((b, n, d), |(_, _, k)| {
        2.0 * mean[k] + rng.random_range(-1.0..1.0)
    })
}

pub fn theta(d: usize, c: usize, seed: u64) -> Array2<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    let s = 1.0 / (d as f32).sqrt();
    Array2::from_shape_fn((d, c), |_| rng.random_range(-s..s))
}

pub fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}
