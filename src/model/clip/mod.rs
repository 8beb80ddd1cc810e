//! CLIP in candle: Hugging Face checkpoints, OpenAI's tokenizer and preprocessing, the
//! value-value attention path of AnomalyCLIP, and prompting layers.
//!
//! Speed on the CPU: candle's matrix products go through the `gemm` crate, built here with
//! its `x86-v4` (AVX-512) kernels; build with `RUSTFLAGS="-C target-cpu=native"` to let the
//! compiler use them everywhere. `tools/bench_clip_vision.py` times the ViT-B/16 vision tower
//! against `transformers` in one run.
//!
//! ```no_run
//! # fn main() -> hipl::Result<()> {
//! use hipl::model::clip::{ClipModel, ClipTokenizer, VisionOptions, TextOptions};
//! let dev = candle_core::Device::Cpu;
//! let model = ClipModel::load("clip-vit-large-patch14-336".as_ref(), candle_core::DType::F32, &dev)?;
//! let pixels = hipl::model::clip::preprocess::load_images(&["cat.png"], 518, &dev)?;
//! let opts = VisionOptions { layers: vec![6, 12, 18, 24], dpam_from: Some(6), ..Default::default() };
//! let img = model.vision.forward(&pixels, &opts)?; // 37 x 37 patch grid
//! let tok = ClipTokenizer::locate(None)?;
//! let txt = model.text.forward(&tok.tokenize_batch(&["a photo of a cat"])?, &TextOptions::default())?;
//! # Ok(()) }
//! ```
use std::path::Path;

use candle_core::{DType, Device};

pub mod config;
pub mod interpolate;
pub mod preprocess;
pub mod prompting;
pub mod text;
pub mod text_clean;
pub mod tokenizer;
pub mod transformer;
pub mod vision;
pub mod weights;

pub use config::{Activation, ClipConfig, TextConfig, VisionConfig};
pub use interpolate::PosInterpolation;
pub use prompting::{TextPrompts, VisionPrompts};
pub use text::{TextOptions, TextOutput, TextTower};
pub use tokenizer::ClipTokenizer;
pub use vision::{VisionOptions, VisionOutput, VisionTower};

use crate::{Error, Result};

/// A CLIP model: both towers and their projections.
#[derive(Debug, Clone)]
pub struct ClipModel {
    pub config: ClipConfig,
    pub vision: VisionTower,
    pub text: TextTower,
}

impl ClipModel {
    // LIMITATION: only a single `model.safetensors` is read; sharded checkpoints
    // (`model.safetensors.index.json`) and PyTorch `.bin` files are not, and the file is read
    // into memory whole rather than memory-mapped. Reading the index and mapping each shard
    // with `memmap2` would lift both.
    /// Loads a Hugging Face CLIP directory (`config.json` + `model.safetensors`), converting
    /// the weights to `dtype` (f32, f16 or bf16) on `device`.
    pub fn load(dir: &Path, dtype: DType, device: &Device) -> Result<Self> {
        let start = std::time::Instant::now();
        let config = ClipConfig::from_file(&dir.join("config.json"))?;
        let path = dir.join("model.safetensors");
        let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
        let w = weights::Weights::parse(&bytes, &path, dtype, device)?;
        let vision = VisionTower::load(&w, &config.vision, config.projection_dim)?;
        let text = TextTower::load(&w, &config.text, config.projection_dim)?;
        tracing::info!(
            dir = %dir.display(),
            ?dtype,
            ?device,
            ms = start.elapsed().as_millis() as u64,
            "loaded CLIP checkpoint"
        );
        Ok(ClipModel {
            config,
            vision,
            text,
        })
    }

    /// Switches both towers to operations with a backward pass (slower), so gradients
    /// reach prompt tokens; off by default.
    pub fn set_differentiable(&mut self, on: bool) {
        self.vision.set_differentiable(on);
        self.text.set_differentiable(on);
    }
}
