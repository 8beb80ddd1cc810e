//! Fused path against the literal dense path (`hipl::dense`), forward and forward+backward,
//! at B = 4, N ∈ {576, 1369}, D ∈ {768, 1024}, for the paper's rule, kNN (k = 9) and a
//! top-k cap of 64, on CLIP-like features. Criterion times every case; at the end the
//! bench prints (and writes as JSON) the dense/fused time ratios of this run and the peak
//! extra memory of each path.
//!
//! `cargo bench --bench hypergraph` runs everything (about 15 minutes on 2 cores);
//! `cargo bench --bench hypergraph -- '1369x1024/.*/forward'` a subset (a regex). Set `HIPL_BENCH_QUICK=1` for
//! the smallest shape only.

#[path = "common.rs"]
mod common;

use common::{clip_like, mib, peak_extra, theta, warm_gemm_scratch, Counting};
use criterion::{BenchmarkId, Criterion};
use hipl::*;
use std::time::Duration;

#[global_allocator]
static ALLOC: Counting = Counting;

const B: usize = 4;

fn rules() -> [(&'static str, HypergraphConfig); 3] {
    [
        ("paper", HypergraphConfig::paper()),
        ("knn9", HypergraphConfig::knn(9)),
        ("topk64", HypergraphConfig::top_k(64)),
    ]
}

fn shapes() -> Vec<(usize, usize)> {
    if std::env::var_os("HIPL_BENCH_QUICK").is_some() {
        return vec![(576, 768)];
    }
    vec![(576, 768), (576, 1024), (1369, 768), (1369, 1024)]
}

struct Inputs {
    f: ndarray::Array3<f32>,
    theta: ndarray::Array2<f32>,
    dy: ndarray::Array3<f32>,
}

fn fused_forward(x: &Inputs, cfg: &HypergraphConfig) -> ndarray::Array3<f32> {
    let hg = build_hypergraph(x.f.view(), cfg).unwrap();
    conv(&hg, x.f.view(), x.theta.view(), None).unwrap()
}

fn fused_train(x: &Inputs, cfg: &HypergraphConfig) -> ndarray::Array3<f32> {
    let (_, ctx) = hypergraph_conv_forward(x.f.view(), None, x.theta.view(), None, cfg).unwrap();
    hypergraph_conv_backward(&ctx, x.f.view(), None, x.theta.view(), None, x.dy.view())
        .unwrap()
        .df
}

fn dense_forward(x: &Inputs, cfg: &HypergraphConfig) -> ndarray::Array3<f32> {
    dense::conv(x.f.view(), None, x.theta.view(), None, cfg).unwrap()
}

fn dense_train(x: &Inputs, cfg: &HypergraphConfig) -> ndarray::Array3<f32> {
    let (_, ctx) = dense::forward(x.f.view(), None, x.theta.view(), None, cfg).unwrap();
    dense::backward(&ctx, false, x.theta.view(), x.dy.view())
        .unwrap()
        .df
}

type Path = fn(&Inputs, &HypergraphConfig) -> ndarray::Array3<f32>;

const PATHS: [(&str, Path); 4] = [
    ("fused/forward", fused_forward),
    ("dense/forward", dense_forward),
    ("fused/fwd+bwd", fused_train),
    ("dense/fwd+bwd", dense_train),
];

fn main() {
    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    // The same filter criterion applies, so memory is measured only for the cases it runs.
    let filter = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with("--"))
        .and_then(|f| regex::Regex::new(&f).ok());
    let mut memory = Vec::new();
    warm_gemm_scratch();
    for (n, d) in shapes() {
        let x = Inputs {
            f: clip_like(B, n, d, 1),
            theta: theta(d, d, 2),
            dy: clip_like(B, n, d, 3),
        };
        for (rule, cfg) in rules() {
            let shape = format!("{n}x{d}/{rule}");
            let mut group = c.benchmark_group(format!("B4/{shape}"));
            for (path, run) in PATHS {
                let id = format!("B4/{shape}/{path}");
                let wanted = filter.as_ref().is_none_or(|re| re.is_match(&id));
                if !wanted {
                    continue;
                }
                // Warm the thread pool and faer's per-thread buffers, then measure the peak
                // above the inputs and the [B, N, D] result every path returns.
                let _ = run(&x, &cfg);
                let (peak, _) = peak_extra(B * n * d * 4, || run(&x, &cfg));
                memory.push((shape.clone(), path, peak));
                group.bench_function(BenchmarkId::from_parameter(path), |bch| {
                    bch.iter(|| run(&x, &cfg))
                });
            }
            group.finish();
        }
    }
    c.final_summary();
    report(&memory);
}

/// Median times from criterion's estimates of this run, the dense/fused ratios and memory.
fn report(memory: &[(String, &str, usize)]) {
    let dir = std::path::Path::new(&std::env::var("CARGO_TARGET_DIR").unwrap_or("target".into()))
        .join("criterion");
    let median = |shape: &str, path: &str| -> Option<f64> {
        let group = format!("B4_{}", shape.replace('/', "_"));
        let file = dir
            .join(group)
            .join(path.replace('/', "_"))
            .join("new/estimates.json");
        let text = std::fs::read_to_string(file).ok()?;
        let json: serde_json::Value = serde_json::from_str(&text).ok()?;
        json["median"]["point_estimate"].as_f64().map(|ns| ns / 1e9)
    };
    let mem = |shape: &str, path: &str| {
        memory
            .iter()
            .find(|(s, p, _)| s == shape && *p == path)
            .map(|(_, _, m)| *m)
    };
    let mut rows = Vec::new();
    println!("\n| B=4 shape/rule | pass | fused s | dense s | dense/fused | fused MiB | dense MiB | mem ratio |");
    println!("|---|---|---|---|---|---|---|---|");
    let mut shapes: Vec<&String> = memory.iter().map(|(s, _, _)| s).collect();
    shapes.dedup();
    for shape in shapes {
        for pass in ["forward", "fwd+bwd"] {
            let (fp, dp) = (format!("fused/{pass}"), format!("dense/{pass}"));
            let (Some(tf), Some(td)) = (median(shape, &fp), median(shape, &dp)) else {
                continue;
            };
            let (mf, md) = (mem(shape, &fp).unwrap_or(0), mem(shape, &dp).unwrap_or(0));
            println!(
                "| {shape} | {pass} | {tf:.3} | {td:.3} | {:.2}x | {:.1} | {:.1} | 1/{:.0} |",
                td / tf,
                mib(mf),
                mib(md),
                md as f64 / mf.max(1) as f64
            );
            rows.push(serde_json::json!({
                "shape": shape, "pass": pass, "fused_s": tf, "dense_s": td, "ratio": td / tf,
                "fused_peak_bytes": mf, "dense_peak_bytes": md,
            }));
        }
    }
    let out = dir.join("hipl-summary.json");
    if std::fs::write(
        &out,
        serde_json::to_string_pretty(&rows).unwrap_or_default(),
    )
    .is_ok()
    {
        println!("summary written to {}", out.display());
    }
}
