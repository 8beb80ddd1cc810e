//! A tiny CLIP with random weights, written as a Hugging Face directory (`config.json` +
//! `model.safetensors`) that [`crate::model::clip::ClipModel::load`] reads like any other.
//!
//! It exists so the whole pipeline (synthesise, train, test) runs on a fresh machine with no
//! downloads. Its weights are random: metrics of a model built on it show that the pipeline
//! runs, not how well HiPL detects anomalies. The vocabulary is CLIP's real one (49,408
//! tokens), so the bundled BPE tokenizer works with it.
//!
//! Initialisation follows `transformers`' `CLIPPreTrainedModel._init_weights` with
//! `initializer_factor = 1`: token and position embeddings `N(0, 0.02)`, class embedding
//! `N(0, width^-1/2)`, patch embedding `N(0, 0.02)`, attention projections
//! `N(0, width^-1/2 (2 layers)^-1/2)` (output projection the same), MLP `fc1` `N(0,
//! (2 width)^-1/2)` and `fc2` like the attention, the two joint-space projections
//! `N(0, width^-1/2)`, biases 0, layer norms weight 1 and bias 0.

use crate::error::{Error, Result};
use candle_core::{Device, Tensor};
use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{Distribution, Normal};
use serde_json::json;
use std::collections::HashMap;
use std::path::Path;

/// CLIP's BPE vocabulary size; the bundled tokenizer emits ids below it.
pub const VOCAB_SIZE: usize = 49408;
/// CLIP's text context length.
pub const CONTEXT_LENGTH: usize = 77;

/// The shape of the tiny model. MLP widths are four times the tower widths, as in CLIP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TinyClipSpec {
    /// Vision tower width.
    pub vision_width: usize,
    /// Vision transformer blocks.
    pub vision_layers: usize,
    pub vision_heads: usize,
    /// Side of the square patches in pixels.
    pub patch_size: usize,
    /// The image side the position embeddings are made for (other sides interpolate).
    pub image_size: usize,
    /// Text tower width.
    pub text_width: usize,
    /// Text transformer blocks.
    pub text_layers: usize,
    pub text_heads: usize,
    /// Width of the joint image-text embedding space.
    pub projection_dim: usize,
}

impl Default for TinyClipSpec {
    /// Width 64 and 4 blocks in each tower, 16-pixel patches at 128 px (an 8 × 8 grid).
    fn default() -> Self {
        TinyClipSpec {
            vision_width: 64,
            vision_layers: 4,
            vision_heads: 4,
            patch_size: 16,
            image_size: 128,
            text_width: 64,
            text_layers: 4,
            text_heads: 4,
            projection_dim: 64,
        }
    }
}

impl TinyClipSpec {
    fn check(&self) -> Result<()> {
        let positive = [
            ("vision_width", self.vision_width),
            ("vision_layers", self.vision_layers),
            ("vision_heads", self.vision_heads),
            ("patch_size", self.patch_size),
            ("image_size", self.image_size),
            ("text_width", self.text_width),
            ("text_layers", self.text_layers),
            ("text_heads", self.text_heads),
            ("projection_dim", self.projection_dim),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(Error::invalid(name, "a positive integer", 0));
        }
        if !self.vision_width.is_multiple_of(self.vision_heads) {
            return Err(Error::invalid(
                "vision_heads",
                format!("a divisor of vision_width {}", self.vision_width),
                self.vision_heads,
            ));
        }
        if !self.text_width.is_multiple_of(self.text_heads) {
            return Err(Error::invalid(
                "text_heads",
                format!("a divisor of text_width {}", self.text_width),
                self.text_heads,
            ));
        }
        if !self.image_size.is_multiple_of(self.patch_size) {
            return Err(Error::invalid(
                "patch_size",
                format!("a divisor of image_size {}", self.image_size),
                self.patch_size,
            ));
        }
        Ok(())
    }

    /// The Hugging Face `config.json` of this model.
    pub fn config_json(&self) -> serde_json::Value {
        json!({
            "model_type": "clip",
            "architectures": ["CLIPModel"],
            "projection_dim": self.projection_dim,
            "logit_scale_init_value": 2.6592,
            "initializer_factor": 1.0,
            "hipl_note": "tiny CLIP with RANDOM weights written by hipl; not a trained model",
            "text_config": {
                "model_type": "clip_text_model",
                "vocab_size": VOCAB_SIZE,
                "hidden_size": self.text_width,
                "intermediate_size": 4 * self.text_width,
                "num_hidden_layers": self.text_layers,
                "num_attention_heads": self.text_heads,
                "max_position_embeddings": CONTEXT_LENGTH,
                "hidden_act": "quick_gelu",
                "layer_norm_eps": 1e-5,
                "bos_token_id": 49406,
                "eos_token_id": 49407,
                "pad_token_id": 1,
            },
            "vision_config": {
                "model_type": "clip_vision_model",
                "hidden_size": self.vision_width,
                "intermediate_size": 4 * self.vision_width,
                "num_hidden_layers": self.vision_layers,
                "num_attention_heads": self.vision_heads,
                "num_channels": 3,
                "image_size": self.image_size,
                "patch_size": self.patch_size,
                "hidden_act": "quick_gelu",
                "layer_norm_eps": 1e-5,
            },
        })
    }
}

