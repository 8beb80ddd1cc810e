//! One benchmark case of the fused or the dense path, for `tools/bench_compare.py`.
//!
//! Loads (or generates) one batch of inputs, runs the path once to warm the thread pool and
//! faer's per-thread buffers, measures the peak extra heap of one run with a counting
//! allocator, times `--repeats` runs, writes the result (`Y` for `--pass forward`, `dF` for
//! `--pass train`) to `--out`, and prints one JSON line.
//!
//! ```text
//! # the CLIP-like inputs of the criterion bench, as .npy (f, theta, dy):
//! cargo run --release --example bench_case -- write-inputs --b 4 --n 1369 --d 1024 --dir in/
//! # one case on them:
//! cargo run --release --example bench_case -- run --inputs in/ --rule paper --mode hard \
//!     --pass forward --path fused --repeats 5 --out y.npy
//! ```

#[path = "../benches/common.rs"]
mod common;

use clap::{Parser, Subcommand, ValueEnum};
use common::{clip_like, peak_extra, theta, warm_gemm_scratch, Counting};
use hipl::cpu::gemm::Op;
use hipl::*;
use ndarray::{Array2, Array3};
use ndarray_npy::{read_npy, write_npy};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[global_allocator]
static ALLOC: Counting = Counting;

#[derive(Parser)]
#[command(about = "One fused-or-dense benchmark case; prints one JSON line")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Writes CLIP-like `f.npy` [B, N, D], `theta.npy` [D, D] and `dy.npy` [B, N, D]
    /// (seeds `seed`, `seed + 1`, `seed + 2`; the criterion bench uses seed 1).
    WriteInputs {
        #[arg(long)]
        b: usize,
        #[arg(long)]
        n: usize,
        #[arg(long)]
        d: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long)]
        dir: PathBuf,
    },
    /// Times one case.
    Run(Case),
}

