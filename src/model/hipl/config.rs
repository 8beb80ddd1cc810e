//! HiPL's hyper-parameters: which CLIP blocks give anomaly maps, feed the HSC and take
//! visual prompt tokens, the MoEPLer's experts and prompt length, and the HSC settings, all
//! serialisable so a checkpoint can carry them beside its weights.
use serde::{Deserialize, Serialize};

use crate::autograd::Activation;
use crate::candle::HscConfig;
use crate::hypergraph::{HypergraphConfig, IncidenceMode, Normalization, Rule};
use crate::model::clip::ClipConfig;
use crate::{Error, Result};

/// Most patches a side of the image grid (128 × 128 = 16384 patches, as `hipl clip-embed`
/// allows): attention over more tokens than that needs gigabytes per image.
pub const MAX_GRID: usize = 128;

/// The architecture of one MoEPLer expert. Each maps the `L` input tokens `F^g + V_l` to
/// `L` prompt tokens of the same width.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExpertKind {
    /// A 1-D convolution (kernel 3, zero padding) over the token sequence.
    Conv,
    /// One pre-norm multi-head self-attention block over the tokens.
    Attention,
    /// A token-wise two-layer perceptron.
    Mlp,
    /// A small selective state-space scan (input-dependent `Δ`, `B`, `C`; diagonal `A`).
    Ssm,
}

/// Which vertices join a hyperedge (see [`Rule`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum HscRule {
    /// The paper's rule `[σ(alpha (S − tau)) > 0.5]`, optionally capped to `top_k` members.
    Threshold { top_k: Option<usize> },
    /// `k` nearest vertices by cosine.
    Knn { k: usize },
    /// Euclidean distance below `eps`.
    EpsBall { eps: f64 },
}

/// How the incidence is formed and differentiated (see [`IncidenceMode`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HscMode {
    Hard,
    Soft,
    StraightThrough,
}

/// The degree normalisation (see [`Normalization`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HscNorm {
    Symmetric,
    RandomWalk,
}

/// `act` in the HSC layer (see [`Activation`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum HscActivation {
    Identity,
    Relu,
    LeakyRelu { slope: f64 },
    GeluTanh,
}

/// The HSC layer's settings in a serialisable form; [`HscSettings::hsc_config`] turns them
/// into the [`HscConfig`] of `crate::candle::Hsc`. Unlisted hypergraph options
/// (zero-degree policy, storage, norm floor) keep [`HypergraphConfig::default`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HscSettings {
    pub rule: HscRule,
    /// Slope of the incidence sigmoid; the paper's "large number" (100).
    pub alpha: f64,
    /// Threshold on the cosine similarity (the paper's `-1e-4`).
    pub tau: f64,
    pub mode: HscMode,
    pub norm: HscNorm,
    pub activation: HscActivation,
    /// Width of the high-order-aware patch embeddings `F̃`.
    pub d_out: usize,
    /// Width of the global embedding `F^g`.
    pub global_dim: usize,
    /// Learn one weight per hyperedge (`N` = patches of the grid), trained by SGD.
    pub edge_weights: bool,
}

impl HscSettings {
    /// The paper's hypergraph (threshold rule, alpha 100, the core's tau, hard incidence,
    /// symmetric normalisation), GELU, no learnable hyperedge weights.
    pub fn paper(d_out: usize, global_dim: usize) -> Self {
        let core = HypergraphConfig::paper();
        HscSettings {
            rule: HscRule::Threshold { top_k: None },
            alpha: core.alpha,
            tau: core.tau,
            mode: HscMode::Hard,
            norm: HscNorm::Symmetric,
            activation: HscActivation::GeluTanh,
            d_out,
            global_dim,
            edge_weights: false,
        }
    }

    /// The hypergraph part as the core's [`HypergraphConfig`].
    pub fn hypergraph(&self) -> HypergraphConfig {
        HypergraphConfig {
            rule: match self.rule {
                HscRule::Threshold { top_k } => Rule::Threshold { top_k },
                HscRule::Knn { k } => Rule::Knn { k },
                HscRule::EpsBall { eps } => Rule::EpsBall { eps },
            },
            alpha: self.alpha,
            tau: self.tau,
            mode: match self.mode {
                HscMode::Hard => IncidenceMode::Hard,
                HscMode::Soft => IncidenceMode::Soft,
                HscMode::StraightThrough => IncidenceMode::StraightThrough,
            },
            norm: match self.norm {
                HscNorm::Symmetric => Normalization::Symmetric,
                HscNorm::RandomWalk => Normalization::RandomWalk,
            },
            ..HypergraphConfig::default()
        }
    }

