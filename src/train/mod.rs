//! Training and testing HiPL: batches from the dataset layouts of [`crate::eval::data`],
//! the two optimisers (Adam on the prompt learner, SGD on the hypergraph parameters), the
//! training loop with checkpoints that resume exactly, zero-shot testing, and a tiny CLIP
//! with random weights so the whole pipeline runs with no downloads.

pub mod batch;
pub mod checkpoint;
pub mod optim;
pub mod overlay;
pub mod params;
pub mod tiny_clip;
pub mod trainer;
pub mod zero_shot;

pub use batch::{select, Batch, Loader};
pub use checkpoint::{Checkpoint, CheckpointMeta, RunInfo};
pub use optim::{Adam, AdamParams, Sgd};
pub use params::{seeded_var_builder, sorted_vars};
pub use tiny_clip::TinyClipSpec;
pub use trainer::{build_model, load_model, EpochStats, Parts, StepLoss, Trainer};
pub use zero_shot::{test, TestOptions};
