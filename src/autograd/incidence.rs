//! Ops: row normalisation and similarity → incidence, each a forward that returns its
//! output and a saved context, and a backward from the output gradient.

use crate::cpu::construct::{build_image, sigmoid, squared_norms, Scorer};
use crate::cpu::gemm::{gemm, Op};
use crate::cpu::normalize as norm;
use crate::error::{Error, Result};
use crate::hypergraph::{Hypergraph, HypergraphConfig, IncidenceMode, Rule};
use crate::real::Real;
use crate::validate::{check_features_shape, check_finite, check_shape, contiguous, flat};
use ndarray::{Array3, ArrayView3};
use rayon::prelude::*;

/// Saved by [`row_normalize_forward`]: the output and the row norms.
#[derive(Clone, Debug)]
pub struct RowNormCtx<T> {
    fhat: Array3<T>,
    norms: Vec<T>,
    eps: T,
}

/// `f̂_i = f_i / max(‖f_i‖, eps)` over the last axis of `[B, N, D]`.
pub fn row_normalize_forward<T: Real>(
    features: ArrayView3<T>,
    eps: T,
) -> Result<(Array3<T>, RowNormCtx<T>)> {
    check_finite("features", flat(&contiguous(&features)), features.shape())?;
    if !(eps > T::zero() && eps.is_finite()) {
        return Err(Error::invalid("eps", "a finite value > 0", eps.to64()));
    }
    let (b, n, d) = features.dim();
    let f = contiguous(&features);
    let mut out = vec![T::zero(); b * n * d];
    let mut norms = vec![T::zero(); b * n];
    if d > 0 {
        norm::row_normalize(flat(&f), d, eps, &mut out, &mut norms);
    }
    let fhat = Array3::from_shape_vec((b, n, d), out).expect("length b*n*d");
    Ok((fhat.clone(), RowNormCtx { fhat, norms, eps }))
}

/// Backward of [`row_normalize_forward`]: `dF` from `dF̂`.
pub fn row_normalize_backward<T: Real>(
    ctx: &RowNormCtx<T>,
    d_fhat: ArrayView3<T>,
) -> Result<Array3<T>> {
    check_shape("d_fhat", d_fhat.shape(), ctx.fhat.shape())?;
    let (b, n, d) = ctx.fhat.dim();
    let g = contiguous(&d_fhat);
    let mut df = vec![T::zero(); b * n * d];
    if d > 0 {
        let fhat = ctx.fhat.as_slice().expect("owned standard layout");
        norm::row_normalize_backward(fhat, &ctx.norms, d, ctx.eps, flat(&g), &mut df);
    }
    Ok(Array3::from_shape_vec((b, n, d), df).expect("length b*n*d"))
}

/// Saved by [`incidence_forward`]: the batch's dims (the backward recomputes what it
/// needs from the features, which it is given again).
#[derive(Clone, Debug)]
pub struct IncidenceCtx {
    dims: (usize, usize, usize),
}

/// Validates features for a config and returns `(B, N, D)`.
pub(crate) fn validate_features<T: Real>(
    features: &ArrayView3<T>,
    cfg: &HypergraphConfig,
) -> Result<(usize, usize, usize)> {
    let (b, n, d) = check_features_shape("features", features.shape())?;
    cfg.validate(n)?;
    check_finite("features", flat(&contiguous(features)), features.shape())?;
    Ok((b, n, d))
}

/// Builds the hypergraph of every image (see [`Hypergraph`]). Images are built one after
/// another, each in parallel row blocks, so the scratch memory is one image's. Zero-norm
/// rows are an error under the cosine rules (their similarity is undefined).
pub fn incidence_forward<T: Real>(
    features: ArrayView3<T>,
    cfg: &HypergraphConfig,
) -> Result<(Hypergraph<T>, IncidenceCtx)> {
    let (b, n, d) = validate_features(&features, cfg)?;
    let f = contiguous(&features);
    let f = flat(&f);
    // Squared norms bound every Gram entry: they must be finite in T, or the similarity
    // would silently overflow (f32 rows with entries beyond ~1e19).
    let sq: Vec<T> = squared_norms(f, d);
    if let Some(pos) = sq.iter().position(|&s| !(s + s + s + s).is_finite()) {
        return Err(Error::invalid(
            "features",
            format!(
                "rows whose squared norm fits in {} (scale the features down)",
                T::NAME
            ),
            format!(
                "an overflowing row at image {}, vertex {}",
                pos / n,
                pos % n
            ),
        ));
    }
    if !matches!(cfg.rule, Rule::EpsBall { .. }) {
        let floor = T::of(cfg.norm_eps);
        if let Some(pos) = sq.iter().position(|&s| s.sqrt() <= floor) {
            return Err(Error::invalid(
                "features",
                format!(
                    "rows with a norm above norm_eps = {:e} (cosine similarity is undefined otherwise)",
                    cfg.norm_eps
                ),
                format!("a zero-norm row at image {}, vertex {}", pos / n, pos % n),
            ));
        }
    }
    let start = std::time::Instant::now();
    let images = f
        .chunks(n * d)
        .zip(sq.chunks(n))
        .map(|(img, sq)| build_image(img, sq, n, d, cfg))
        .collect();
    let hg = Hypergraph::from_images(*cfg, n, images)?;
    tracing::info!(
        device = "cpu",
        b, n, d,
        rule = ?cfg.rule,
        mode = ?cfg.mode,
        elapsed_ms = start.elapsed().as_secs_f64() * 1e3,
        "built hypergraph"
    );
    Ok((hg, IncidenceCtx { dims: (b, n, d) }))
}

