//! The CPU backend: `faer` products, rayon over rows and blocks, bitmask and CSR products.

pub mod construct;
pub mod conv;
pub mod gemm;
pub mod normalize;
pub mod spmm;
pub mod topk;
