//! HiPL, high-order-aware prompt learning for zero-shot anomaly detection, on a frozen
//! CLIP.
//!
//! Per image, [`Hipl::forward`]:
//! 1. runs the frozen vision tower once (fast operations, nothing learnable) and takes the
//!    patch tokens of `hsc_layer`, mapped into the joint space (`post_layernorm` and the
//!    visual projection) and detached;
//! 2. builds the dynamic hypergraph over those patches and applies the HSC layer
//!    ([`crate::candle::Hsc`]) to get the global high-order-aware embedding `F^g`;
//! 3. lets the MoEPLer ([`MoePler`]) turn `F^g` and the learnable words `V`, `W` into the
//!    prompt tokens of the templates `[V1..VL] object .` and `[W1..WL] damaged object .`,
//!    and runs the text tower on all `2B` prompts in one batch;
//! 4. appends the visual prompt tokens `Proj(F^g)` at `vision_prompt_layers` and runs the
//!    vision tower again (skipped when there are no visual prompts: the first pass serves);
//! 5. turns each map layer's patch tokens into a two-channel probability map and the class
//!    token into image logits ([`HiplOutput`]).
//!
//! Learnable variables live in two `VarBuilder`s (the trainer keeps a `VarMap` behind
//! each): the prompt learner (`moepler.*`: words, `global_proj`, `router.*`, `experts.*`;
//! `visual_proj`) and the HSC (`theta`, `a.*`, `global.*`, optionally `weights`). Nothing
//! else is created. Training needs [`Hipl::set_differentiable`]`(true)` (or the same on the
//! CLIP before [`Hipl::new`]) so gradients cross the frozen towers.
use std::collections::BTreeSet;

use candle_core::{DType, Tensor, D};
use candle_nn::{linear, Linear, Module, VarBuilder};

use crate::candle::Hsc;
use crate::model::clip::{
    ClipModel, ClipTokenizer, TextOptions, TextPrompts, VisionOptions, VisionOutput, VisionPrompts,
};
use crate::{Error, Result};

mod config;
mod experts;
mod loss;
mod maps;
mod moepler;

pub use config::{ExpertKind, HiplConfig, HscActivation, HscMode, HscNorm, HscRule, HscSettings};
pub use loss::{dice_loss, focal_loss, hipl_loss, image_focal_loss, LossParts};
pub use maps::{gaussian_kernel, gaussian_smooth, upsample_bilinear, HiplOutput, MAX_SIGMA};
pub use moepler::{MoePler, MoePrompts};

/// The normal template's words after the prompt tokens.
pub const NORMAL_TEMPLATE: &str = "object .";
/// The abnormal template's words after the prompt tokens.
pub const ABNORMAL_TEMPLATE: &str = "damaged object .";

/// A HiPL model: a frozen CLIP, the HSC layer, the MoEPLer and the visual prompt
/// projection.
// LIMITATION: the text side has only the MoEPLer's prefix prompts; AnomalyCLIP's learnable
// deep text prompts (`TextPrompts::deep`) are not added. A `Var` per deep layer passed as
// `TextPrompts::deep_at` would add them.
// LIMITATION: only the AnomalyCLIP-based HiPL is built. The paper's AdaCLIP variant (AdaCLIP:
// static and dynamic hybrid prompts inserted into both the text and the image encoder at
// several layers, and hybrid semantic fusion of the layers' patch maps; HiPL's `P_V^H` then
// going into both encoders) is not. A `HiplVariant` in `HiplConfig` choosing, per encoder,
// static learnable tokens plus `F^g`-driven dynamic ones at `vision_prompt_layers` (text
// side through `TextPrompts::deep_at`), and an AdaCLIP fusion step in `HiplOutput`, would
// add it.
#[derive(Debug, Clone)]
pub struct Hipl {
    config: HiplConfig,
    /// The CLIP the gradients cross (differentiable when training).
    clip: ClipModel,
    /// The same weights with the fast operations, for the pass that feeds the HSC.
    frozen: ClipModel,
    /// Token ids of the two templates (normal, abnormal), cut after the longer one's end
    /// token (the causal mask makes the rest irrelevant).
    template_ids: [Vec<u32>; 2],
    hsc: Hsc,
    moepler: MoePler,
    /// `F^g: [E]` → `vision_prompt_tokens × vision width`; none without visual prompts.
    visual_proj: Option<Linear>,
}