#[derive(Parser)]
struct Case {
    /// Folder with `f.npy`, `theta.npy`, `dy.npy`; without it the inputs are generated from
    /// `--b --n --d --seed`.
    #[arg(long)]
    inputs: Option<PathBuf>,
    #[arg(long, default_value_t = 4)]
    b: usize,
    #[arg(long, default_value_t = 576)]
    n: usize,
    #[arg(long, default_value_t = 768)]
    d: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[arg(long, value_enum, default_value_t = RuleArg::Paper)]
    rule: RuleArg,
    /// `k` of the kNN rule (default 9) or the top-k cap (default 64).
    #[arg(long)]
    k: Option<usize>,
    #[arg(long, value_enum, default_value_t = ModeArg::Hard)]
    mode: ModeArg,
    #[arg(long = "pass", value_enum, default_value_t = PassArg::Forward)]
    pass: PassArg,
    #[arg(long, value_enum, default_value_t = PathArg::Fused)]
    path: PathArg,
    /// Timed runs after the warm-up run; the median is reported.
    #[arg(long, default_value_t = 5)]
    repeats: usize,
    /// Where to write the output (`Y`, or `dF` for `--pass train`) as `.npy`.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Where to write the dense incidence `H` [B, N, N] as `.npy` (agreement diagnostics).
    #[arg(long)]
    incidence_out: Option<PathBuf>,
    /// Only write `--incidence-out`; time nothing.
    #[arg(long)]
    only_incidence: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum RuleArg {
    Paper,
    Knn,
    Topk,
}

#[derive(Clone, Copy, ValueEnum)]
enum ModeArg {
    Hard,
    Soft,
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
enum PassArg {
    Forward,
    Train,
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
enum PathArg {
    Fused,
    Dense,
}

struct Inputs {
    f: Array3<f32>,
    theta: Array2<f32>,
    dy: Array3<f32>,
}

fn main() {
    if let Err(e) = real_main() {
        eprintln!("bench_case: {e}");
        std::process::exit(2);
    }
}

fn real_main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    match Cli::parse().command {
        Command::WriteInputs { b, n, d, seed, dir } => {
            std::fs::create_dir_all(&dir)?;
            write_npy(dir.join("f.npy"), &clip_like(b, n, d, seed))?;
            write_npy(dir.join("theta.npy"), &theta(d, d, seed + 1))?;
            write_npy(dir.join("dy.npy"), &clip_like(b, n, d, seed + 2))?;
            Ok(())
        }
        Command::Run(case) => run(&case),
    }
}

fn load(case: &Case) -> std::result::Result<Inputs, Box<dyn std::error::Error>> {
    let Some(dir) = &case.inputs else {
        let (b, n, d, s) = (case.b, case.n, case.d, case.seed);
        return Ok(Inputs {
            f: clip_like(b, n, d, s),
            theta: theta(d, d, s + 1),
            dy: clip_like(b, n, d, s + 2),
        });
    };
    let read3 = |name: &str| -> std::result::Result<Array3<f32>, Box<dyn std::error::Error>> {
        let p: &Path = &dir.join(name);
        read_npy(p).map_err(|e| format!("{}: {e}", p.display()).into())
    };
    let f = read3("f.npy")?;
    let dy = read3("dy.npy")?;
    let p = dir.join("theta.npy");
    let theta: Array2<f32> = read_npy(&p).map_err(|e| format!("{}: {e}", p.display()))?;
    if dy.dim() != (f.dim().0, f.dim().1, theta.ncols()) {
        return Err(format!(
            "dy.npy is {:?}, f.npy {:?}, theta.npy {:?}",
            dy.shape(),
            f.shape(),
            theta.shape()
        )
        .into());
    }
    Ok(Inputs { f, theta, dy })
}

fn config(case: &Case) -> HypergraphConfig {
    let cfg = match case.rule {
        RuleArg::Paper => HypergraphConfig::paper(),
        RuleArg::Knn => HypergraphConfig::knn(case.k.unwrap_or(9)),
        RuleArg::Topk => HypergraphConfig::top_k(case.k.unwrap_or(64)),
    };
    match case.mode {
        ModeArg::Hard => cfg,
        ModeArg::Soft => cfg.with_mode(IncidenceMode::Soft),
    }
}

/// One run of the chosen path; returns `Y` (forward) or `dF` (train).
fn once(x: &Inputs, cfg: &HypergraphConfig, pass: PassArg, path: PathArg) -> Result<Array3<f32>> {
    let (f, th, dy) = (x.f.view(), x.theta.view(), x.dy.view());
    match (path, pass) {
        (PathArg::Fused, PassArg::Forward) => conv(&build_hypergraph(f, cfg)?, f, th, None),
        (PathArg::Fused, PassArg::Train) => {
            let (_, ctx) = hypergraph_conv_forward(f, None, th, None, cfg)?;
            Ok(hypergraph_conv_backward(&ctx, f, None, th, None, dy)?.df)
        }
        (PathArg::Dense, PassArg::Forward) => dense::conv(f, None, th, None, cfg),
        (PathArg::Dense, PassArg::Train) => {
            let (_, ctx) = dense::forward(f, None, th, None, cfg)?;
            Ok(dense::backward(&ctx, false, th, dy)?.df)
        }
    }
}

fn median(times: &[f64]) -> f64 {
    let mut t = times.to_vec();
    t.sort_by(|a, b| a.total_cmp(b));
    let m = t.len() / 2;
    if t.len() % 2 == 1 {
        t[m]
    } else {
        0.5 * (t[m - 1] + t[m])
    }
}

fn run(case: &Case) -> std::result::Result<(), Box<dyn std::error::Error>> {
    let x = load(case)?;
    let cfg = config(case);
    let (b, n, d) = x.f.dim();
    if case.only_incidence {
        let p = case
            .incidence_out
            .as_ref()
            .ok_or("--only-incidence needs --incidence-out")?;
        let h = match case.path {
            PathArg::Fused => {
                Array3::from_shape_vec((b, n, n), build_hypergraph(x.f.view(), &cfg)?.to_dense())?
            }
            PathArg::Dense => dense_selection(&x.f, &cfg)?,
        };
        write_npy(p, &h)?;
        println!(
            "{}",
            serde_json::json!({ "side": "rust", "incidence_out": p })
        );
        return Ok(());
    }

    warm_gemm_scratch();
    let t0 = Instant::now();
    let out = once(&x, &cfg, case.pass, case.path)?;
    let warmup_s = t0.elapsed().as_secs_f64();
    drop(out);

    // Peak above the inputs and the [B, N, ·] result every path returns.
    let keep = out_bytes(&x, case.pass);
    let (peak, out) = peak_extra(keep, || once(&x, &cfg, case.pass, case.path));
    let out = out?;

    let mut times = Vec::with_capacity(case.repeats);
    for _ in 0..case.repeats {
        let t = Instant::now();
        let r = once(&x, &cfg, case.pass, case.path)?;
        times.push(t.elapsed().as_secs_f64());
        drop(r);
    }

    if let Some(p) = &case.out {
        write_npy(p, &out)?;
    }
    let stats = match case.path {
        PathArg::Fused => {
            let hg = build_hypergraph(x.f.view(), &cfg)?;
            if let Some(p) = &case.incidence_out {
                write_npy(p, &Array3::from_shape_vec((b, n, n), hg.to_dense())?)?;
            }
            Some(hg.stats())
        }
        PathArg::Dense => {
            if let Some(p) = &case.incidence_out {
                write_npy(p, &dense_selection(&x.f, &cfg)?)?;
            }
            None
        }
    };
    let line = serde_json::json!({
        "side": "rust",
        "path": match case.path { PathArg::Fused => "fused", PathArg::Dense => "dense" },
        "b": b, "n": n, "d": d,
        "rule": match case.rule { RuleArg::Paper => "paper", RuleArg::Knn => "knn", RuleArg::Topk => "topk" },
        "k": match cfg.rule { Rule::Knn { k } | Rule::Threshold { top_k: Some(k) } => Some(k), _ => None },
        "mode": match case.mode { ModeArg::Hard => "hard", ModeArg::Soft => "soft" },
        "pass": match case.pass { PassArg::Forward => "forward", PassArg::Train => "train" },
        "device": "cpu",
        "threads": rayon::current_num_threads(),
        "warmup_s": warmup_s,
        "times_s": times,
        "median_s": if times.is_empty() { warmup_s } else { median(&times) },
        "peak_extra_bytes": peak,
        "memory_method": "counting global allocator: peak live heap bytes during one run, \
                          minus those live before it and minus the returned result",
        "density": stats.as_ref().map(|s| s.density),
        "representation": stats.as_ref().map(|s| s.representation),
    });
    println!("{line}");
    Ok(())
}

/// Bytes of the result a run returns (`Y: [B, N, C]` or `dF: [B, N, D]`).
fn out_bytes(x: &Inputs, pass: PassArg) -> usize {
    let (b, n, d) = x.f.dim();
    let cols = if pass == PassArg::Forward {
        x.theta.ncols()
    } else {
        d
    };
    b * n * cols * std::mem::size_of::<f32>()
}

/// The hard incidence `hipl::dense` selects under a kNN / top-k rule, recomputed with the
/// same public pieces it uses (row normalisation, then the Gram matrix of the normalised
/// rows through the same sequential faer product, then per hyperedge `e` the centre and the
/// `k − 1` most similar others by column `e`, ties to the lower index, counting only those
/// above `tau` for the top-k cap), so the agreement check can compare like with like.
/// Other rules: the fused path's incidence (they have no selection).
fn dense_selection(f: &Array3<f32>, cfg: &HypergraphConfig) -> Result<Array3<f32>> {
    let (k, thresholded) = match cfg.rule {
        Rule::Knn { k } => (k, false),
        Rule::Threshold { top_k: Some(k) } => (k, true),
        _ => {
            let hg = build_hypergraph(f.view(), cfg)?;
            let (b, n, _) = f.dim();
            return Ok(Array3::from_shape_vec((b, n, n), hg.to_dense()).expect("length"));
        }
    };
    let (fhat, _) = row_normalize_forward(f.view(), cfg.norm_eps as f32)?;
    let (b, n, d) = f.dim();
    let tau = cfg.tau as f32;
    let mut h = Array3::<f32>::zeros((b, n, n));
    for img in 0..b {
        let a = fhat.index_axis(ndarray::Axis(0), img);
        let a = a.as_slice().expect("standard layout");
        let mut gram = vec![0.0f32; n * n];
        hipl::cpu::gemm::gemm(&mut gram, (n, d, n), a, Op::N, a, Op::T, 1.0, false, false);
        for e in 0..n {
            let sim = |j: usize| gram[j * n + e];
            let mut cand: Vec<usize> = (0..n)
                .filter(|&j| j != e && (!thresholded || sim(j) - tau > 0.0))
                .collect();
            cand.sort_by(|&x, &y| sim(y).partial_cmp(&sim(x)).unwrap().then(x.cmp(&y)));
            cand.truncate(k - 1);
            cand.push(e);
            for i in cand {
                h[[img, i, e]] = 1.0;
            }
        }
    }
    Ok(h)
}
