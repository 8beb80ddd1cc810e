//! CLIP's vision tower: patch embedding, class token, position embeddings (interpolated to
//! other grids), pre-LN blocks, `post_layernorm` on the class token and the projection.
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use candle_core::{DType, Tensor};

use super::config::VisionConfig;
use super::interpolate::{resize_grid, PosInterpolation};
use super::prompting::{check_layers, expand_prompt, VisionPrompts};
use super::transformer::{Block, BlockDims};
use super::weights::{LayerNorm, Linear, Weights};
use crate::{Error, Result};

/// What a vision forward computes besides the image embedding.
#[derive(Debug, Clone, Default)]
pub struct VisionOptions<'a> {
    /// Blocks whose output tokens to return, 1-based (`0`: the input of block 1, after
    /// `pre_layrnorm`; AnomalyCLIP uses 6, 12, 18, 24 on ViT-L/14).
    pub layers: Vec<usize>,
    /// Run AnomalyCLIP's value-value attention path (DPAM) from this block on (1-based);
    /// the tokens returned for those blocks come from it, while the image embedding keeps
    /// the original path. AnomalyCLIP's `DPAM_layer = d` on an `n`-block tower is
    /// `dpam_from = n - d + 2`.
    pub dpam_from: Option<usize>,
    /// How position embeddings reach a grid other than the trained one.
    pub interpolation: PosInterpolation,
    /// Prompt tokens appended at chosen blocks.
    pub prompts: Option<&'a VisionPrompts>,
}

/// Result of a vision forward.
#[derive(Debug, Clone)]
pub struct VisionOutput {
    /// `[B, projection_dim]`: projected, not normalised.
    pub image_embeds: Tensor,
    /// `[B, width]`: the class token after `post_layernorm`.
    pub pooled: Tensor,
    /// Block index to `[B, 1 + gh * gw, width]` (class token first, prompts stripped).
    pub layers: BTreeMap<usize, Tensor>,
    /// `[B, 1 + gh * gw, width]`: the last block's output on the original path (prompts
    /// stripped), before `post_layernorm`.
    pub last_hidden: Tensor,
    /// Patches per column and per row.
    pub grid: (usize, usize),
}

impl VisionOutput {
    /// `[B, gh * gw, width]`: the patch tokens (class token removed) of a returned block.
    pub fn patch_tokens(&self, layer: usize) -> Result<Tensor> {
        let t = self.layers.get(&layer).ok_or_else(|| {
            let have: Vec<_> = self.layers.keys().collect();
            Error::invalid(
                "layer",
                format!("one of the requested blocks {have:?}"),
                layer,
            )
        })?;
        let n = t.dim(1)?;
        Ok(t.narrow(1, 1, n - 1)?)
    }
}

/// Interpolated position embeddings keyed by grid rows, grid columns and method.
type PosCache = HashMap<(usize, usize, PosInterpolation), Tensor>;

/// The vision transformer of a CLIP checkpoint.
#[derive(Debug, Clone)]
pub struct VisionTower {
    pub config: VisionConfig,
    /// `[width, channels * patch * patch]`.
    patch: Tensor,
    class: Tensor,
    /// `[1 + grid², width]`.
    pos: Tensor,
    /// Interpolated position embeddings by grid and method, computed once each.
    pos_cache: Arc<Mutex<PosCache>>,
    pre_ln: LayerNorm,
    blocks: Vec<Block>,
    post_ln: LayerNorm,
    proj: Linear,
}

