//! hipl: dynamic hypergraphs over image patch embeddings.
pub mod cli;
pub mod error;
#[cfg(feature = "candle")]
pub mod model;
pub use error::{Error, Result};
