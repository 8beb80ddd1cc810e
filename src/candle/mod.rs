//! The hypergraph ops as differentiable candle ops, and `candle_nn` modules over them
//! (feature `candle`).
//!
//! - [`incidence`]: features `[B, N, D]` → dense incidence `[B, N, N]`;
//! - [`hypergraph_conv`]: features (and optionally a separate signal `X`), `Θ` and the
//!   hyperedge weights → `Y = Dv^-1/2 H W De^-1 Hᵀ Dv^-1/2 X Θ`, the hypergraph built from
//!   the features inside the op;
//! - [`hsc`]: the HSC layer's patch embeddings `F̃` and global embedding `F^g`;
//! - [`HypergraphConv`] and [`Hsc`]: `candle_nn::Module`s loading their parameters through
//!   a `VarBuilder`.
//!
//! Each op is a candle custom op whose CPU forward runs this crate's CPU path and whose
//! backward runs the CPU path's backward, so `loss.backward()` gives the same gradients as
//! [`crate::hypergraph_conv_backward`] / [`crate::hsc_backward`]. The forward saves the
//! CPU path's context inside the op (it lives as long as the graph); the backward
//! recomputes the forward only if no context was saved.
//!
//! Inputs may be strided (transposed, narrowed, broadcast): they are gathered into a
//! row-major copy first, while contiguous f32/f64 inputs are read in place. f32 and f64
//! compute as they are; bf16 and f16 are widened to f32 for the CPU path and the results
//! rounded back, so their results carry f32 accuracy rounded once. All inputs of one call
//! share a dtype.
//!
//! ```
//! use candle_core::{Device, Tensor};
//! use hipl::candle::hypergraph_conv;
//! use hipl::HypergraphConfig;
//!
//! let dev = Device::Cpu;
//! let f = Tensor::randn(0f32, 1.0, (2, 16, 8), &dev).unwrap();
//! let theta = Tensor::randn(0f32, 1.0, (8, 4), &dev).unwrap();
//! let y = hypergraph_conv(&f, None, &theta, None, &HypergraphConfig::knn(4)).unwrap();
//! assert_eq!(y.dims(), &[2, 16, 4]);
//!
//! // An HSC layer whose parameters live in a VarMap (or load from safetensors).
//! use candle_core::DType;
//! use candle_nn::{VarBuilder, VarMap};
//! use hipl::candle::{Hsc, HscConfig};
//! let varmap = VarMap::new();
//! let vb = VarBuilder::from_varmap(&varmap, DType::F32, &dev);
//! let layer = Hsc::new(8, HscConfig::new(8, 3), vb.pp("hsc")).unwrap();
//! let (patches, global) = layer.forward_with_global(&f).unwrap();
//! assert_eq!((patches.dims(), global.dims()), (&[2, 16, 8][..], &[2, 3][..]));
//! ```

mod conv;
#[cfg(feature = "candle-cuda")]
mod cuda;
pub mod device;
mod host;
mod hsc;
mod incidence;
mod nn;

pub use conv::hypergraph_conv;
pub use hsc::{hsc, hsc_composed, HscTensors};
pub use incidence::incidence;
pub use nn::{Hsc, HscConfig, HypergraphConv, HypergraphConvConfig};
