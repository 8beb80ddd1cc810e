//! The model layer on candle: CLIP and its prompting layers, and HiPL on top of them.
pub mod clip;
pub mod hipl;
