//! How a hypergraph is built from patch embeddings: the rule, the incidence mode, the
//! normalisation, the zero-degree policy and the storage.

use crate::error::{Error, Result};

/// Which vertices join the hyperedge centred on vertex `j` (column `j` of `H`).
///
/// `S = F̂ F̂ᵀ` is the cosine similarity of the row-normalised features.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Rule {
    /// The paper's rule: `H_ij = [σ(alpha (S_ij − tau)) > 0.5] = [S_ij > tau]`, optionally
    /// capped to the `top_k` most similar members per hyperedge (ties to the lower index,
    /// the centre always kept).
    Threshold { top_k: Option<usize> },
    /// HGNN's rule: exactly `k` nearest vertices by cosine, the centre included.
    Knn { k: usize },
    /// Hyper-YOLO's rule: Euclidean distance on the raw features below `eps`.
    EpsBall { eps: f64 },
}

/// Whether the structure is binary and whether gradients flow through it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IncidenceMode {
    /// `H ∈ {0, 1}`; no gradient reaches the features through `H`.
    Hard,
    /// `H = I = σ(alpha (S − tau))` (masked by the kNN / top-k selection where the rule has
    /// one), dense and fully differentiable.
    Soft,
    /// Forward as `Hard`; backward treats `∂H/∂S` as `alpha I (1 − I)`.
    StraightThrough,
}

/// Which degree normalisation the convolution applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Normalization {
    /// HGNN: `Dv^-1/2 H W De^-1 Hᵀ Dv^-1/2`.
    Symmetric,
    /// HGNN+ / PyG: `Dv^-1 H W De^-1 Hᵀ`.
    RandomWalk,
}

/// What a vertex or hyperedge of degree zero does (zero weights make one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ZeroDegree {
    /// Its inverse degree is taken as 0: the vertex's output row (or the hyperedge's
    /// message) is zero, and so is its gradient. DHG's choice.
    ZeroRow,
    /// Fail with [`Error::ZeroDegree`].
    Error,
}

/// How hard incidence is stored; `Auto` picks by density.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Representation {
    /// CSR of `H` when its density is at most [`SPARSE_DENSITY`], CSR of the complement
    /// `1 − H` when at least `1 − SPARSE_DENSITY`, the bitmask in between.
    Auto,
    /// One bit per (vertex, hyperedge) pair.
    Bitmask,
    /// Compressed sparse rows of `H`.
    Csr,
    /// Compressed sparse rows of `1 − H`, with the all-ones part applied as column sums.
    ComplementCsr,
    /// A dense `N × N` float matrix (always used in `Soft` mode).
    Dense,
}

/// Density at or below which `Auto` stores `H` sparsely (and at or above one minus which it
/// stores the complement).
pub const SPARSE_DENSITY: f64 = 0.1;

/// Everything that decides the hypergraph and its convolution.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HypergraphConfig {
    pub rule: Rule,
    /// Slope of the sigmoid in `I = σ(alpha (S − tau))`; must be positive.
    pub alpha: f64,
    /// Threshold on the cosine similarity; the paper uses `-1e-4`.
    pub tau: f64,
    pub mode: IncidenceMode,
    pub norm: Normalization,
    pub zero_degree: ZeroDegree,
    pub representation: Representation,
    /// Floor on a row's norm in the normalisation `f / max(‖f‖, norm_eps)`.
    pub norm_eps: f64,
}

impl Default for HypergraphConfig {
    fn default() -> Self {
        HypergraphConfig {
            rule: Rule::Threshold { top_k: None },
            alpha: 100.0,
            tau: -1e-4,
            mode: IncidenceMode::Hard,
            norm: Normalization::Symmetric,
            zero_degree: ZeroDegree::ZeroRow,
            representation: Representation::Auto,
            norm_eps: 1e-12,
        }
    }
}

impl HypergraphConfig {
    /// The paper's rule with its defaults (`tau = -1e-4`, hard incidence, symmetric).
    pub fn paper() -> Self {
        Self::default()
    }

    /// The paper's rule capped to `top_k` members per hyperedge.
    pub fn top_k(k: usize) -> Self {
        Self {
            rule: Rule::Threshold { top_k: Some(k) },
            ..Self::default()
        }
    }

    /// HGNN's kNN rule.
    pub fn knn(k: usize) -> Self {
        Self {
            rule: Rule::Knn { k },
            ..Self::default()
        }
    }

    /// Hyper-YOLO's ε-ball rule.
    pub fn eps_ball(eps: f64) -> Self {
        Self {
            rule: Rule::EpsBall { eps },
            ..Self::default()
        }
    }

    /// Returns the config with another incidence mode.
    pub fn with_mode(self, mode: IncidenceMode) -> Self {
        Self { mode, ..self }
    }

    /// Returns the config with another normalisation.
    pub fn with_norm(self, norm: Normalization) -> Self {
        Self { norm, ..self }
    }

    /// Returns the config with another storage choice.
    pub fn with_representation(self, representation: Representation) -> Self {
        Self {
            representation,
            ..self
        }
    }

    /// Checks every scalar against `n` vertices per image.
    pub fn validate(&self, n: usize) -> Result<()> {
        if !(self.alpha > 0.0 && self.alpha.is_finite()) {
            return Err(Error::invalid("alpha", "a finite value > 0", self.alpha));
        }
        if !self.tau.is_finite() {
            return Err(Error::invalid("tau", "a finite value", self.tau));
        }
        if !(self.norm_eps > 0.0 && self.norm_eps.is_finite()) {
            return Err(Error::invalid(
                "norm_eps",
                "a finite value > 0",
                self.norm_eps,
            ));
        }
        let check_k = |arg: &str, k: usize| {
            if k == 0 || k > n {
                Err(Error::invalid(arg, format!("1 <= {arg} <= N = {n}"), k))
            } else {
                Ok(())
            }
        };
        if self.mode == IncidenceMode::Soft
            && !matches!(
                self.representation,
                Representation::Auto | Representation::Dense
            )
        {
            return Err(Error::invalid(
                "representation",
                "Auto or Dense in Soft mode (soft incidence is a dense N x N matrix)",
                format!("{:?}", self.representation),
            ));
        }
        match self.rule {
            Rule::Threshold { top_k: Some(k) } => check_k("top_k", k)?,
            Rule::Threshold { top_k: None } => {}
            Rule::Knn { k } => check_k("k", k)?,
            Rule::EpsBall { eps } => {
                if !(eps > 0.0 && eps.is_finite()) {
                    return Err(Error::invalid("eps", "a finite value > 0", eps));
                }
            }
        }
        Ok(())
    }

    /// Whether `H` is symmetric by construction (threshold without a cap, ε-ball).
    pub fn is_symmetric(&self) -> bool {
        matches!(
            self.rule,
            Rule::Threshold { top_k: None } | Rule::EpsBall { .. }
        )
    }
}
