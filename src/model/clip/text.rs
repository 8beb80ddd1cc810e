//! CLIP's text tower: token and position embeddings, causal pre-LN blocks, final layer
//! norm, pooling at the end token, projection.
use std::collections::BTreeMap;

use candle_core::Tensor;

use super::config::TextConfig;
use super::prompting::{check_layers, expand_prompt, overwrite_after_first, TextPrompts};
use super::transformer::{Block, BlockDims};
use super::weights::{LayerNorm, Linear, Weights};
use crate::{Error, Result};

/// What a text forward computes besides the text embedding.
#[derive(Debug, Clone, Default)]
pub struct TextOptions<'a> {
    /// Blocks whose output states to return, 1-based (`0`: the embeddings).
    pub layers: Vec<usize>,
    /// Learnable prefix and deep prompts.
    pub prompts: Option<&'a TextPrompts>,
}

/// Result of a text forward.
#[derive(Debug, Clone)]
pub struct TextOutput {
    /// `[B, projection_dim]`: projected, not normalised.
    pub text_embeds: Tensor,
    /// `[B, width]`: the final-normalised state at each sequence's end token.
    pub pooled: Tensor,
    /// Block index to `[B, T, width]` (before the final layer norm).
    pub layers: BTreeMap<usize, Tensor>,
}

/// The text transformer of a CLIP checkpoint.
#[derive(Debug, Clone)]
pub struct TextTower {
    pub config: TextConfig,
    token: Tensor,
    pos: Tensor,
    blocks: Vec<Block>,
    final_ln: LayerNorm,
    proj: Linear,
}

impl TextTower {
    pub fn load(w: &Weights, cfg: &TextConfig, projection_dim: usize) -> Result<Self> {
        let d = cfg.hidden_size;
        let pre = "text_model";
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
        Ok(TextTower {
            config: cfg.clone(),
            token: w.get(
                &format!("{pre}.embeddings.token_embedding.weight"),
                &[cfg.vocab_size, d],
            )?,
            pos: w.get(
                &format!("{pre}.embeddings.position_embedding.weight"),
                &[cfg.max_position_embeddings, d],
            )?,
            blocks,
            final_ln: LayerNorm::load(
                w,
                &format!("{pre}.final_layer_norm"),
                d,
                cfg.layer_norm_eps,
            )?,
            proj: Linear::load(w, "text_projection", d, projection_dim, false)?,
        })
    }

    pub(crate) fn set_differentiable(&mut self, on: bool) {
        self.blocks
            .iter_mut()
            .for_each(|b| b.set_differentiable(on));
        self.final_ln.differentiable = on;
    }

    /// The position each row is pooled at: the first end token, or for legacy configs
    /// (`eos_token_id == 2`) the first position of the largest id.
    fn pool_positions(&self, ids: &[Vec<u32>]) -> Result<Vec<u32>> {
        let eos = self.config.eos_token_id;
        ids.iter()
            .enumerate()
            .map(|(r, row)| {
                let pos = if eos == 2 {
                    let max = row.iter().copied().max().unwrap_or(0);
                    row.iter().position(|&i| i == max)
                } else {
                    row.iter().position(|&i| i == eos)
                };
                pos.map(|p| p as u32).ok_or_else(|| {
                    Error::invalid(
                        &format!("ids[{r}]"),
                        format!("a sequence with the end token {eos}"),
                        "none",
                    )
                })
            })
            .collect()
    }

    /// Runs the tower on token ids (rows of equal length, at most the context length).
    /// With prompts, a single row of ids is shared by every prompt in the batch.
    pub fn forward(&self, ids: &[Vec<u32>], opts: &TextOptions) -> Result<TextOutput> {
        let cfg = &self.config;
        let (n_layers, width) = (cfg.num_hidden_layers, cfg.hidden_size);
        if ids.is_empty() {
            return Err(Error::invalid(
                "ids",
                "at least one sequence",
                "an empty batch",
            ));
        }
        let t = ids[0].len();
        if t < 2 || t > cfg.max_position_embeddings || ids.iter().any(|r| r.len() != t) {
            return Err(Error::invalid(
                "ids",
                format!("rows of one length in 2..={}", cfg.max_position_embeddings),
                format!(
                    "lengths {:?}",
                    ids.iter().map(|r| r.len()).collect::<Vec<_>>()
                ),
            ));
        }
        if let Some(bad) = ids
            .iter()
            .flatten()
            .find(|&&i| i as usize >= cfg.vocab_size)
        {
            return Err(Error::invalid(
                "ids",
                format!("token ids below {}", cfg.vocab_size),
                bad,
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

        // batch size: the ids', or the prompts' when one row of ids is shared
        let prompt_batch = opts.prompts.and_then(|p| {
            p.prefix
                .iter()
                .chain(p.deep.values())
                .find_map(|t| (t.rank() == 3).then(|| t.dim(0).ok()).flatten())
        });
        let b = match (ids.len(), prompt_batch) {
            (1, Some(pb)) => pb,
            (n, _) => n,
        };
        let ids: Vec<Vec<u32>> = if ids.len() == b {
            ids.to_vec()
        } else {
            vec![ids[0].clone(); b]
        };
        let eot = self.pool_positions(&ids)?;

        let flat: Vec<u32> = ids.iter().flatten().copied().collect();
        let dev = self.token.device();
        let mut x = self
            .token
            .embedding(&Tensor::from_vec(flat, b * t, dev)?)?
            .reshape((b, t, width))?;
        if let Some(prefix) = opts.prompts.and_then(|p| p.prefix.as_ref()) {
            let prefix = expand_prompt("text prompt prefix", prefix, b, width, t - 2)?;
            x = overwrite_after_first(&x, &prefix)?;
        }
        let mut x = x.broadcast_add(&self.pos.narrow(0, 0, t)?.unsqueeze(0)?)?;
        if let Some(p) = opts.prompts {
            check_layers("text deep prompts", &p.deep, n_layers)?;
        }

        let mask: Vec<f32> = (0..t * t)
            .map(|k| {
                if k % t > k / t {
                    f32::NEG_INFINITY
                } else {
                    0.0
                }
            })
            .collect();
        let mask = Tensor::from_vec(mask, (t, t), dev)?.to_dtype(x.dtype())?;
        let mut layers = BTreeMap::new();
        if opts.layers.contains(&0) {
            layers.insert(0, x.clone());
        }
        for (i, block) in self.blocks.iter().enumerate() {
            let l = i + 1;
            if let Some(deep) = opts.prompts.and_then(|p| p.deep.get(&l)) {
                let deep = expand_prompt(
                    &format!("text deep prompt at block {l}"),
                    deep,
                    b,
                    width,
                    t - 2,
                )?;
                x = overwrite_after_first(&x, &deep)?;
            }
            x = block.forward(&x, Some(&mask))?;
            if opts.layers.contains(&l) {
                layers.insert(l, x.clone());
            }
        }

        let x = self.final_ln.forward(&x)?;
        let index: Vec<u32> = eot
            .iter()
            .enumerate()
            .map(|(r, &e)| (r * t) as u32 + e)
            .collect();
        let index = Tensor::from_vec(index, b, dev)?;
        let pooled = x.reshape((b * t, width))?.index_select(&index, 0)?;
        let text_embeds = self.proj.forward(&pooled)?;
        Ok(TextOutput {
            text_embeds,
            pooled,
            layers,
        })
    }
}
