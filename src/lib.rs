//! hipl: dynamic hypergraphs over image patch embeddings.
pub mod cuda;
pub mod error;
pub use error::{Error, Result};
