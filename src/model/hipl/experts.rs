//! The MoEPLer's experts: four small architectures, each mapping the token sequence
//! `x = F^g + [V_1 .. V_L]` (`[N, L, W]`) to `L` prompt tokens `[N, L, W]`.
//!
//! Every expert is residual, `E(x) = x + f(x)`, so the gated mixture starts near the word
//! embeddings themselves and each expert learns a correction; the mixture
//! `Σ_i G_i E_i(x) = x + Σ_i G_i f_i(x)` since the gate sums to one. Only operations with
//! a backward pass are used (no fused layer norm or softmax), so gradients reach every
//! parameter.
use candle_core::{Tensor, D};
use candle_nn::{linear, linear_no_bias, Init, Linear, Module, VarBuilder};

use super::config::ExpertKind;
use crate::Result;

/// State size of the SSM expert's diagonal `A` (Mamba's default).
const SSM_STATE: usize = 16;

/// A learnable layer norm over the last dimension through differentiable candle ops.
#[derive(Debug, Clone)]
pub(crate) struct Norm {
    weight: Tensor,
    bias: Tensor,
}

impl Norm {
    fn new(w: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Norm {
            weight: vb.get_with_hints(w, "weight", Init::Const(1.0))?,
            bias: vb.get_with_hints(w, "bias", Init::Const(0.0))?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(candle_nn::ops::layer_norm_slow(
            x,
            &self.weight,
            &self.bias,
            1e-5,
        )?)
    }
}

/// One expert of a given [`ExpertKind`].
#[derive(Debug, Clone)]
pub(crate) enum Expert {
    /// `f(x) = conv1d_3(x)`: `x_{t-1}, x_t, x_{t+1}` (zeros beyond the ends) through one
    /// linear map `[3W] → [W]`, which is a kernel-3 convolution over the tokens.
    Conv { taps: Linear },
    /// `f(x) = MHSA(LN(x))` with `heads` heads.
    Attention {
        norm: Norm,
        qkv: Linear,
        out: Linear,
        heads: usize,
    },
    /// `f(x) = W2 GELU(W1 LN(x))`, token-wise, hidden width `2W`.
    Mlp {
        norm: Norm,
        fc1: Linear,
        fc2: Linear,
    },
    /// A selective scan over the tokens (Mamba's S6 without the convolution and gate):
    /// `Δ_t = softplus(x_t W_Δ + b_Δ)`, `B_t = x_t W_B`, `C_t = x_t W_C`,
    /// `h_t = exp(Δ_t A) ⊙ h_{t-1} + (Δ_t ⊙ x_t) ⊗ B_t`, `y_t = h_t C_t + D ⊙ x_t`,
    /// `f(x) = y W_out`, with `A = −exp(A_log)` diagonal per channel and
    /// `A_log = log(1..=S) + shift`, the shift learnable from 0.
    Ssm {
        norm: Norm,
        delta: Linear,
        b: Linear,
        c: Linear,
        a_base: Tensor,
        a_shift: Tensor,
        d: Tensor,
        out: Linear,
    },
}

impl Expert {
    /// Creates an expert of `kind` for tokens of width `w`, attention with `heads` heads.
    pub(crate) fn new(kind: ExpertKind, w: usize, heads: usize, vb: VarBuilder) -> Result<Self> {
        Ok(match kind {
            ExpertKind::Conv => Expert::Conv {
                taps: linear(3 * w, w, vb.pp("taps"))?,
            },
            ExpertKind::Attention => Expert::Attention {
                norm: Norm::new(w, vb.pp("norm"))?,
                qkv: linear(w, 3 * w, vb.pp("qkv"))?,
                out: linear(w, w, vb.pp("out"))?,
                heads: if heads > 0 && w.is_multiple_of(heads) {
                    heads
                } else {
                    1
                },
            },
            ExpertKind::Mlp => Expert::Mlp {
                norm: Norm::new(w, vb.pp("norm"))?,
                fc1: linear(w, 2 * w, vb.pp("fc1"))?,
                fc2: linear(2 * w, w, vb.pp("fc2"))?,
            },
            ExpertKind::Ssm => {
                // A_log = log(1..=S) + a learnable shift that starts at 0 (Mamba's init)
                let base: Vec<f32> = (0..w)
                    .flat_map(|_| (1..=SSM_STATE).map(|s| (s as f32).ln()))
                    .collect();
                let a_base =
                    Tensor::from_vec(base, (w, SSM_STATE), vb.device())?.to_dtype(vb.dtype())?;
                let a_shift = vb.get_with_hints((w, SSM_STATE), "a_shift", Init::Const(0.0))?;
                Expert::Ssm {
                    norm: Norm::new(w, vb.pp("norm"))?,
                    delta: linear(w, w, vb.pp("delta"))?,
                    b: linear_no_bias(w, SSM_STATE, vb.pp("b"))?,
                    c: linear_no_bias(w, SSM_STATE, vb.pp("c"))?,
                    a_base,
                    a_shift,
                    d: vb.get_with_hints(w, "d", Init::Const(1.0))?,
                    out: linear(w, w, vb.pp("out"))?,
                }
            }
        })
    }

