//! Summary statistics of a hypergraph, as `hipl hypergraph` prints them.

use super::{Hypergraph, Incidence};
use crate::real::Real;

/// Minimum, mean and maximum of a degree over every image.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DegreeStats {
    pub min: f64,
    pub mean: f64,
    pub max: f64,
}

impl DegreeStats {
    fn of(values: impl Iterator<Item = f64>) -> Self {
        let (mut min, mut max, mut sum, mut count) = (f64::INFINITY, f64::NEG_INFINITY, 0.0, 0);
        for v in values {
            min = min.min(v);
            max = max.max(v);
            sum += v;
            count += 1;
        }
        DegreeStats {
            min,
            mean: sum / count.max(1) as f64,
            max,
        }
    }
}

/// Density and degrees of a hypergraph.
#[derive(Clone, Debug, PartialEq)]
pub struct HypergraphStats {
    /// Fraction of non-zero incidence entries, over the batch.
    pub density: f64,
    /// Unweighted vertex degrees `Σ_e H_ie`.
    pub vertex_degree: DegreeStats,
    /// Hyperedge degrees `Σ_i H_ie`.
    pub hyperedge_degree: DegreeStats,
    /// Storage of the first image's incidence.
    pub representation: &'static str,
}

impl<T: Real> Hypergraph<T> {
    /// Density and degree statistics.
    pub fn stats(&self) -> HypergraphStats {
        let n = self.n;
        let nnz: usize = self.images.iter().map(|g| g.incidence.nnz(n)).sum();
        let d_v: Vec<f64> = self
            .images
            .iter()
            .flat_map(|g| vertex_degrees(&g.incidence, n))
            .collect();
        HypergraphStats {
            density: nnz as f64 / (self.images.len() * n * n) as f64,
            vertex_degree: DegreeStats::of(d_v.into_iter()),
            hyperedge_degree: DegreeStats::of(
                self.images
                    .iter()
                    .flat_map(|g| g.d_e.iter().map(|v| v.to64())),
            ),
            representation: self.images.first().map_or("none", |g| g.incidence.kind()),
        }
    }
}

fn vertex_degrees<T: Real>(inc: &Incidence<T>, n: usize) -> Vec<f64> {
    match inc {
        Incidence::Bitmask { h, .. } => (0..n).map(|i| h.row_count(i) as f64).collect(),
        Incidence::Csr { by_vertex, .. } => (0..n).map(|i| by_vertex.row(i).len() as f64).collect(),
        Incidence::Complement { by_vertex, .. } => (0..n)
            .map(|i| (n - by_vertex.row(i).len()) as f64)
            .collect(),
        Incidence::Dense { h } => h
            .chunks(n)
            .map(|r| r.iter().map(|v| v.to64()).sum())
            .collect(),
    }
}
