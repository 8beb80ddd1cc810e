//! `hipl hypergraph`: builds the hypergraph of a batch of features, prints its statistics
//! as JSON and optionally writes the dense incidence.

use super::npy::{self, Dtype, NpyReal};
use super::{emit, rule_name, RuleArgs};
use crate::autograd::build_hypergraph;
use crate::error::Result;
use crate::hypergraph::{DegreeStats, HypergraphConfig, IncidenceMode, Normalization, Rule};
use clap::Args;
use ndarray::Array3;
use serde_json::{json, Value};
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

/// Arguments of `hipl hypergraph`.
#[derive(Clone, Debug, Args)]
pub struct HypergraphArgs {
    /// Patch embeddings F, [B, N, D], float32 or float64.
    #[arg(long, value_name = "F.npy")]
    pub features: PathBuf,
    #[command(flatten)]
    pub rule: RuleArgs,
    /// Write the dense incidence H, [B, N, N] (row = vertex, column = hyperedge): 0/1 as
    /// uint8, or in `--mode soft` the soft values in the features' dtype.
    #[arg(long, value_name = "H.npy")]
    pub incidence_out: Option<PathBuf>,
}

/// Runs `hipl hypergraph` in the features' dtype.
pub fn run(args: &HypergraphArgs, out: &mut dyn Write) -> Result<()> {
    match npy::dtype_of(&args.features, "--features")? {
        Dtype::F32 => run_typed::<f32>(args, out),
        Dtype::F64 => run_typed::<f64>(args, out),
    }
}

fn run_typed<T: NpyReal>(args: &HypergraphArgs, out: &mut dyn Write) -> Result<()> {
    let cfg = args.rule.to_config()?;
    let features: Array3<T> = npy::read(&args.features, "--features", "[B, N, D]")?;

    let t0 = Instant::now();
    let hg = build_hypergraph(features.view(), &cfg)?;
    let build_ms = t0.elapsed().as_secs_f64() * 1e3;
    tracing::info!(
        rule = rule_name(&cfg.rule),
        build_ms,
        "hypergraph built on cpu"
    );

    let stats = hg.stats();
    let (b, n, d) = features.dim();
    let report = json!({
        "B": b,
        "N": n,
        "D": d,
        "dtype": T::DTYPE.to_string(),
        "rule": rule_json(&cfg),
        "build_ms": build_ms,
        "density": stats.density,
        "vertex_degree": degree_json(&stats.vertex_degree),
        "hyperedge_degree": degree_json(&stats.hyperedge_degree),
        "representation": stats.representation,
    });
    emit(
        out,
        serde_json::to_string_pretty(&report).expect("a JSON value always serialises"),
    )?;

    if let Some(path) = &args.incidence_out {
        let dense = hg.to_dense();
        if cfg.mode == IncidenceMode::Soft {
            npy::write(
                path,
                "--incidence-out",
                &Array3::from_shape_vec((b, n, n), dense).expect("B*N*N"),
            )?;
        } else {
            let bits: Vec<u8> = dense.iter().map(|&v| u8::from(v != T::zero())).collect();
            npy::write(
                path,
                "--incidence-out",
                &Array3::from_shape_vec((b, n, n), bits).expect("B*N*N"),
            )?;
        }
        tracing::info!(path = %path.display(), "incidence written");
    }
    Ok(())
}

/// The rule and every scalar that shaped the hypergraph.
fn rule_json(cfg: &HypergraphConfig) -> Value {
    let mut rule = json!({
        "name": rule_name(&cfg.rule),
        "alpha": cfg.alpha,
        "tau": cfg.tau,
        "mode": match cfg.mode {
            IncidenceMode::Hard => "hard",
            IncidenceMode::Soft => "soft",
            IncidenceMode::StraightThrough => "ste",
        },
        "norm": match cfg.norm {
            Normalization::Symmetric => "sym",
            Normalization::RandomWalk => "rw",
        },
    });
    let extra = match cfg.rule {
        Rule::Threshold { top_k } => ("top_k", json!(top_k)),
        Rule::Knn { k } => ("k", json!(k)),
        Rule::EpsBall { eps } => ("eps", json!(eps)),
    };
    rule[extra.0] = extra.1;
    rule
}

fn degree_json(d: &DegreeStats) -> Value {
    json!({ "min": d.min, "mean": d.mean, "max": d.max })
}
