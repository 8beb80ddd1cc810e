//! The hypergraph built over one batch of patch embeddings: per image, the incidence
//! `H` (vertex × hyperedge, hyperedge `j` centred on vertex `j`) and the hyperedge degrees.

mod bitmask;
mod config;
mod stats;

pub use bitmask::{transpose64, Bitmask, Csr};
pub use config::{
    HypergraphConfig, IncidenceMode, Normalization, Representation, Rule, ZeroDegree,
    SPARSE_DENSITY,
};
pub use stats::{DegreeStats, HypergraphStats};

use crate::real::Real;

/// How one image's incidence is stored.
#[derive(Clone, Debug)]
pub enum Incidence<T> {
    /// Hard incidence, one bit per pair. `h` has one row per vertex; `ht` (one row per
    /// hyperedge) is present only when `H` is not symmetric.
    Bitmask { h: Bitmask, ht: Option<Bitmask> },
    /// Hard incidence as CSR: `by_vertex` row `i` lists the hyperedges holding vertex `i`,
    /// `by_edge` row `e` lists the members of hyperedge `e`.
    Csr { by_vertex: Csr, by_edge: Csr },
    /// Hard incidence stored through its complement `H̄ = 1 − H` (same two CSR views of
    /// `H̄`); products use `Hᵀ Z = 1 (1ᵀ Z) − H̄ᵀ Z`.
    Complement { by_vertex: Csr, by_edge: Csr },
    /// Dense `N × N` values, `h[i * N + e] = H_ie` (soft incidence, or an override).
    Dense { h: Vec<T> },
}

impl<T: Real> Incidence<T> {
    /// Short name, as the CLI's stats print it.
    pub fn kind(&self) -> &'static str {
        match self {
            Incidence::Bitmask { .. } => "bitmask",
            Incidence::Csr { .. } => "csr",
            Incidence::Complement { .. } => "complement-csr",
            Incidence::Dense { .. } => "dense",
        }
    }

    /// `H_ie` as a value.
    pub fn value(&self, i: usize, e: usize, n: usize) -> T {
        let bit = |b: bool| if b { T::one() } else { T::zero() };
        match self {
            Incidence::Bitmask { h, .. } => bit(h.get(i, e)),
            Incidence::Csr { by_vertex, .. } => {
                bit(by_vertex.row(i).binary_search(&(e as u32)).is_ok())
            }
            Incidence::Complement { by_vertex, .. } => {
                bit(by_vertex.row(i).binary_search(&(e as u32)).is_err())
            }
            Incidence::Dense { h } => h[i * n + e],
        }
    }

    /// The dense `N × N` matrix `H` (row = vertex, column = hyperedge).
    pub fn to_dense(&self, n: usize) -> Vec<T> {
        match self {
            Incidence::Dense { h } => h.clone(),
            Incidence::Bitmask { h, .. } => {
                let mut out = vec![T::zero(); n * n];
                for i in 0..n {
                    for e in h.iter_row(i) {
                        out[i * n + e] = T::one();
                    }
                }
                out
            }
            Incidence::Csr { by_vertex, .. } => {
                let mut out = vec![T::zero(); n * n];
                for i in 0..n {
                    for &e in by_vertex.row(i) {
                        out[i * n + e as usize] = T::one();
                    }
                }
                out
            }
            Incidence::Complement { by_vertex, .. } => {
                let mut out = vec![T::one(); n * n];
                for i in 0..n {
                    for &e in by_vertex.row(i) {
                        out[i * n + e as usize] = T::zero();
                    }
                }
                out
            }
        }
    }

    /// Number of non-zero entries of `H`.
    pub fn nnz(&self, n: usize) -> usize {
        match self {
            Incidence::Bitmask { h, .. } => h.count_ones(),
            Incidence::Csr { by_vertex, .. } => by_vertex.nnz(),
            Incidence::Complement { by_vertex, .. } => n * n - by_vertex.nnz(),
            Incidence::Dense { h } => h.iter().filter(|v| **v != T::zero()).count(),
        }
    }
}

/// One image's hypergraph.
#[derive(Clone, Debug)]
pub struct ImageGraph<T> {
    pub incidence: Incidence<T>,
    /// Hyperedge degrees `d_e(e) = Σ_i H_ie` (unweighted).
    pub d_e: Vec<T>,
}

/// Hypergraphs of a batch of `B` images with `N` vertices each.
#[derive(Clone, Debug)]
pub struct Hypergraph<T> {
    pub(crate) config: HypergraphConfig,
    pub(crate) n: usize,
    pub(crate) images: Vec<ImageGraph<T>>,
}

impl<T: Real> Hypergraph<T> {
    /// Assembles a hypergraph from per-image parts, each with `n` vertices and `n`
    /// hyperedges; an image whose incidence or degrees are sized for another `n` is an
    /// error naming `images[b]`.
    pub fn from_images(
        config: HypergraphConfig,
        n: usize,
        images: Vec<ImageGraph<T>>,
    ) -> crate::Result<Self> {
        for (b, g) in images.iter().enumerate() {
            let arg = format!("images[{b}]");
            let square = |rows: usize, cols: usize, what: &str| {
                if (rows, cols) == (n, n) {
                    Ok(())
                } else {
                    Err(crate::Error::shape(
                        &format!("{arg}.incidence ({what})"),
                        format!("[{n}, {n}]"),
                        [rows, cols],
                    ))
                }
            };
            match &g.incidence {
                Incidence::Dense { h } if h.len() != n * n => {
                    return Err(crate::Error::shape(
                        &format!("{arg}.incidence (dense)"),
                        format!("{} values ({n} x {n})", n * n),
                        [h.len()],
                    ))
                }
                Incidence::Dense { .. } => {}
                Incidence::Bitmask { h, ht } => {
                    square(h.n_rows(), h.n_cols(), "bitmask")?;
                    if let Some(ht) = ht {
                        square(ht.n_rows(), ht.n_cols(), "transposed bitmask")?;
                    }
                }
                Incidence::Csr { by_vertex, by_edge }
                | Incidence::Complement { by_vertex, by_edge } => {
                    square(by_vertex.n_rows(), by_vertex.n_cols(), "CSR by vertex")?;
                    square(by_edge.n_rows(), by_edge.n_cols(), "CSR by hyperedge")?;
                    if by_vertex.nnz() != by_edge.nnz() {
                        return Err(crate::Error::invalid(
                            &format!("{arg}.incidence"),
                            "two CSR views of one matrix (equal entry counts)",
                            format!("{} and {} entries", by_vertex.nnz(), by_edge.nnz()),
                        ));
                    }
                }
            }
            if g.d_e.len() != n {
                return Err(crate::Error::shape(
                    &format!("{arg}.d_e"),
                    format!("[{n}]"),
                    [g.d_e.len()],
                ));
            }
        }
        Ok(Hypergraph { config, n, images })
    }

    pub fn config(&self) -> &HypergraphConfig {
        &self.config
    }

    /// Vertices (and hyperedges) per image.
    pub fn n_vertices(&self) -> usize {
        self.n
    }

    pub fn batch_size(&self) -> usize {
        self.images.len()
    }

    pub fn image(&self, b: usize) -> &ImageGraph<T> {
        &self.images[b]
    }

    pub fn images(&self) -> &[ImageGraph<T>] {
        &self.images
    }

    /// Dense `[B, N, N]` incidence, row-major.
    pub fn to_dense(&self) -> Vec<T> {
        self.images
            .iter()
            .flat_map(|g| g.incidence.to_dense(self.n))
            .collect()
    }
}