    /// `x: [N, L, W]` → `E(x) = x + f(x)`, `[N, L, W]`.
    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let f = match self {
            Expert::Conv { taps } => conv3(taps, x)?,
            Expert::Attention {
                norm,
                qkv,
                out,
                heads,
            } => attention(&norm.forward(x)?, qkv, out, *heads)?,
            Expert::Mlp { norm, fc1, fc2 } => {
                fc2.forward(&fc1.forward(&norm.forward(x)?)?.gelu()?)?
            }
            Expert::Ssm {
                norm,
                delta,
                b,
                c,
                a_base,
                a_shift,
                d,
                out,
            } => {
                let u = norm.forward(x)?;
                let a_log = (a_base + a_shift)?;
                let y = selective_scan(&u, delta, b, c, &a_log, d)?;
                out.forward(&y)?
            }
        };
        Ok((x + f)?)
    }
}

/// Kernel-3 convolution over the token axis as one linear map of the stacked taps.
fn conv3(taps: &Linear, x: &Tensor) -> Result<Tensor> {
    let (n, l, w) = x.dims3()?;
    let zero = Tensor::zeros((n, 1, w), x.dtype(), x.device())?;
    let prev = Tensor::cat(&[&zero, &x.narrow(1, 0, l - 1)?], 1)?;
    let next = Tensor::cat(&[&x.narrow(1, 1, l - 1)?, &zero], 1)?;
    Ok(taps.forward(&Tensor::cat(&[&prev, x, &next], 2)?)?)
}

/// Multi-head self-attention over the `L` tokens (no mask).
fn attention(x: &Tensor, qkv: &Linear, out: &Linear, heads: usize) -> Result<Tensor> {
    let (n, l, w) = x.dims3()?;
    let hd = w / heads;
    let split = |t: Tensor| -> Result<Tensor> {
        Ok(t.reshape((n, l, heads, hd))?
            .transpose(1, 2)?
            .contiguous()?)
    };
    let all = qkv.forward(x)?;
    let q = split(all.narrow(2, 0, w)?)?;
    let k = split(all.narrow(2, w, w)?)?;
    let v = split(all.narrow(2, 2 * w, w)?)?;
    let scores = (q.matmul(&k.t()?)? * (hd as f64).powf(-0.5))?;
    let att = candle_nn::ops::softmax(&scores, D::Minus1)?.matmul(&v)?;
    Ok(out.forward(&att.transpose(1, 2)?.reshape((n, l, w))?)?)
}

// LIMITATION: the scan is sequential over the tokens (a few candle ops per token), fine
// for L = 12 but slow for long sequences; a parallel (associative) scan would lift it.
/// The selective scan of the SSM expert over `u: [N, L, W]` → `y: [N, L, W]`; a
/// sequential loop over the `L` tokens (12 in the paper), each step batched over `N` and
/// the channels.
fn selective_scan(
    u: &Tensor,
    delta: &Linear,
    b: &Linear,
    c: &Linear,
    a_log: &Tensor,
    d: &Tensor,
) -> Result<Tensor> {
    let (n, l, w) = u.dims3()?;
    let dt = softplus(&delta.forward(u)?)?; // [N, L, W]
    let bs = b.forward(u)?; // [N, L, S]
    let cs = c.forward(u)?; // [N, L, S]
    let a = a_log.exp()?.neg()?.unsqueeze(0)?; // [1, W, S]
    let mut h = Tensor::zeros((n, w, SSM_STATE), u.dtype(), u.device())?;
    let mut ys = Vec::with_capacity(l);
    for t in 0..l {
        let dt_t = dt.narrow(1, t, 1)?.squeeze(1)?.unsqueeze(2)?; // [N, W, 1]
        let u_t = u.narrow(1, t, 1)?.squeeze(1)?.unsqueeze(2)?; // [N, W, 1]
        let b_t = bs.narrow(1, t, 1)?; // [N, 1, S]
        let c_t = cs.narrow(1, t, 1)?; // [N, 1, S]
        let decay = dt_t.broadcast_mul(&a)?.exp()?; // [N, W, S]
        h = ((decay * &h)? + (dt_t * &u_t)?.broadcast_mul(&b_t)?)?;
        let y = h.broadcast_mul(&c_t)?.sum(2)?; // [N, W]
        ys.push(y.unsqueeze(1)?);
    }
    let y = Tensor::cat(&ys, 1)?; // [N, L, W]
    Ok(y.broadcast_add(&u.broadcast_mul(d)?)?)
}

/// `ln(1 + e^x)`, computed as `max(x, 0) + ln(1 + e^{−|x|})` to stay finite.
fn softplus(x: &Tensor) -> Result<Tensor> {
    let pos = x.relu()?;
    let tail = (x.abs()?.neg()?.exp()? + 1.0)?.log()?;
    Ok((pos + tail)?)
}
