//! Prompting layers: learnable or per-image prompt tokens fed into the CLIP towers.
//!
//! Vision (AdaCLIP's scheme, the paper's eq. 7): before block `l` runs, if prompts are given
//! for `l`, the prompt tokens carried from earlier blocks are dropped and the new ones
//! appended after the class and patch tokens; blocks without an entry carry the current
//! prompt tokens along. They take part in attention but are stripped from every output.
//!
//! Text (eq. 8): `prefix` replaces the token embeddings of positions `1..=L` (the `X`
//! placeholders of a template `[V1..VL] object .`, see
//! [`ClipTokenizer::prompt_template`](super::tokenizer::ClipTokenizer::prompt_template))
//! before position embeddings are added; a deep prompt for block `l` overwrites the hidden
//! states of positions `1..=P` at that block's input.
//!
//! Prompt tensors are `[B, P, width]` (one set per image or per text, as a MoEPLer
//! produces them), or `[P, width]` / `[1, P, width]` shared by the whole batch.
use std::collections::BTreeMap;

use candle_core::Tensor;

use crate::{Error, Result};

/// Prompt tokens for the vision tower, keyed by block (1-based).
#[derive(Debug, Clone, Default)]
pub struct VisionPrompts {
    pub layers: BTreeMap<usize, Tensor>,
}

impl VisionPrompts {
    pub fn new() -> Self {
        Self::default()
    }

    /// Prompt tokens appended before block `layer` (1-based), replacing earlier ones.
    pub fn at(mut self, layer: usize, tokens: Tensor) -> Self {
        self.layers.insert(layer, tokens);
        self
    }
}

/// Prompts for the text tower.
#[derive(Debug, Clone, Default)]
pub struct TextPrompts {
    /// `[B, L, width]`: embeddings in place of the word tokens at positions `1..=L`.
    pub prefix: Option<Tensor>,
    /// Block (1-based) to `[B, P, width]` written into positions `1..=P` at its input.
    pub deep: BTreeMap<usize, Tensor>,
}

impl TextPrompts {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_prefix(mut self, prefix: Tensor) -> Self {
        self.prefix = Some(prefix);
        self
    }

    pub fn deep_at(mut self, layer: usize, tokens: Tensor) -> Self {
        self.deep.insert(layer, tokens);
        self
    }
}

/// Brings one prompt tensor to `[batch, P, width]`, checking its shape, the layer and the
/// room it needs (`max_tokens`).
pub(crate) fn expand_prompt(
    arg: &str,
    t: &Tensor,
    batch: usize,
    width: usize,
    max_tokens: usize,
) -> Result<Tensor> {
    let t = match t.rank() {
        2 => t.unsqueeze(0)?,
        3 => t.clone(),
        _ => {
            return Err(Error::invalid(
                arg,
                format!("a [B, P, {width}] or [P, {width}] tensor"),
                format!("shape {:?}", t.dims()),
            ))
        }
    };
    let (b, p, w) = t.dims3()?;
    if w != width || (b != batch && b != 1) || p == 0 || p > max_tokens {
        return Err(Error::invalid(
            arg,
            format!("shape [{batch} or 1, 1..={max_tokens}, {width}]"),
            format!("shape {:?}", t.dims()),
        ));
    }
    Ok(if b == batch {
        t
    } else {
        t.broadcast_as((batch, p, w))?.contiguous()?
    })
}

/// Checks that every key is a block index in `1..=n_layers`.
pub(crate) fn check_layers<V>(arg: &str, map: &BTreeMap<usize, V>, n_layers: usize) -> Result<()> {
    for &l in map.keys() {
        if l == 0 || l > n_layers {
            return Err(Error::invalid(
                arg,
                format!("block indices in 1..={n_layers}"),
                l,
            ));
        }
    }
    Ok(())
}

/// `x` with positions `1..=P` replaced by `p` (`[B, P, W]`).
pub(crate) fn overwrite_after_first(x: &Tensor, p: &Tensor) -> Result<Tensor> {
    let n = x.dim(1)?;
    let np = p.dim(1)?;
    let p = p.to_dtype(x.dtype())?;
    let mut parts = vec![x.narrow(1, 0, 1)?, p];
    if 1 + np < n {
        parts.push(x.narrow(1, 1 + np, n - 1 - np)?);
    }
    Ok(Tensor::cat(&parts, 1)?)
}
