//! Helpers shared by the integration tests: deterministic inputs and comparisons.
#![allow(dead_code)]

use hipl::{HypergraphConfig, IncidenceMode, Normalization, Representation, Rule};
use ndarray::{Array2, Array3};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Features with a shared direction plus noise (CLIP-like anisotropy scaled by `shared`).
pub fn features(b: usize, n: usize, d: usize, shared: f64, seed: u64) -> Array3<f64> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mean: Vec<f64> = (0..d).map(|_| rng.random_range(-1.0..1.0)).collect();
    Array3::from_shape_fn((b, n, d), |(_, _, k)| {
        shared * mean[k] + rng.random_range(-1.0..1.0)
    })
}

pub fn matrix(r: usize, c: usize, seed: u64) -> Array2<f64> {
    let mut rng = StdRng::seed_from_u64(seed);
    Array2::from_shape_fn((r, c), |_| rng.random_range(-1.0..1.0))
}

pub fn positive(r: usize, c: usize, seed: u64) -> Array2<f64> {
    let mut rng = StdRng::seed_from_u64(seed);
    Array2::from_shape_fn((r, c), |_| rng.random_range(0.2..2.0))
}

pub fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

/// Every rule × mode × normalisation the library offers (rule parameters for `n` vertices).
pub fn all_configs(n: usize) -> Vec<HypergraphConfig> {
    let rules = [
        Rule::Threshold { top_k: None },
        Rule::Threshold {
            top_k: Some((n / 2).max(1)),
        },
        Rule::Knn { k: (n / 3).max(1) },
        Rule::EpsBall { eps: 1.0 },
    ];
    let mut out = Vec::new();
    for rule in rules {
        for mode in [
            IncidenceMode::Hard,
            IncidenceMode::Soft,
            IncidenceMode::StraightThrough,
        ] {
            for norm in [Normalization::Symmetric, Normalization::RandomWalk] {
                out.push(HypergraphConfig {
                    rule,
                    mode,
                    norm,
                    alpha: 4.0,
                    representation: Representation::Auto,
                    ..HypergraphConfig::default()
                });
            }
        }
    }
    out
}
