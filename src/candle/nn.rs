//! `candle_nn` modules over the hypergraph ops, loading through a `VarBuilder`:
//! [`HypergraphConv`] (`theta`, optional `weights`) and [`Hsc`] (`theta`, `a.weight`,
//! `a.bias`, `global.weight`, `global.bias`, optional `weights`).

use super::conv::hypergraph_conv;
use super::host;
use super::hsc::{hsc, HscTensors};
use crate::autograd::{Activation, HscParams};
use crate::error::Error;
use crate::hypergraph::HypergraphConfig;
use crate::real::Real;
use candle_core::{Module, Tensor, WithDType};
use candle_nn::{Init, VarBuilder};
use ndarray::{Array1, Array2};

/// `Θ` initialisation: uniform in `±1/√fan_in`.
fn theta_init(fan_in: usize) -> Init {
    let bound = 1.0 / (fan_in.max(1) as f64).sqrt();
    Init::Uniform {
        lo: -bound,
        up: bound,
    }
}

/// Learnable hyperedge weights `[N]` (initialised to ones), one per hyperedge position
/// (the hyperedge centred on patch `j`), broadcast over the batch.
fn edge_weights(n: Option<usize>, vb: &VarBuilder) -> candle_core::Result<Option<Tensor>> {
    n.map(|n| vb.get_with_hints(n, "weights", Init::Const(1.0)))
        .transpose()
}

/// `[N]` weights as `[B, N]` for features `[B, N, D]`.
fn batch_weights(w: &Tensor, features: &Tensor) -> candle_core::Result<Tensor> {
    let fd = host::dims_of("features", features.shape(), 3, "3 dimensions [B, N, D]")?;
    let n = w.dims1()?;
    if fd[1] != n {
        let expected = format!("[B, {n}, D] (N = the length of the learnable hyperedge weights)");
        return Err(host::wrap(Error::shape("features", expected, fd)));
    }
    w.unsqueeze(0)?.broadcast_as((fd[0], n))
}

/// Options of a [`HypergraphConv`] layer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HypergraphConvConfig {
    /// How the hypergraph is built from the features and normalised.
    pub hypergraph: HypergraphConfig,
    /// `Some(N)`: learnable hyperedge weights `weights: [N]` (inputs must then have `N`
    /// vertices); `None`: all weights 1.
    pub edge_weights: Option<usize>,
}

impl From<HypergraphConfig> for HypergraphConvConfig {
    fn from(hypergraph: HypergraphConfig) -> Self {
        HypergraphConvConfig {
            hypergraph,
            edge_weights: None,
        }
    }
}

/// Hypergraph convolution `[B, N, D] → [B, N, C]` with `theta: [D, C]`, over the
/// hypergraph built from its input.
// LIMITATION: learnable hyperedge weights are used as they are and must stay >= 0; an
// optimiser step that makes one negative gets a clear error on the next forward. A
// reparametrisation (softplus) would lift it at the cost of loading raw checkpoints.
#[derive(Clone, Debug)]
pub struct HypergraphConv {
    theta: Tensor,
    weights: Option<Tensor>,
    cfg: HypergraphConfig,
}

impl HypergraphConv {
    /// Loads (or creates, with a `VarMap`) `theta: [in_dim, out_dim]` and, when asked,
    /// `weights: [N]`.
    pub fn new(
        in_dim: usize,
        out_dim: usize,
        config: impl Into<HypergraphConvConfig>,
        vb: VarBuilder,
    ) -> candle_core::Result<Self> {
        let config = config.into();
        positive_dims(&[("in_dim", in_dim), ("out_dim", out_dim)])?;
        let theta = vb.get_with_hints((in_dim, out_dim), "theta", theta_init(in_dim))?;
        let weights = edge_weights(config.edge_weights, &vb)?;
        Ok(HypergraphConv {
            theta,
            weights,
            cfg: config.hypergraph,
        })
    }

    pub fn theta(&self) -> &Tensor {
        &self.theta
    }

    /// The learnable hyperedge weights `[N]`, if any.
    pub fn weights(&self) -> Option<&Tensor> {
        self.weights.as_ref()
    }

    pub fn config(&self) -> &HypergraphConfig {
        &self.cfg
    }

    /// Convolves a separate `x: [B, N, D]` over the hypergraph of `features: [B, N, D_f]`.
    pub fn forward_x(&self, features: &Tensor, x: &Tensor) -> candle_core::Result<Tensor> {
        let w = self
            .weights
            .as_ref()
            .map(|w| batch_weights(w, features))
            .transpose()?;
        hypergraph_conv(features, Some(x), &self.theta, w.as_ref(), &self.cfg)
    }
}

impl Module for HypergraphConv {
    /// `features: [B, N, D]` → `[B, N, C]`, the features being both the hypergraph's
    /// source and the convolved signal.
    fn forward(&self, features: &Tensor) -> candle_core::Result<Tensor> {
        let w = self
            .weights
            .as_ref()
            .map(|w| batch_weights(w, features))
            .transpose()?;
        hypergraph_conv(features, None, &self.theta, w.as_ref(), &self.cfg)
    }
}