/// Draws the tensors in a fixed order from one seeded generator.
struct Init {
    rng: StdRng,
    tensors: HashMap<String, Tensor>,
}

impl Init {
    fn normal(&mut self, name: String, shape: &[usize], std: f64) -> Result<()> {
        let dist = Normal::new(0.0f32, std as f32)
            .map_err(|e| Error::invalid("std", "a finite positive number", e))?;
        let n: usize = shape.iter().product();
        let data: Vec<f32> = (0..n).map(|_| dist.sample(&mut self.rng)).collect();
        let t = Tensor::from_vec(data, shape, &Device::Cpu)?;
        self.tensors.insert(name, t);
        Ok(())
    }

    fn constant(&mut self, name: String, shape: &[usize], value: f32) -> Result<()> {
        let t = Tensor::full(value, shape, &Device::Cpu)?;
        self.tensors.insert(name, t);
        Ok(())
    }

    fn layer_norm(&mut self, prefix: &str, d: usize) -> Result<()> {
        self.constant(format!("{prefix}.weight"), &[d], 1.0)?;
        self.constant(format!("{prefix}.bias"), &[d], 0.0)
    }

    fn linear(&mut self, prefix: &str, d_in: usize, d_out: usize, std: f64) -> Result<()> {
        self.normal(format!("{prefix}.weight"), &[d_out, d_in], std)?;
        self.constant(format!("{prefix}.bias"), &[d_out], 0.0)
    }

    /// The transformer blocks of one tower under `<tower>.encoder.layers.<i>`.
    fn blocks(&mut self, tower: &str, d: usize, layers: usize) -> Result<()> {
        let d_f = d as f64;
        let attn_std = d_f.powf(-0.5) * (2.0 * layers as f64).powf(-0.5);
        let fc1_std = (2.0 * d_f).powf(-0.5);
        for i in 0..layers {
            let p = format!("{tower}.encoder.layers.{i}");
            self.layer_norm(&format!("{p}.layer_norm1"), d)?;
            for proj in ["q_proj", "k_proj", "v_proj", "out_proj"] {
                self.linear(&format!("{p}.self_attn.{proj}"), d, d, attn_std)?;
            }
            self.layer_norm(&format!("{p}.layer_norm2"), d)?;
            self.linear(&format!("{p}.mlp.fc1"), d, 4 * d, fc1_std)?;
            self.linear(&format!("{p}.mlp.fc2"), 4 * d, d, attn_std)?;
        }
        Ok(())
    }
}

/// Every tensor of the model described by `spec`, drawn from `seed`.
pub fn random_weights(spec: &TinyClipSpec, seed: u64) -> Result<HashMap<String, Tensor>> {
    spec.check()?;
    let mut init = Init {
        rng: StdRng::seed_from_u64(seed),
        tensors: HashMap::new(),
    };
    let (dv, dt, p) = (spec.vision_width, spec.text_width, spec.patch_size);
    let grid = spec.image_size / p;

    init.normal(
        "vision_model.embeddings.patch_embedding.weight".into(),
        &[dv, 3, p, p],
        0.02,
    )?;
    init.normal(
        "vision_model.embeddings.class_embedding".into(),
        &[dv],
        (dv as f64).powf(-0.5),
    )?;
    init.normal(
        "vision_model.embeddings.position_embedding.weight".into(),
        &[grid * grid + 1, dv],
        0.02,
    )?;
    init.layer_norm("vision_model.pre_layrnorm", dv)?;
    init.blocks("vision_model", dv, spec.vision_layers)?;
    init.layer_norm("vision_model.post_layernorm", dv)?;
    init.normal(
        "visual_projection.weight".into(),
        &[spec.projection_dim, dv],
        (dv as f64).powf(-0.5),
    )?;

    init.normal(
        "text_model.embeddings.token_embedding.weight".into(),
        &[VOCAB_SIZE, dt],
        0.02,
    )?;
    init.normal(
        "text_model.embeddings.position_embedding.weight".into(),
        &[CONTEXT_LENGTH, dt],
        0.02,
    )?;
    init.blocks("text_model", dt, spec.text_layers)?;
    init.layer_norm("text_model.final_layer_norm", dt)?;
    init.normal(
        "text_projection.weight".into(),
        &[spec.projection_dim, dt],
        (dt as f64).powf(-0.5),
    )?;
    init.constant("logit_scale".into(), &[], 2.6592)?;
    Ok(init.tensors)
}

/// Writes `config.json` and `model.safetensors` of a tiny random CLIP into `dir` (created).
pub fn write(dir: &Path, spec: &TinyClipSpec, seed: u64) -> Result<()> {
    let tensors = random_weights(spec, seed)?;
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let config = dir.join("config.json");
    let text = serde_json::to_string_pretty(&spec.config_json()).unwrap_or_default();
    std::fs::write(&config, text).map_err(|e| Error::io(&config, e))?;
    let weights = dir.join("model.safetensors");
    candle_core::safetensors::save(&tensors, &weights).map_err(|e| Error::BadFile {
        path: weights.clone(),
        reason: format!("cannot write the tiny CLIP weights: {e}"),
    })?;
    tracing::info!(dir = %dir.display(), seed, ?spec, "wrote a tiny CLIP with random weights");
    Ok(())
}
