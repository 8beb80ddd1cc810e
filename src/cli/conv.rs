//! `hipl conv`: builds the hypergraph from features and runs the convolution, forward and,
//! given an upstream gradient, backward.

use super::npy::{self, Dtype, NpyReal};
use super::{emit, rule_name, RuleArgs};
use crate::autograd::{hypergraph_conv_backward, hypergraph_conv_forward};
use crate::error::{Error, Result};
use clap::Args;
use ndarray::{Array2, Array3};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Arguments of `hipl conv`.
#[derive(Clone, Debug, Args)]
pub struct ConvArgs {
    /// Patch embeddings F, [B, N, D], float32 or float64; the hypergraph is built from them.
    #[arg(long, value_name = "F.npy")]
    pub features: PathBuf,
    /// Projection Θ, [Dx, C].
    #[arg(long, value_name = "T.npy")]
    pub theta: PathBuf,
    /// Vertex signals X, [B, N, Dx] (default: the features themselves).
    #[arg(long, value_name = "X.npy")]
    pub x: Option<PathBuf>,
    /// Hyperedge weights w, [B, N], non-negative (default: all ones).
    #[arg(long, value_name = "W.npy")]
    pub weights: Option<PathBuf>,
    #[command(flatten)]
    pub rule: RuleArgs,
    /// Where to write Y, [B, N, C], in the inputs' dtype.
    #[arg(long, value_name = "Y.npy")]
    pub out: PathBuf,
    /// Upstream gradient ∂L/∂Y, [B, N, C]; runs the backward pass.
    #[arg(long, value_name = "G.npy", requires = "grads_out")]
    pub grad_output: Option<PathBuf>,
    /// Folder for the gradients: dF.npy, dTheta.npy, and dX.npy / dW.npy when --x /
    /// --weights are given.
    #[arg(long, value_name = "DIR", requires = "grad_output")]
    pub grads_out: Option<PathBuf>,
}

/// Runs `hipl conv` in the features' dtype.
pub fn run(args: &ConvArgs, out: &mut dyn Write) -> Result<()> {
    match npy::dtype_of(&args.features, "--features")? {
        Dtype::F32 => run_typed::<f32>(args, out),
        Dtype::F64 => run_typed::<f64>(args, out),
    }
}

fn run_typed<T: NpyReal>(args: &ConvArgs, out: &mut dyn Write) -> Result<()> {
    let cfg = args.rule.to_config()?;
    let features: Array3<T> = npy::read(&args.features, "--features", "[B, N, D]")?;
    let theta: Array2<T> = npy::read(&args.theta, "--theta", "[Dx, C]")?;
    let x: Option<Array3<T>> = match &args.x {
        Some(p) => Some(npy::read(p, "--x", "[B, N, Dx]")?),
        None => None,
    };
    let weights: Option<Array2<T>> = match &args.weights {
        Some(p) => Some(npy::read(p, "--weights", "[B, N]")?),
        None => None,
    };
    // Read the gradient before the (long) forward pass so a bad file fails fast.
    let dy: Option<Array3<T>> = match &args.grad_output {
        Some(p) => Some(npy::read(p, "--grad-output", "[B, N, C]")?),
        None => None,
    };
    if let Some(dy) = &dy {
        let (b, n, _) = features.dim();
        let expected = (b, n, theta.ncols());
        if dy.dim() != expected {
            return Err(Error::shape(
                "--grad-output",
                format!("[B, N, C] = {expected:?} (from --features and --theta)"),
                dy.dim(),
            ));
        }
    }

    let t0 = Instant::now();
    let (y, ctx) = hypergraph_conv_forward(
        features.view(),
        x.as_ref().map(|a| a.view()),
        theta.view(),
        weights.as_ref().map(|a| a.view()),
        &cfg,
    )?;
    let forward_ms = t0.elapsed().as_secs_f64() * 1e3;
    tracing::info!(
        rule = rule_name(&cfg.rule),
        forward_ms,
        "hypergraph conv forward on cpu"
    );
    npy::write(&args.out, "--out", &y)?;
    let (b, n, c) = y.dim();
    emit(
        out,
        format_args!(
            "Y [{b}, {n}, {c}] {} -> {} (forward {forward_ms:.2} ms, rule {}, {})",
            T::DTYPE,
            args.out.display(),
            rule_name(&cfg.rule),
            ctx.hypergraph.stats().representation,
        ),
    )?;

    let (Some(dy), Some(dir)) = (dy, &args.grads_out) else {
        return Ok(());
    };
    let t0 = Instant::now();
    let grads = hypergraph_conv_backward(
        &ctx,
        features.view(),
        x.as_ref().map(|a| a.view()),
        theta.view(),
        weights.as_ref().map(|a| a.view()),
        dy.view(),
    )?;
    let backward_ms = t0.elapsed().as_secs_f64() * 1e3;
    tracing::info!(backward_ms, "hypergraph conv backward on cpu");

    std::fs::create_dir_all(dir).map_err(|source| Error::Io {
        path: dir.clone(),
        source,
    })?;
    let mut written = vec![write_in(dir, "dF.npy", &grads.df)?];
    if let Some(dx) = &grads.dx {
        written.push(write_in(dir, "dX.npy", dx)?);
    }
    written.push(write_in(dir, "dTheta.npy", &grads.dtheta)?);
    if let Some(dw) = &grads.dweights {
        written.push(write_in(dir, "dW.npy", dw)?);
    }
    emit(
        out,
        format_args!("gradients (backward {backward_ms:.2} ms):"),
    )?;
    for p in written {
        emit(out, format_args!("  {}", p.display()))?;
    }
    Ok(())
}

fn write_in<T: NpyReal, D: ndarray::Dimension>(
    dir: &Path,
    name: &str,
    a: &ndarray::Array<T, D>,
) -> Result<PathBuf> {
    let path = dir.join(name);
    npy::write(&path, "--grads-out", a)?;
    Ok(path)
}