/// The hypergraph of every image, without a saved context.
pub fn build_hypergraph<T: Real>(
    features: ArrayView3<T>,
    cfg: &HypergraphConfig,
) -> Result<Hypergraph<T>> {
    Ok(incidence_forward(features, cfg)?.0)
}

/// Backward of [`incidence_forward`]: `dF` from `dH` (`[B, N, N]`, row = vertex, column =
/// hyperedge), given the same features. Zero in `Hard` mode; in `Soft` mode
/// `∂H/∂S = alpha H (1 − H)` on the kept entries; in `StraightThrough` mode
/// `alpha I (1 − I)` with `I = σ(alpha · margin)` recomputed, on the kept entries.
pub fn incidence_backward<T: Real>(
    hg: &Hypergraph<T>,
    ctx: &IncidenceCtx,
    features: ArrayView3<T>,
    dh: ArrayView3<T>,
) -> Result<Array3<T>> {
    let (b, n, d) = ctx.dims;
    check_shape("features", features.shape(), &[b, n, d])?;
    check_shape("dh", dh.shape(), &[b, n, n])?;
    let cfg = hg.config();
    let mut df = vec![T::zero(); b * n * d];
    if cfg.mode == IncidenceMode::Hard {
        return Ok(Array3::from_shape_vec((b, n, d), df).expect("length b*n*d"));
    }
    let f = contiguous(&features);
    let f = flat(&f);
    let dh = contiguous(&dh);
    let dh = flat(&dh);
    df.par_chunks_mut(n * d).enumerate().for_each(|(img, df)| {
        let a = &f[img * n * d..(img + 1) * n * d];
        let scorer = Scorer::new(cfg, a, d, false);
        let ds = structure_grad(
            hg,
            img,
            a,
            &scorer,
            n,
            d,
            &dh[img * n * n..(img + 1) * n * n],
        );
        match cfg.rule {
            Rule::EpsBall { .. } => eps_backward(&scorer, a, n, d, &ds, df),
            _ => {
                // S = F̂F̂ᵀ: dF̂ = (dS + dSᵀ) F̂, then through the normalisation.
                let mut sym = ds.clone();
                for i in 0..n {
                    for j in 0..n {
                        sym[i * n + j] = ds[i * n + j] + ds[j * n + i];
                    }
                }
                let mut fhat = vec![T::zero(); n * d];
                let mut norms = vec![T::zero(); n];
                norm::row_normalize(a, d, T::of(cfg.norm_eps), &mut fhat, &mut norms);
                let mut dfhat = vec![T::zero(); n * d];
                gemm(
                    &mut dfhat,
                    (n, n, d),
                    &sym,
                    Op::N,
                    &fhat,
                    Op::N,
                    T::one(),
                    false,
                    false,
                );
                norm::row_normalize_backward(&fhat, &norms, d, T::of(cfg.norm_eps), &dfhat, df);
            }
        }
    });
    Ok(Array3::from_shape_vec((b, n, d), df).expect("length b*n*d"))
}

/// `∂L/∂margin` of one image (the sigmoid's input divided by alpha, times alpha).
fn structure_grad<T: Real>(
    hg: &Hypergraph<T>,
    img: usize,
    a: &[T],
    scorer: &Scorer<T>,
    n: usize,
    d: usize,
    dh: &[T],
) -> Vec<T> {
    let cfg = hg.config();
    let alpha = T::of(cfg.alpha);
    let h = hg.image(img).incidence.to_dense(n);
    if cfg.mode == IncidenceMode::Soft {
        return (0..n * n)
            .map(|k| dh[k] * alpha * h[k] * (T::one() - h[k]))
            .collect();
    }
    let mut g = vec![T::zero(); n * n];
    gemm(
        &mut g,
        (n, d, n),
        a,
        Op::N,
        a,
        Op::T,
        T::one(),
        false,
        false,
    );
    let masked = matches!(
        cfg.rule,
        Rule::Knn { .. } | Rule::Threshold { top_k: Some(_) }
    );
    (0..n * n)
        .map(|k| {
            let (i, j) = (k / n, k % n);
            if masked && h[k] == T::zero() {
                return T::zero();
            }
            let s = sigmoid(alpha * scorer.margin(i, j, g[k]));
            dh[k] * alpha * s * (T::one() - s)
        })
        .collect()
}

/// ε-ball: `margin_ij = eps − ‖f_i − f_j‖`, so `∂L/∂f_i = Σ_j Q_ij (f_i − f_j)` with
/// `Q_ij = −(dm_ij + dm_ji) / dist_ij` off the diagonal.
fn eps_backward<T: Real>(scorer: &Scorer<T>, f: &[T], n: usize, d: usize, dm: &[T], df: &mut [T]) {
    let mut gram = vec![T::zero(); n * n];
    gemm(
        &mut gram,
        (n, d, n),
        f,
        Op::N,
        f,
        Op::T,
        T::one(),
        false,
        false,
    );
    let mut q = vec![T::zero(); n * n];
    for i in 0..n {
        for j in 0..n {
            let dist = scorer.distance(i, j, gram[i * n + j]);
            // LIMITATION: coincident distinct vertices (distance 0) get no gradient; the
            // distance has no derivative there.
            if i != j && dist > T::zero() {
                q[i * n + j] = -(dm[i * n + j] + dm[j * n + i]) / dist;
            }
        }
    }
    let mut qf = vec![T::zero(); n * d];
    gemm(
        &mut qf,
        (n, n, d),
        &q,
        Op::N,
        f,
        Op::N,
        T::one(),
        false,
        false,
    );
    for i in 0..n {
        let rs: T = q[i * n..(i + 1) * n].iter().copied().sum();
        for k in 0..d {
            df[i * d + k] = df[i * d + k] + rs * f[i * d + k] - qf[i * d + k];
        }
    }
}