impl Hipl {
    /// Builds the model on `clip`: prompt-learner variables under `prompt_vb`, HSC variables
    /// under `hsc_vb` (created by a `VarMap`, or loaded from a checkpoint).
    pub fn new(
        clip: ClipModel,
        tokenizer: &ClipTokenizer,
        config: HiplConfig,
        prompt_vb: VarBuilder,
        hsc_vb: VarBuilder,
    ) -> Result<Self> {
        let cc = &clip.config;
        config.validate(cc)?;
        let (tw, vw) = (cc.text.hidden_size, cc.vision.hidden_size);
        let g = config.grid(cc);

        let normal = tokenizer.prompt_template(config.prompt_len, NORMAL_TEMPLATE)?;
        let abnormal = tokenizer.prompt_template(config.prompt_len, ABNORMAL_TEMPLATE)?;
        let end = |ids: &[u32]| {
            let max = ids.iter().copied().max().unwrap_or(0);
            ids.iter().position(|&i| i == max).unwrap_or(ids.len() - 1)
        };
        let len = (end(&normal).max(end(&abnormal)) + 1).min(normal.len());
        let template_ids = [normal[..len].to_vec(), abnormal[..len].to_vec()];

        let hsc = Hsc::new(cc.projection_dim, config.hsc.hsc_config(g * g), hsc_vb)?;
        let moepler = MoePler::new(
            config.prompt_len,
            tw,
            config.hsc.global_dim,
            &config.experts,
            cc.text.num_attention_heads,
            prompt_vb.pp("moepler"),
        )?;
        let visual_proj = if config.vision_prompt_layers.is_empty() {
            None
        } else {
            Some(linear(
                config.hsc.global_dim,
                config.vision_prompt_tokens * vw,
                prompt_vb.pp("visual_proj"),
            )?)
        };
        let mut frozen = clip.clone();
        frozen.set_differentiable(false);
        tracing::info!(
            prompt_len = config.prompt_len,
            experts = config.experts.len(),
            map_layers = ?config.map_layers,
            hsc_layer = config.hsc_layer,
            image_size = config.image_size,
            "built HiPL model"
        );
        Ok(Hipl {
            config,
            clip,
            frozen,
            template_ids,
            hsc,
            moepler,
            visual_proj,
        })
    }

    pub fn config(&self) -> &HiplConfig {
        &self.config
    }

    /// The CLIP underneath.
    pub fn clip(&self) -> &ClipModel {
        &self.clip
    }

    pub fn hsc(&self) -> &Hsc {
        &self.hsc
    }

    pub fn moepler(&self) -> &MoePler {
        &self.moepler
    }

    /// Switches the CLIP the gradients cross to operations with a backward pass (needed to
    /// train; slower). The pass that feeds the HSC always keeps the fast ones.
    pub fn set_differentiable(&mut self, on: bool) {
        self.clip.set_differentiable(on);
    }

    /// The global high-order-aware embedding `F^g: [B, global_dim]` from the frozen
    /// tokens of a vision pass that returned `hsc_layer`.
    fn global(&self, vis: &VisionOutput) -> Result<Tensor> {
        let tokens = vis.patch_tokens(self.config.hsc_layer)?;
        let feats = self.frozen.vision.project_tokens(&tokens)?.detach();
        let dtype = self.hsc.tensors().theta.dtype();
        Ok(self.hsc.global(&feats.to_dtype(dtype)?)?)
    }

    /// Normalised text embeddings `[B, 2, projection_dim]` (f32) of the per-image prompts.
    fn text_embeds(&self, normal: &Tensor, abnormal: &Tensor) -> Result<Tensor> {
        let (b, l, w) = normal.dims3()?;
        let prefix = Tensor::stack(&[normal, abnormal], 1)?.reshape((2 * b, l, w))?;
        let ids: Vec<Vec<u32>> = (0..b)
            .flat_map(|_| self.template_ids.iter().cloned())
            .collect();
        let prompts = TextPrompts::new().with_prefix(prefix);
        let opts = TextOptions {
            layers: vec![],
            prompts: Some(&prompts),
        };
        let t = self.clip.text.forward(&ids, &opts)?.text_embeds;
        let t = l2_normalise(&t.to_dtype(DType::F32)?)?;
        Ok(t.reshape((b, 2, t.dim(1)?))?)
    }

