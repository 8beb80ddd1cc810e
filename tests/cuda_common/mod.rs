//! Helpers shared by the kernel tests: the device under test and plain references.
#![allow(dead_code)]

use hipl::cuda::Device;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The device the kernel tests run on: the host emulator, or the first GPU when
/// `HIPL_TEST_DEVICE=cuda` (a build with feature `cuda`, on a GPU machine).
pub fn device() -> Device {
    match std::env::var("HIPL_TEST_DEVICE").as_deref() {
        Ok("cuda") => {
            #[cfg(feature = "cuda-kernels")]
            {
                Device::cuda(0).expect("HIPL_TEST_DEVICE=cuda but no usable GPU")
            }
            #[cfg(not(feature = "cuda-kernels"))]
            panic!("HIPL_TEST_DEVICE=cuda needs a build with feature `cuda`")
        }
        _ => Device::emulator(),
    }
}

pub fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// Features whose cosines spread over [-1, 1]: a shared direction of strength `bias` plus
/// noise, so a threshold near 0 cuts a mixed incidence.
pub fn features(rng: &mut StdRng, b: usize, n: usize, d: usize, bias: f32) -> Vec<f32> {
    let dir: Vec<f32> = (0..d).map(|_| rng.random_range(-1.0..1.0)).collect();
    (0..b * n * d)
        .map(|e| bias * dir[e % d] + rng.random_range(-1.0f32..1.0))
        .collect()
}

/// f64 cosine matrix of one image from f32 features (the exact value the kernels round).
pub fn cosine(f: &[f32], n: usize, d: usize, eps: f64) -> Vec<f64> {
    let hat: Vec<f64> = f
        .chunks(d)
        .flat_map(|r| {
            let norm = r
                .iter()
                .map(|&x| (x as f64).powi(2))
                .sum::<f64>()
                .sqrt()
                .max(eps);
            r.iter().map(move |&x| x as f64 / norm)
        })
        .collect();
    let mut s = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            s[i * n + j] = (0..d).map(|k| hat[i * d + k] * hat[j * d + k]).sum();
        }
    }
    s
}

/// Bit (i, j) of image `b` in the kernels' u32 layout.
pub fn bit(mask: &[u32], b: usize, n: usize, i: usize, j: usize) -> bool {
    let words = 2 * n.div_ceil(64);
    (mask[(b * n + i) * words + j / 32] >> (j % 32)) & 1 == 1
}

/// Asserts that no bit beyond column N is set in any row.
pub fn assert_padding_clear(mask: &[u32], b: usize, n: usize) {
    let words = 2 * n.div_ceil(64);
    for row in 0..b * n {
        for w in 0..words {
            let lo = w * 32;
            let valid = if lo >= n {
                0
            } else if n - lo >= 32 {
                u32::MAX
            } else {
                (1u32 << (n - lo)) - 1
            };
            assert_eq!(
                mask[row * words + w] & !valid,
                0,
                "padding bits set in row {row}, word {w}"
            );
        }
    }
}

pub fn assert_close(got: &[f32], want: &[f64], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let err = (g as f64 - w).abs();
        assert!(
            err <= tol * (1.0 + w.abs()),
            "{what}[{i}]: got {g}, want {w} (err {err:e})"
        );
    }
}
