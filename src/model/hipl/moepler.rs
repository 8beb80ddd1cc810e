//! MoEPLer, the mixture-of-experts prompt learner (the paper's eqs. 5–6 and the templates
//! around them): per image, `K` experts of different kinds each turn `F^g + [V_1 .. V_L]`
//! into `L` prompt tokens, and a cross-modal gate mixes them,
//! `t = Σ_i G_i(concat(F^g, V)) E_i(F^g + V)` with `G = softmax(R)`,
//! `R(x) = max(0, x A1 + b1) A2 + b2`. The same experts and router serve the normal words
//! `V` and the abnormal words `W`.
use candle_core::{Tensor, D};
use candle_nn::{linear, Init, Linear, Module, VarBuilder};

use super::config::ExpertKind;
use super::experts::Expert;
use crate::Result;

/// Prompt tokens for a batch of images.
#[derive(Debug, Clone)]
pub struct MoePrompts {
    /// `[B, L, W]`: the normal template's prompt tokens per image.
    pub normal: Tensor,
    /// `[B, L, W]`: the abnormal template's prompt tokens per image.
    pub abnormal: Tensor,
    /// `[B, 2, K]`: the gate `G` per image and template (normal, abnormal); rows sum to 1.
    pub gate: Tensor,
}

/// The prompt learner: learnable word embeddings `V` (normal) and `W` (abnormal), `L × W`
/// each; the projection of `F^g` to the text width; the router; the experts.
#[derive(Debug, Clone)]
pub struct MoePler {
    /// `[2, L, W]`: `V` then `W`.
    words: Tensor,
    /// `F^g: [E]` → `[W]`, added to every word embedding.
    global_proj: Linear,
    /// `R`'s `A1, b1`: `[E + W]` → `[W]`.
    router_hidden: Linear,
    /// `R`'s `A2, b2`: `[W]` → `[K]`.
    router_out: Linear,
    experts: Vec<Expert>,
}

impl MoePler {
    /// Creates (or loads) the variables under `vb`: `normal_words`, `abnormal_words`
    /// (`[L, W]`, normal with std 0.02 as CoOp), `global_proj`, `router.hidden`,
    /// `router.out`, `experts.{i}`.
    pub fn new(
        prompt_len: usize,
        width: usize,
        global_dim: usize,
        kinds: &[ExpertKind],
        heads: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        let init = Init::Randn {
            mean: 0.0,
            stdev: 0.02,
        };
        let v = vb.get_with_hints((prompt_len, width), "normal_words", init)?;
        let w = vb.get_with_hints((prompt_len, width), "abnormal_words", init)?;
        let experts = kinds
            .iter()
            .enumerate()
            .map(|(i, &k)| Expert::new(k, width, heads, vb.pp(format!("experts.{i}"))))
            .collect::<Result<Vec<_>>>()?;
        Ok(MoePler {
            words: Tensor::stack(&[v, w], 0)?,
            global_proj: linear(global_dim, width, vb.pp("global_proj"))?,
            router_hidden: linear(global_dim + width, width, vb.pp("router.hidden"))?,
            router_out: linear(width, kinds.len(), vb.pp("router.out"))?,
            experts,
        })
    }

    /// `K`.
    pub fn n_experts(&self) -> usize {
        self.experts.len()
    }

    /// `global: [B, E]` (`F^g`) → the per-image prompt tokens and gates.
    pub fn forward(&self, global: &Tensor) -> Result<MoePrompts> {
        let global = global.to_dtype(self.words.dtype())?;
        let (b, e) = global.dims2()?;
        let (_, l, w) = self.words.dims3()?;
        let k = self.experts.len();

        // router on concat(F^g, mean_l V_l), for both templates: [B, 2, K]
        let pooled = self.words.mean(1)?.unsqueeze(0)?.broadcast_as((b, 2, w))?;
        let g2 = global.unsqueeze(1)?.broadcast_as((b, 2, e))?;
        let x = Tensor::cat(&[&g2, &pooled], 2)?;
        let logits = self
            .router_out
            .forward(&self.router_hidden.forward(&x)?.relu()?)?;
        let gate = candle_nn::ops::softmax(&logits, D::Minus1)?;

        // expert inputs F^g + V_l: [2B, L, W], image-major then template
        let fg = self.global_proj.forward(&global)?.reshape((b, 1, 1, w))?;
        let x = fg
            .broadcast_add(&self.words.unsqueeze(0)?)?
            .reshape((b * 2, l, w))?;
        let outs = self
            .experts
            .iter()
            .map(|ex| ex.forward(&x))
            .collect::<Result<Vec<_>>>()?;
        let outs = Tensor::stack(&outs, 1)?; // [2B, K, L, W]
        let mixed = outs
            .broadcast_mul(&gate.reshape((b * 2, k, 1, 1))?)?
            .sum(1)?
            .reshape((b, 2, l, w))?;
        Ok(MoePrompts {
            normal: mixed.narrow(1, 0, 1)?.squeeze(1)?,
            abnormal: mixed.narrow(1, 1, 1)?.squeeze(1)?,
            gate,
        })
    }
}