    /// `pixels: [B, 3, S, S]`, CLIP-normalised (mean/std), `S = config.image_size`, `B >= 1`.
    pub fn forward(&self, pixels: &Tensor) -> Result<HiplOutput> {
        let cfg = &self.config;
        let s = cfg.image_size;
        let c = self.clip.config.vision.num_channels;
        match pixels.dims() {
            &[b, ch, h, w] if b >= 1 && ch == c && h == s && w == s => {}
            d => {
                return Err(Error::shape(
                    "pixels",
                    format!("[B >= 1, {c}, {s}, {s}] (image_size {s})"),
                    d,
                ))
            }
        }
        let prompted = self.visual_proj.is_some();

        // frozen pass: the HSC's tokens, and the maps' too when nothing is prompted
        // LIMITATION: this pass runs every block even when it only needs `hsc_layer`'s
        // tokens; a `VisionOptions` field to stop after a block would save the rest.
        let mut layers: BTreeSet<usize> = BTreeSet::from([cfg.hsc_layer]);
        if !prompted {
            layers.extend(&cfg.map_layers);
        }
        let opts = VisionOptions {
            layers: layers.into_iter().collect(),
            dpam_from: cfg.dpam_from,
            ..Default::default()
        };
        let first = self.frozen.vision.forward(pixels, &opts)?;
        let global = self.global(&first)?;

        let prompts = self.moepler.forward(&global)?;
        let text = self.text_embeds(&prompts.normal, &prompts.abnormal)?;

        let (vis, tower) = match &self.visual_proj {
            Some(proj) => {
                let b = global.dim(0)?;
                let vw = self.clip.config.vision.hidden_size;
                let tokens = proj
                    .forward(&global.to_dtype(proj.weight().dtype())?)?
                    .reshape((b, cfg.vision_prompt_tokens, vw))?;
                let vp = cfg
                    .vision_prompt_layers
                    .iter()
                    .fold(VisionPrompts::new(), |vp, &l| vp.at(l, tokens.clone()));
                let opts = VisionOptions {
                    layers: cfg.map_layers.clone(),
                    dpam_from: cfg.dpam_from,
                    prompts: Some(&vp),
                    ..Default::default()
                };
                (self.clip.vision.forward(pixels, &opts)?, &self.clip.vision)
            }
            None => (first, &self.frozen.vision),
        };

        let temp = cfg.temperature;
        let image = l2_normalise(&vis.image_embeds.to_dtype(DType::F32)?)?;
        let image_logits = (image
            .unsqueeze(1)?
            .matmul(&text.transpose(1, 2)?)?
            .squeeze(1)?
            / temp)?;

        let (gh, gw) = vis.grid;
        let text_t = text.transpose(1, 2)?.contiguous()?; // [B, P, 2]
        let layer_maps = cfg
            .map_layers
            .iter()
            .map(|&l| {
                let tok = tower.project_tokens(&vis.patch_tokens(l)?)?;
                let tok = l2_normalise(&tok.to_dtype(DType::F32)?)?; // [B, N, P]
                let sim = (tok.matmul(&text_t)? / temp)?; // [B, N, 2]
                let probs = candle_nn::ops::softmax(&sim, D::Minus1)?;
                let b = probs.dim(0)?;
                let grid = probs.transpose(1, 2)?.reshape((b, 2, gh, gw))?;
                upsample_bilinear(&grid, s, s)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(HiplOutput {
            layer_maps,
            image_logits,
            gate: prompts.gate,
            text_embeds: text,
        })
    }
}

/// Rows of `x` (last dimension) divided by their L2 norm (floored at 1e-12).
fn l2_normalise(x: &Tensor) -> Result<Tensor> {
    let norm = x
        .sqr()?
        .sum_keepdim(D::Minus1)?
        .sqrt()?
        .clamp(1e-12, f64::MAX)?;
    Ok(x.broadcast_div(&norm)?)
}