    /// The layer's [`HscConfig`] for `n_patches` vertices per image.
    pub fn hsc_config(&self, n_patches: usize) -> HscConfig {
        HscConfig {
            hypergraph: self.hypergraph(),
            activation: match self.activation {
                HscActivation::Identity => Activation::Identity,
                HscActivation::Relu => Activation::Relu,
                HscActivation::LeakyRelu { slope } => Activation::LeakyRelu(slope),
                HscActivation::GeluTanh => Activation::GeluTanh,
            },
            d_out: self.d_out,
            global_dim: self.global_dim,
            edge_weights: self.edge_weights.then_some(n_patches),
        }
    }

    /// Checks every field, errors naming `hsc.<field>`; `n_patches` bounds kNN's `k`.
    pub fn validate(&self, n_patches: usize) -> Result<()> {
        if !(self.alpha.is_finite() && self.alpha > 0.0) {
            return Err(Error::invalid(
                "hsc.alpha",
                "a finite number > 0",
                self.alpha,
            ));
        }
        if !self.tau.is_finite() {
            return Err(Error::invalid("hsc.tau", "a finite number", self.tau));
        }
        match self.rule {
            HscRule::Threshold { top_k: Some(0) } => {
                return Err(Error::invalid("hsc.rule.top_k", "at least 1 or none", 0))
            }
            HscRule::Knn { k } if k == 0 || k > n_patches => {
                return Err(Error::invalid(
                    "hsc.rule.k",
                    format!("1..={n_patches} (the patches of the grid)"),
                    k,
                ))
            }
            HscRule::EpsBall { eps } if !(eps.is_finite() && eps > 0.0) => {
                return Err(Error::invalid("hsc.rule.eps", "a finite number > 0", eps))
            }
            _ => {}
        }
        if let HscActivation::LeakyRelu { slope } = self.activation {
            if !slope.is_finite() {
                return Err(Error::invalid(
                    "hsc.activation.slope",
                    "a finite number",
                    slope,
                ));
            }
        }
        if self.d_out == 0 {
            return Err(Error::invalid("hsc.d_out", "a positive width", 0));
        }
        if self.global_dim == 0 {
            return Err(Error::invalid("hsc.global_dim", "a positive width", 0));
        }
        Ok(())
    }
}

/// Everything that shapes a HiPL model on top of a CLIP.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HiplConfig {
    /// Input side in pixels (square images).
    pub image_size: usize,
    /// Vision blocks (1-based) whose patch tokens give anomaly maps.
    pub map_layers: Vec<usize>,
    /// Vision block (1-based) whose frozen patch tokens feed the HSC.
    pub hsc_layer: usize,
    /// AnomalyCLIP's value-value attention (DPAM) from this block on.
    pub dpam_from: Option<usize>,
    /// `L`, the number of learnable word embeddings per template (paper: 12).
    pub prompt_len: usize,
    /// The MoEPLer's `K` experts (paper: 4, one of each kind).
    pub experts: Vec<ExpertKind>,
    /// Vision blocks that get the visual prompt tokens `Proj(F^g)`.
    pub vision_prompt_layers: Vec<usize>,
    /// Visual prompt tokens per prompting layer.
    pub vision_prompt_tokens: usize,
    pub hsc: HscSettings,
    /// Divides the cosine similarities (0.07).
    pub temperature: f64,
    /// Gaussian smoothing of test maps, in pixels (4; `0`: none; at most
    /// [`MAX_SIGMA`](super::MAX_SIGMA) = 64).
    pub sigma: f64,
}

/// `round(k · n / 4)` for `k = 1..=4`, deduplicated and at least 1: AnomalyCLIP's 6, 12,
/// 18, 24 on a 24-block tower.
fn quarter_layers(n: usize) -> Vec<usize> {
    let mut v: Vec<usize> = (1..=4).map(|k| ((k * n + 2) / 4).max(1)).collect();
    v.dedup();
    v
}

