//! The `hipl` command line: one module per subcommand, plus what they share (the hypergraph
//! rule flags, `.npy` input and output, logging, and the error exit).
//!
//! Every subcommand's `run` writes its report to the writer it is given (standard output in
//! the binary) and returns a [`crate::Error`]; the binary prints `error: <message>` and exits
//! with status 1.

#[cfg(feature = "candle")]
pub mod clip;
pub mod conv;
pub mod demo;
pub mod eval;
pub mod hypergraph;
pub mod npy;
#[cfg(feature = "candle")]
pub mod quickstart;
pub mod synth;
#[cfg(feature = "candle")]
pub mod test;
#[cfg(feature = "candle")]
pub mod train;

use crate::error::{Error, Result};
use crate::hypergraph::{HypergraphConfig, IncidenceMode, Normalization, Representation, Rule};
use clap::{Args, ValueEnum};
use std::io::Write;
use std::process::ExitCode;

/// Which vertices join a hyperedge (`--rule`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RuleName {
    /// The paper's rule: cosine similarity above `--tau` (optionally capped by `--top-k`).
    Threshold,
    /// The `--k` nearest vertices by cosine, the centre included.
    Knn,
    /// Euclidean distance on the raw features below `--eps`.
    Eps,
}

/// `--mode`: see [`IncidenceMode`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ModeName {
    /// Binary incidence; no gradient through the structure.
    Hard,
    /// The sigmoid itself as incidence, fully differentiable.
    Soft,
    /// Straight-through: forward hard, backward through the sigmoid.
    Ste,
}

/// `--norm`: see [`Normalization`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum NormName {
    /// `Dv^-1/2 H W De^-1 Hᵀ Dv^-1/2`.
    Sym,
    /// `Dv^-1 H W De^-1 Hᵀ`.
    Rw,
}

/// `--repr`: see [`Representation`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ReprName {
    Auto,
    Bitmask,
    Csr,
    Complement,
    Dense,
}

/// The flags that choose how the hypergraph is built, shared by `conv` and `hypergraph`.
#[derive(Clone, Debug, Args)]
pub struct RuleArgs {
    /// Hypergraph construction rule.
    #[arg(long, value_enum, default_value_t = RuleName::Threshold)]
    pub rule: RuleName,
    /// Slope of the sigmoid `σ(alpha (S − tau))` (soft and straight-through modes) [default: 100].
    #[arg(long, allow_negative_numbers = true)]
    pub alpha: Option<f64>,
    /// Cosine threshold of the threshold rule [default: -1e-4].
    #[arg(long, allow_negative_numbers = true)]
    pub tau: Option<f64>,
    /// Neighbours per hyperedge, centre included (required by `--rule knn`).
    #[arg(long)]
    pub k: Option<usize>,
    /// Keep only the K most similar members of each hyperedge (`--rule threshold` only).
    #[arg(long)]
    pub top_k: Option<usize>,
    /// Euclidean radius on the raw features (required by `--rule eps`).
    #[arg(long, allow_negative_numbers = true)]
    pub eps: Option<f64>,
    /// Incidence mode: binary, soft sigmoid, or straight-through.
    #[arg(long, value_enum, default_value_t = ModeName::Hard)]
    pub mode: ModeName,
    /// Degree normalisation: symmetric (HGNN) or random walk (HGNN+).
    #[arg(long, value_enum, default_value_t = NormName::Sym)]
    pub norm: NormName,
    /// Storage of hard incidence (`auto` picks by density).
    #[arg(long = "repr", value_enum, default_value_t = ReprName::Auto)]
    pub representation: ReprName,
}

impl RuleArgs {
    /// The configuration these flags describe. Checks which flags go with which rule; the
    /// values themselves (`alpha > 0`, `k <= N`, ...) are checked by the library once `N` is
    /// known.
    pub fn to_config(&self) -> Result<HypergraphConfig> {
        let given = self.rule.to_possible_value().expect("no skipped variants");
        let only_with = |flag: &str, rule: &str| {
            Error::invalid(
                flag,
                format!("--rule {rule} ({flag} applies to that rule only)"),
                format!("--rule {}", given.get_name()),
            )
        };
        if self.k.is_some() && self.rule != RuleName::Knn {
            return Err(only_with("--k", "knn"));
        }
        if self.top_k.is_some() && self.rule != RuleName::Threshold {
            return Err(only_with("--top-k", "threshold"));
        }
        if self.eps.is_some() && self.rule != RuleName::Eps {
            return Err(only_with("--eps", "eps"));
        }
        let rule = match self.rule {
            RuleName::Threshold => Rule::Threshold { top_k: self.top_k },
            RuleName::Knn => Rule::Knn {
                k: self.k.ok_or_else(|| {
                    Error::invalid("--k", "a neighbour count with --rule knn", "none")
                })?,
            },
            RuleName::Eps => Rule::EpsBall {
                eps: self
                    .eps
                    .ok_or_else(|| Error::invalid("--eps", "a radius with --rule eps", "none"))?,
            },
        };
        let default = HypergraphConfig::default();
        Ok(HypergraphConfig {
            rule,
            alpha: self.alpha.unwrap_or(default.alpha),
            tau: self.tau.unwrap_or(default.tau),
            mode: match self.mode {
                ModeName::Hard => IncidenceMode::Hard,
                ModeName::Soft => IncidenceMode::Soft,
                ModeName::Ste => IncidenceMode::StraightThrough,
            },
            norm: match self.norm {
                NormName::Sym => Normalization::Symmetric,
                NormName::Rw => Normalization::RandomWalk,
            },
            representation: match self.representation {
                ReprName::Auto => Representation::Auto,
                ReprName::Bitmask => Representation::Bitmask,
                ReprName::Csr => Representation::Csr,
                ReprName::Complement => Representation::ComplementCsr,
                ReprName::Dense => Representation::Dense,
            },
            ..default
        })
    }
}

/// The rule's short name, as the CLI spells it.
pub fn rule_name(rule: &Rule) -> &'static str {
    match rule {
        Rule::Threshold { .. } => "threshold",
        Rule::Knn { .. } => "knn",
        Rule::EpsBall { .. } => "eps",
    }
}

/// Logs to standard error through `tracing`; `RUST_LOG` sets the filter (default `warn`).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // A second initialisation (a test harness calling this twice) is harmless: keep the first.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// Turns an internal failure (a panic, which is a bug) into the same `error:` line and exit
/// status as any other error, instead of a backtrace.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()));
        eprintln!(
            "error: internal error (a bug in hipl): {msg}{}",
            at.unwrap_or_default()
        );
        std::process::exit(1);
    }));
}

/// Prints `error: <message>` for a failure and gives the process's exit status.
pub fn exit_code(result: Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Writes one report line, mapping a failed write to [`Error::Io`]. A reader that went away
/// (`hipl ... | head`) is not a failure: the rest of the report is dropped and the work
/// (files to write) goes on.
pub(crate) fn emit(out: &mut dyn Write, line: impl std::fmt::Display) -> Result<()> {
    match writeln!(out, "{line}") {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r.map_err(|source| Error::Io {
            path: "<stdout>".into(),
            source,
        }),
    }
}