impl VisionTower {
    pub fn load(w: &Weights, cfg: &VisionConfig, projection_dim: usize) -> Result<Self> {
        let (d, p, c, g) = (
            cfg.hidden_size,
            cfg.patch_size,
            cfg.num_channels,
            cfg.grid(),
        );
        let pre = "vision_model";
        let patch = w.get(
            &format!("{pre}.embeddings.patch_embedding.weight"),
            &[d, c, p, p],
        )?;
        let dims = BlockDims {
            width: d,
            heads: cfg.num_attention_heads,
            mlp: cfg.intermediate_size,
            act: cfg.hidden_act,
            eps: cfg.layer_norm_eps,
        };
        let blocks = (0..cfg.num_hidden_layers)
            .map(|i| Block::load(w, &format!("{pre}.encoder.layers.{i}"), dims))
            .collect::<Result<Vec<_>>>()?;
        Ok(VisionTower {
            config: cfg.clone(),
            patch: patch.reshape((d, c * p * p))?,
            class: w.get(&format!("{pre}.embeddings.class_embedding"), &[d])?,
            pos: w.get(
                &format!("{pre}.embeddings.position_embedding.weight"),
                &[g * g + 1, d],
            )?,
            pos_cache: Default::default(),
            pre_ln: LayerNorm::load(w, &format!("{pre}.pre_layrnorm"), d, cfg.layer_norm_eps)?,
            blocks,
            post_ln: LayerNorm::load(w, &format!("{pre}.post_layernorm"), d, cfg.layer_norm_eps)?,
            proj: Linear::load(w, "visual_projection", d, projection_dim, false)?,
        })
    }

    pub(crate) fn set_differentiable(&mut self, on: bool) {
        self.blocks
            .iter_mut()
            .for_each(|b| b.set_differentiable(on));
        self.pre_ln.differentiable = on;
        self.post_ln.differentiable = on;
    }

    /// Position embeddings `[1 + gh * gw, width]` for a `gh × gw` grid.
    pub fn position_embeddings(
        &self,
        gh: usize,
        gw: usize,
        how: PosInterpolation,
    ) -> Result<Tensor> {
        let g = self.config.grid();
        if (gh, gw) == (g, g) {
            return Ok(self.pos.clone());
        }
        if gh == 0 || gw == 0 {
            return Err(Error::invalid(
                "grid",
                "at least one patch per side",
                format!("{gh}x{gw}"),
            ));
        }
        let key = (gh, gw, how);
        if let Some(t) = self
            .pos_cache
            .lock()
            .ok()
            .and_then(|c| c.get(&key).cloned())
        {
            return Ok(t);
        }
        let d = self.config.hidden_size;
        let patches: Vec<f32> = self
            .pos
            .narrow(0, 1, g * g)?
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1()?;
        let resized = resize_grid(&patches, (g, g), d, (gh, gw), how);
        let resized = Tensor::from_vec(resized, (gh * gw, d), self.pos.device())?;
        let pos = Tensor::cat(
            &[
                self.pos.narrow(0, 0, 1)?,
                resized.to_dtype(self.pos.dtype())?,
            ],
            0,
        )?;
        if let Ok(mut c) = self.pos_cache.lock() {
            c.insert(key, pos.clone());
        }
        Ok(pos)
    }

    /// The projection alone, on any tokens `[.., width]`. AnomalyCLIP's image feature is
    /// this applied to the class token of [`VisionOutput::last_hidden`] (it skips
    /// `post_layernorm` there), where CLIP's is [`VisionOutput::image_embeds`].
    pub fn project(&self, tokens: &Tensor) -> Result<Tensor> {
        self.proj.forward(tokens)
    }

    /// `post_layernorm` then the projection, on any tokens `[.., width]` (AnomalyCLIP maps
    /// patch tokens into the joint space this way).
    pub fn project_tokens(&self, tokens: &Tensor) -> Result<Tensor> {
        self.proj.forward(&self.post_ln.forward(tokens)?)
    }

