//! Training and testing HiPL: batches from the dataset layouts of [`crate::eval::data`],
//! the two optimisers (Adam on the prompt learner, SGD on the hypergraph parameters), the
//! training loop with checkpoints that resume exactly, zero-shot testing, and a tiny CLIP
//! with random weights so the whole pipeline runs with no downloads.

pub mod batch;
pub mod optim;
pub mod params;
pub mod tiny_clip;

pub use batch::{select, Batch, Loader};
pub use optim::{Adam, AdamParams, Sgd};
pub use params::{seeded_var_builder, sorted_vars};
pub use tiny_clip::TinyClipSpec;