/// Options of an [`Hsc`] layer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HscConfig {
    pub hypergraph: HypergraphConfig,
    /// `act` in `F̃ = (F + act(Y)) Aᵀ + b`.
    pub activation: Activation,
    /// `D_out`, the patch embeddings' width.
    pub d_out: usize,
    /// `E`, the global embedding's width.
    pub global_dim: usize,
    /// `Some(N)`: learnable hyperedge weights `[N]`; `None`: all 1.
    pub edge_weights: Option<usize>,
}

impl HscConfig {
    /// The paper's hypergraph, GELU, no learnable weights.
    pub fn new(d_out: usize, global_dim: usize) -> Self {
        HscConfig {
            hypergraph: HypergraphConfig::paper(),
            activation: Activation::GeluTanh,
            d_out,
            global_dim,
            edge_weights: None,
        }
    }
}

/// Fails on the first zero layer size, naming it (a zero fan-in would otherwise surface as
/// a non-finite initialisation bound).
fn positive_dims(dims: &[(&str, usize)]) -> candle_core::Result<()> {
    match dims.iter().find(|(_, v)| *v == 0) {
        Some((name, _)) => Err(host::wrap(Error::invalid(name, "at least 1", 0))),
        None => Ok(()),
    }
}

/// The HSC layer: `F̃ = (F + act(Y)) Aᵀ + b` with `Y` the hypergraph convolution of the
/// patch embeddings `F` (`Θ: [D, D]`), and the global embedding
/// `F^g = mean_i(F̃_i) Gᵀ + c` (mean pooling over the patches).
// LIMITATION: pooling is the mean over patches only, the one the CPU path differentiates;
// other poolings would go through candle's own ops on `F̃`.
#[derive(Clone, Debug)]
pub struct Hsc {
    params: HscTensors,
    weights: Option<Tensor>,
    cfg: HypergraphConfig,
    activation: Activation,
}

impl Hsc {
    /// Loads (or creates) `theta: [d, d]`, `a.weight: [d_out, d]`, `a.bias: [d_out]`,
    /// `global.weight: [E, d_out]`, `global.bias: [E]` and, when asked, `weights: [N]`.
    pub fn new(d: usize, config: HscConfig, vb: VarBuilder) -> candle_core::Result<Self> {
        positive_dims(&[
            ("d", d),
            ("d_out", config.d_out),
            ("global_dim", config.global_dim),
        ])?;
        let theta = vb.get_with_hints((d, d), "theta", theta_init(d))?;
        let a = candle_nn::linear(d, config.d_out, vb.pp("a"))?;
        let g = candle_nn::linear(config.d_out, config.global_dim, vb.pp("global"))?;
        let bias = |l: &candle_nn::Linear| l.bias().expect("candle_nn::linear has a bias").clone();
        Ok(Hsc {
            params: HscTensors {
                theta,
                a: a.weight().clone(),
                b: bias(&a),
                g_weight: g.weight().clone(),
                g_bias: bias(&g),
            },
            weights: edge_weights(config.edge_weights, &vb)?,
            cfg: config.hypergraph,
            activation: config.activation,
        })
    }

    /// The parameters as tensors.
    pub fn tensors(&self) -> &HscTensors {
        &self.params
    }

    /// The learnable hyperedge weights `[N]`, if any.
    pub fn weights(&self) -> Option<&Tensor> {
        self.weights.as_ref()
    }

    pub fn config(&self) -> &HypergraphConfig {
        &self.cfg
    }

    /// The parameters copied to the host as the CPU path's [`HscParams`].
    pub fn to_params<T: Real + WithDType>(&self) -> crate::Result<HscParams<T>> {
        let m = |t: &Tensor| -> crate::Result<Array2<T>> {
            let (r, c) = t.dims2()?;
            let v = t.to_dtype(T::DTYPE)?.flatten_all()?.to_vec1::<T>()?;
            Ok(Array2::from_shape_vec((r, c), v).expect("length"))
        };
        let v = |t: &Tensor| -> crate::Result<Array1<T>> {
            Ok(Array1::from(t.to_dtype(T::DTYPE)?.to_vec1::<T>()?))
        };
        let p = &self.params;
        Ok(HscParams {
            theta: m(&p.theta)?,
            a: m(&p.a)?,
            b: v(&p.b)?,
            g_weight: m(&p.g_weight)?,
            g_bias: v(&p.g_bias)?,
            activation: self.activation,
        })
    }

    /// `features: [B, N, D]` → `(F̃: [B, N, D_out], F^g: [B, E])`.
    pub fn forward_with_global(&self, features: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
        let w = self
            .weights
            .as_ref()
            .map(|w| batch_weights(w, features))
            .transpose()?;
        hsc(
            features,
            w.as_ref(),
            &self.params,
            self.activation,
            &self.cfg,
        )
    }

    /// The global embedding `F^g: [B, E]` only.
    pub fn global(&self, features: &Tensor) -> candle_core::Result<Tensor> {
        Ok(self.forward_with_global(features)?.1)
    }
}

impl Module for Hsc {
    /// `features: [B, N, D]` → the patch embeddings `F̃: [B, N, D_out]` (see
    /// [`Hsc::forward_with_global`] for `F^g` too).
    fn forward(&self, features: &Tensor) -> candle_core::Result<Tensor> {
        Ok(self.forward_with_global(features)?.0)
    }
}
