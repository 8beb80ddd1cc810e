//! # hipl
//!
//! Dynamic hypergraphs over image patch embeddings and hypergraph convolution, forward and
//! backward, for high-order-aware prompt learning (HiPL) in zero-shot anomaly detection.
//!
//! A batch of patch embeddings `F: [B, N, D]` gives, per image, a hypergraph with one
//! vertex per patch and one hyperedge centred on each vertex (see [`Rule`]). The
//! convolution `Y = Dv^-1/2 H W De^-1 Hᵀ Dv^-1/2 X Θ` is computed right to left without
//! forming the `N × N` operator; hard incidence is stored as a bitmask or as CSR of the
//! sparser of `H` and its complement. [`dense`] is the literal dense path papers ship,
//! kept as the test oracle and the benchmark baseline.
//!
//! ```
//! use hipl::{build_hypergraph, conv, HypergraphConfig};
//! use ndarray::{Array2, Array3};
//!
//! let f = Array3::from_shape_fn((1, 6, 4), |(_, i, k)| ((i * 4 + k) as f32).sin());
//! let hg = build_hypergraph(f.view(), &HypergraphConfig::knn(3)).unwrap();
//! let theta = Array2::<f32>::eye(4);
//! let y = conv(&hg, f.view(), theta.view(), None).unwrap();
//! assert_eq!(y.dim(), (1, 6, 4));
//! ```

#[cfg(all(feature = "cuda", feature = "candle-cuda"))]
compile_error!(
    "features `cuda` and `candle-cuda` cannot be combined (run-time loading against candle's \
     linking of the CUDA libraries): `candle-cuda` already includes the kernels"
);

pub mod autograd;
#[cfg(feature = "candle")]
pub mod candle;
pub mod cli;
pub mod cpu;
pub mod cuda;
pub mod dense;
pub mod error;
pub mod eval;
pub mod hypergraph;
#[cfg(feature = "candle")]
pub mod model;
pub mod real;
#[cfg(feature = "candle")]
pub mod train;
mod validate;

pub use autograd::*;
pub use error::{Error, Result};
pub use hypergraph::{
    Hypergraph, HypergraphConfig, HypergraphStats, Incidence, IncidenceMode, Normalization,
    Representation, Rule, ZeroDegree,
};
pub use real::Real;