impl HiplConfig {
    /// The paper's defaults for `clip` at `image_size` px: maps from the blocks at each
    /// quarter of the vision tower (6/12/18/24 on ViT-L/14), DPAM from AnomalyCLIP's
    /// `DPAM_layer = 20` scaled to the tower (block 6 of 24), the HSC on the last block's
    /// patch tokens, `L = 12`, one expert of each kind (`K = 4`), 5 visual prompt tokens in
    /// the first sixth of the blocks (AdaCLIP's prompting depth 4 and length 5 on 24
    /// blocks), temperature 0.07, `sigma = 4`. The HSC keeps the joint-space width of the
    /// patch tokens and makes `F^g` as wide as the text tower.
    pub fn for_clip(clip: &ClipConfig, image_size: usize) -> Self {
        let n = clip.vision.num_hidden_layers.max(1);
        let dpam_keep = (20 * n + 12) / 24; // blocks AnomalyCLIP's DPAM_layer leaves alone
        let prompt_depth = n.div_ceil(6);
        HiplConfig {
            image_size,
            map_layers: quarter_layers(n),
            hsc_layer: n,
            dpam_from: Some((n + 2).saturating_sub(dpam_keep).clamp(1, n)),
            prompt_len: 12,
            experts: vec![
                ExpertKind::Conv,
                ExpertKind::Attention,
                ExpertKind::Mlp,
                ExpertKind::Ssm,
            ],
            vision_prompt_layers: (1..=prompt_depth).collect(),
            vision_prompt_tokens: 5,
            hsc: HscSettings::paper(clip.projection_dim, clip.text.hidden_size),
            temperature: 0.07,
            sigma: 4.0,
        }
    }

    /// Patches per side of the grid at `image_size`.
    pub fn grid(&self, clip: &ClipConfig) -> usize {
        self.image_size / clip.vision.patch_size.max(1)
    }

    /// Checks every field against `clip`; errors name the field.
    pub fn validate(&self, clip: &ClipConfig) -> Result<()> {
        let n = clip.vision.num_hidden_layers;
        let p = clip.vision.patch_size;
        let grid = self.image_size / p.max(1);
        if !self.image_size.is_multiple_of(p) || !(2..=MAX_GRID).contains(&grid) {
            return Err(Error::invalid(
                "image_size",
                format!(
                    "a multiple of the patch size {p} from {} to {} (2 to {MAX_GRID} patches a side)",
                    2 * p,
                    MAX_GRID * p
                ),
                self.image_size,
            ));
        }
        let block = |field: &str, l: usize| -> Result<()> {
            if l == 0 || l > n {
                return Err(Error::invalid(
                    field,
                    format!("vision blocks in 1..={n}"),
                    l,
                ));
            }
            Ok(())
        };
        if self.map_layers.is_empty() {
            return Err(Error::invalid(
                "map_layers",
                "at least one vision block",
                "none",
            ));
        }
        for &l in &self.map_layers {
            block("map_layers", l)?;
        }
        let mut sorted = self.map_layers.clone();
        sorted.sort_unstable();
        sorted.dedup();
        if sorted.len() != self.map_layers.len() {
            return Err(Error::invalid(
                "map_layers",
                "distinct blocks",
                format!("{:?}", self.map_layers),
            ));
        }
        block("hsc_layer", self.hsc_layer)?;
        if let Some(d) = self.dpam_from {
            block("dpam_from", d)?;
        }
        // SOT, L placeholders, "damaged object ." (3 tokens) and EOT must fit the context
        let room = clip.text.max_position_embeddings.saturating_sub(5);
        if self.prompt_len == 0 || self.prompt_len > room {
            return Err(Error::invalid(
                "prompt_len",
                format!("1..={room} (the text context less the template words)"),
                self.prompt_len,
            ));
        }
        if self.experts.is_empty() {
            return Err(Error::invalid("experts", "at least one expert", "none"));
        }
        for &l in &self.vision_prompt_layers {
            block("vision_prompt_layers", l)?;
        }
        if !self.vision_prompt_layers.is_empty() && self.vision_prompt_tokens == 0 {
            return Err(Error::invalid(
                "vision_prompt_tokens",
                "at least 1 when vision_prompt_layers is not empty",
                0,
            ));
        }
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return Err(Error::invalid(
                "temperature",
                "a finite number > 0",
                self.temperature,
            ));
        }
        super::maps::check_sigma(self.sigma)?;
        let g = self.grid(clip);
        self.hsc.validate(g * g)
    }
}
