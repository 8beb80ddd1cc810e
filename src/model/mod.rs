//! The model layer on candle: CLIP and its prompting layers.
pub mod clip;
