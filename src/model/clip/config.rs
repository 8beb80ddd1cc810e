//! CLIP hyper-parameters, read from a Hugging Face `config.json`.
//!
//! Missing fields take the defaults `transformers` gives them, so the configs of
//! `openai/clip-vit-base-patch16`, `clip-vit-large-patch14` and
//! `clip-vit-large-patch14-336` load as they are. Values of the wrong type or out of
//! range are errors naming the field.
use std::path::Path;

use serde::Deserialize;

use crate::{Error, Result};

/// The activation inside each transformer block's MLP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// `x * sigmoid(1.702 x)`, OpenAI's choice.
    QuickGelu,
    /// The exact, erf-based GELU.
    Gelu,
    /// The tanh approximation of GELU.
    GeluTanh,
}

impl Activation {
    fn parse(field: &str, name: &str) -> Result<Self> {
        match name {
            "quick_gelu" => Ok(Activation::QuickGelu),
            "gelu" => Ok(Activation::Gelu),
            "gelu_new" | "gelu_pytorch_tanh" => Ok(Activation::GeluTanh),
            other => Err(Error::invalid(
                field,
                "quick_gelu, gelu or gelu_new",
                format!("{other:?}"),
            )),
        }
    }
}

/// The text tower.
#[derive(Debug, Clone, PartialEq)]
pub struct TextConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    /// The context length (77 for CLIP).
    pub max_position_embeddings: usize,
    pub hidden_act: Activation,
    pub layer_norm_eps: f64,
    /// The end-of-text id; `2` marks the legacy configs, whose pooling takes the
    /// position of the largest id instead (the end token has the largest id in CLIP's
    /// vocabulary).
    pub eos_token_id: u32,
}

/// The vision tower.
#[derive(Debug, Clone, PartialEq)]
pub struct VisionConfig {
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_channels: usize,
    /// The image side the position embeddings were trained for.
    pub image_size: usize,
    pub patch_size: usize,
    pub hidden_act: Activation,
    pub layer_norm_eps: f64,
}

impl VisionConfig {
    /// Patches per side at the trained resolution.
    pub fn grid(&self) -> usize {
        self.image_size / self.patch_size
    }
}

/// A whole CLIP model.
#[derive(Debug, Clone, PartialEq)]
pub struct ClipConfig {
    pub text: TextConfig,
    pub vision: VisionConfig,
    /// The width of the joint embedding space.
    pub projection_dim: usize,
}

#[derive(Deserialize)]
struct RawTower {
    vocab_size: Option<usize>,
    hidden_size: Option<usize>,
    intermediate_size: Option<usize>,
    num_hidden_layers: Option<usize>,
    num_attention_heads: Option<usize>,
    max_position_embeddings: Option<usize>,
    hidden_act: Option<String>,
    layer_norm_eps: Option<f64>,
    eos_token_id: Option<u32>,
    num_channels: Option<usize>,
    image_size: Option<usize>,
    patch_size: Option<usize>,
}

#[derive(Deserialize)]
struct RawConfig {
    text_config: Option<RawTower>,
    text_config_dict: Option<RawTower>,
    vision_config: Option<RawTower>,
    vision_config_dict: Option<RawTower>,
    projection_dim: Option<usize>,
}

fn positive(field: &str, v: Option<usize>, default: usize) -> Result<usize> {
    let v = v.unwrap_or(default);
    if v == 0 {
        return Err(Error::invalid(field, "a positive integer", 0));
    }
    Ok(v)
}