    /// Runs the tower on normalised pixels `[B, channels, H, W]`. The grid is
    /// `(H / patch, W / patch)`, rounded down as a strided convolution does.
    pub fn forward(&self, pixels: &Tensor, opts: &VisionOptions) -> Result<VisionOutput> {
        let cfg = &self.config;
        let (n_layers, p, width) = (cfg.num_hidden_layers, cfg.patch_size, cfg.hidden_size);
        let (b, c, h, w) = pixels.dims4().map_err(|_| {
            Error::invalid(
                "pixels",
                "a [B, channels, H, W] tensor",
                format!("shape {:?}", pixels.dims()),
            )
        })?;
        if b == 0 || c != cfg.num_channels || h < p || w < p {
            return Err(Error::invalid(
                "pixels",
                format!("shape [B >= 1, {}, H >= {p}, W >= {p}]", cfg.num_channels),
                format!("shape {:?}", pixels.dims()),
            ));
        }
        for &l in &opts.layers {
            if l > n_layers {
                return Err(Error::invalid(
                    "layers",
                    format!("block indices in 0..={n_layers}"),
                    l,
                ));
            }
        }
        if let Some(d) = opts.dpam_from {
            if d == 0 || d > n_layers {
                return Err(Error::invalid(
                    "dpam_from",
                    format!("a block in 1..={n_layers}"),
                    d,
                ));
            }
        }
        if let Some(pr) = opts.prompts {
            check_layers("vision prompts", &pr.layers, n_layers)?;
        }

        // patch embedding as one product: [B, gh*gw, C*p*p] x [C*p*p, width]
        let (gh, gw) = (h / p, w / p);
        let x = pixels
            .to_dtype(self.patch.dtype())?
            .narrow(2, 0, gh * p)?
            .narrow(3, 0, gw * p)?;
        let x = x
            .reshape((b, c, gh, p, gw, p))?
            .permute((0, 2, 4, 1, 3, 5))?
            .reshape((b * gh * gw, c * p * p))?;
        let x = x.matmul(&self.patch.t()?)?.reshape((b, gh * gw, width))?;
        let cls = self
            .class
            .reshape((1, 1, width))?
            .broadcast_as((b, 1, width))?;
        let x = Tensor::cat(&[cls.contiguous()?, x], 1)?;
        let pos = self.position_embeddings(gh, gw, opts.interpolation)?;
        let mut x = self.pre_ln.forward(&x.broadcast_add(&pos.unsqueeze(0)?)?)?;
        let n_tok = 1 + gh * gw;

        let mut layers = BTreeMap::new();
        if opts.layers.contains(&0) {
            layers.insert(0, x.clone());
        }
        let mut x_vv: Option<Tensor> = None;
        for (i, block) in self.blocks.iter().enumerate() {
            let l = i + 1;
            if let Some(pt) = opts.prompts.and_then(|pr| pr.layers.get(&l)) {
                let pt = expand_prompt("vision prompts", pt, b, width, usize::MAX)?
                    .to_dtype(x.dtype())?;
                x = Tensor::cat(&[x.narrow(1, 0, n_tok)?, pt.clone()], 1)?;
                if let Some(v) = &x_vv {
                    x_vv = Some(Tensor::cat(&[v.narrow(1, 0, n_tok)?, pt], 1)?);
                }
            }
            if opts.dpam_from.is_some_and(|d| l >= d) {
                let v = x_vv.take().unwrap_or_else(|| x.clone());
                let (v, xo) = block.forward_dual(&v, &x)?;
                x = xo;
                x_vv = Some(v);
            } else {
                x = block.forward(&x, None)?;
            }
            if opts.layers.contains(&l) {
                let src = x_vv.as_ref().unwrap_or(&x);
                layers.insert(l, src.narrow(1, 0, n_tok)?);
            }
        }

        let pooled = self.post_ln.forward(&x.narrow(1, 0, 1)?.squeeze(1)?)?;
        let image_embeds = self.proj.forward(&pooled)?;
        let last_hidden = x.narrow(1, 0, n_tok)?;
        Ok(VisionOutput {
            image_embeds,
            pooled,
            layers,
            last_hidden,
            grid: (gh, gw),
        })
    }
}
