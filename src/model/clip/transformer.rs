//! The pre-LN transformer block both CLIP towers share, with AnomalyCLIP's value-value
//! attention path.
use candle_core::{Tensor, D};

use super::config::Activation;
use super::weights::{LayerNorm, Linear, Weights};
use crate::Result;

/// Sizes of one tower's blocks.
#[derive(Debug, Clone, Copy)]
pub struct BlockDims {
    pub width: usize,
    pub heads: usize,
    pub mlp: usize,
    pub act: Activation,
    pub eps: f64,
}

/// One residual block: `x + attn(ln1(x))`, then `x + mlp(ln2(x))`.
#[derive(Debug, Clone)]
pub struct Block {
    ln1: LayerNorm,
    q: Linear,
    k: Linear,
    v: Linear,
    out: Linear,
    ln2: LayerNorm,
    fc1: Linear,
    fc2: Linear,
    heads: usize,
    act: Activation,
    /// Use operations candle can differentiate (slower) instead of fused kernels.
    pub(crate) differentiable: bool,
}

impl Block {
    pub fn load(w: &Weights, prefix: &str, d: BlockDims) -> Result<Self> {
        let lin = |name: &str, i, o| Linear::load(w, &format!("{prefix}.{name}"), i, o, true);
        Ok(Block {
            ln1: LayerNorm::load(w, &format!("{prefix}.layer_norm1"), d.width, d.eps)?,
            q: lin("self_attn.q_proj", d.width, d.width)?,
            k: lin("self_attn.k_proj", d.width, d.width)?,
            v: lin("self_attn.v_proj", d.width, d.width)?,
            out: lin("self_attn.out_proj", d.width, d.width)?,
            ln2: LayerNorm::load(w, &format!("{prefix}.layer_norm2"), d.width, d.eps)?,
            fc1: lin("mlp.fc1", d.width, d.mlp)?,
            fc2: lin("mlp.fc2", d.mlp, d.width)?,
            heads: d.heads,
            act: d.act,
            differentiable: false,
        })
    }

    fn norm(&self, ln: &LayerNorm, x: &Tensor) -> Result<Tensor> {
        ln.forward(x)
    }

    pub(crate) fn set_differentiable(&mut self, on: bool) {
        self.differentiable = on;
        self.ln1.differentiable = on;
        self.ln2.differentiable = on;
    }

    fn softmax(&self, x: &Tensor) -> Result<Tensor> {
        if self.differentiable {
            Ok(candle_nn::ops::softmax(x, D::Minus1)?)
        } else {
            Ok(candle_nn::ops::softmax_last_dim(&x.contiguous()?)?)
        }
    }

    /// `[B, N, W]` to `[B, heads, N, W / heads]`.
    fn split_heads(&self, x: &Tensor) -> Result<Tensor> {
        let (b, n, w) = x.dims3()?;
        Ok(x.reshape((b, n, self.heads, w / self.heads))?
            .transpose(1, 2)?
            .contiguous()?)
    }

    fn merge_heads(&self, x: &Tensor) -> Result<Tensor> {
        let (b, h, n, hd) = x.dims4()?;
        Ok(x.transpose(1, 2)?.reshape((b, n, h * hd))?)
    }

    /// Scaled dot-product attention of `q` against `k`, weighting `v` (all split in heads).
    fn attend(&self, q: &Tensor, k: &Tensor, v: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let scale = (q.dim(3)? as f64).powf(-0.5);
        let mut w = (q.matmul(&k.t()?)? * scale)?;
        if let Some(m) = mask {
            w = w.broadcast_add(m)?;
        }
        Ok(self.softmax(&w)?.matmul(v)?)
    }

    fn mlp(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.fc1.forward(x)?;
        let h = match self.act {
            Activation::QuickGelu => (&h * candle_nn::ops::sigmoid(&(&h * 1.702)?)?)?,
            Activation::Gelu => h.gelu_erf()?,
            Activation::GeluTanh => h.gelu()?,
        };
        self.fc2.forward(&h)
    }

    /// The usual block. `mask` is added to the attention logits (`[N, N]`, e.g. causal).
    pub fn forward(&self, x: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let h = self.norm(&self.ln1, x)?;
        let (q, k, v) = (
            self.split_heads(&self.q.forward(&h)?)?,
            self.split_heads(&self.k.forward(&h)?)?,
            self.split_heads(&self.v.forward(&h)?)?,
        );
        let a = self
            .out
            .forward(&self.merge_heads(&self.attend(&q, &k, &v, mask)?)?)?;
        let x = (x + a)?;
        let m = self.mlp(&self.norm(&self.ln2, &x)?)?;
        Ok((x + m)?)
    }

    /// AnomalyCLIP's dual path (DPAM). The original path `x` runs the usual block; the
    /// value-value path adds to `x_vv` the attention of the values with themselves (queries
    /// and keys both replaced by the values of `ln1(x)`), and skips the MLP. Returns
    /// `(x_vv, x)` after the block.
    pub fn forward_dual(&self, x_vv: &Tensor, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let h = self.norm(&self.ln1, x)?;
        let (q, k, v) = (
            self.split_heads(&self.q.forward(&h)?)?,
            self.split_heads(&self.k.forward(&h)?)?,
            self.split_heads(&self.v.forward(&h)?)?,
        );
        let a = self
            .out
            .forward(&self.merge_heads(&self.attend(&q, &k, &v, None)?)?)?;
        let a_vv = self
            .out
            .forward(&self.merge_heads(&self.attend(&v, &v, &v, None)?)?)?;
        let x = (x + a)?;
        let m = self.mlp(&self.norm(&self.ln2, &x)?)?;
        Ok(((x_vv + a_vv)?, (x + m)?))
    }
}