impl ClipConfig {
    /// Reads and checks `config.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::from_json(&text).map_err(|e| match e {
            Error::BadFile { reason, .. } => Error::BadFile {
                path: path.to_path_buf(),
                reason,
            },
            Error::InvalidArgument { arg, expected, got } => Error::BadFile {
                path: path.to_path_buf(),
                reason: format!("field `{arg}`: expected {expected}, got {got}"),
            },
            other => other,
        })
    }

    /// Parses and checks the text of a `config.json`.
    pub fn from_json(json: &str) -> Result<Self> {
        let raw: RawConfig = serde_json::from_str(json).map_err(|e| Error::BadFile {
            path: "config.json".into(),
            reason: format!("not a CLIP config: {e}"),
        })?;
        let t = raw
            .text_config
            .or(raw.text_config_dict)
            .ok_or_else(|| Error::BadFile {
                path: "config.json".into(),
                reason: "no `text_config` section (is this a CLIPModel config?)".into(),
            })?;
        let v = raw
            .vision_config
            .or(raw.vision_config_dict)
            .ok_or_else(|| Error::BadFile {
                path: "config.json".into(),
                reason: "no `vision_config` section (is this a CLIPModel config?)".into(),
            })?;

        let text = TextConfig {
            vocab_size: positive("text_config.vocab_size", t.vocab_size, 49408)?,
            hidden_size: positive("text_config.hidden_size", t.hidden_size, 512)?,
            intermediate_size: positive(
                "text_config.intermediate_size",
                t.intermediate_size,
                2048,
            )?,
            num_hidden_layers: positive("text_config.num_hidden_layers", t.num_hidden_layers, 12)?,
            num_attention_heads: positive(
                "text_config.num_attention_heads",
                t.num_attention_heads,
                8,
            )?,
            max_position_embeddings: positive(
                "text_config.max_position_embeddings",
                t.max_position_embeddings,
                77,
            )?,
            hidden_act: Activation::parse(
                "text_config.hidden_act",
                t.hidden_act.as_deref().unwrap_or("quick_gelu"),
            )?,
            layer_norm_eps: t.layer_norm_eps.unwrap_or(1e-5),
            eos_token_id: t.eos_token_id.unwrap_or(49407),
        };
        let vision = VisionConfig {
            hidden_size: positive("vision_config.hidden_size", v.hidden_size, 768)?,
            intermediate_size: positive(
                "vision_config.intermediate_size",
                v.intermediate_size,
                3072,
            )?,
            num_hidden_layers: positive(
                "vision_config.num_hidden_layers",
                v.num_hidden_layers,
                12,
            )?,
            num_attention_heads: positive(
                "vision_config.num_attention_heads",
                v.num_attention_heads,
                12,
            )?,
            num_channels: positive("vision_config.num_channels", v.num_channels, 3)?,
            image_size: positive("vision_config.image_size", v.image_size, 224)?,
            patch_size: positive("vision_config.patch_size", v.patch_size, 32)?,
            hidden_act: Activation::parse(
                "vision_config.hidden_act",
                v.hidden_act.as_deref().unwrap_or("quick_gelu"),
            )?,
            layer_norm_eps: v.layer_norm_eps.unwrap_or(1e-5),
        };
        let projection_dim = positive("projection_dim", raw.projection_dim, 512)?;

        let cfg = ClipConfig {
            text,
            vision,
            projection_dim,
        };
        cfg.check()?;
        Ok(cfg)
    }

    fn check(&self) -> Result<()> {
        let (t, v) = (&self.text, &self.vision);
        if t.hidden_size % t.num_attention_heads != 0 {
            return Err(Error::invalid(
                "text_config.num_attention_heads",
                format!("a divisor of hidden_size {}", t.hidden_size),
                t.num_attention_heads,
            ));
        }
        if v.hidden_size % v.num_attention_heads != 0 {
            return Err(Error::invalid(
                "vision_config.num_attention_heads",
                format!("a divisor of hidden_size {}", v.hidden_size),
                v.num_attention_heads,
            ));
        }
        if v.image_size % v.patch_size != 0 {
            return Err(Error::invalid(
                "vision_config.patch_size",
                format!("a divisor of image_size {}", v.image_size),
                v.patch_size,
            ));
        }
        if t.max_position_embeddings < 2 {
            return Err(Error::invalid(
                "text_config.max_position_embeddings",
                "at least 2 (start and end tokens)",
                t.max_position_embeddings,
            ));
        }
        for (field, eps) in [
            ("text_config.layer_norm_eps", t.layer_norm_eps),
            ("vision_config.layer_norm_eps", v.layer_norm_eps),
        ] {
            if !(eps.is_finite() && eps > 0.0) {
                return Err(Error::invalid(field, "a positive finite number", eps));
            }
        }
        Ok(())
    }
}
