//! hipl: dynamic hypergraphs over image patch embeddings.
pub mod error;
pub use error::{Error, Result};
