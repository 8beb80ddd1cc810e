//! The literal dense path, as the papers' PyTorch code writes it: `S`, `I`, `H`, the
//! diagonal matrices `Dv^-1/2`, `W`, `De^-1` and `G = Dv^-1/2 H W De^-1 Hᵀ Dv^-1/2` all
//! materialised as `[B, N, N]` float tensors, `G` multiplied out left to right (HGNN's
//! `generate_G_from_H`), then `Y = G (X Θ)` (HGNN's `HGNN_conv`). The backward is what
//! autograd does through that graph: one pair of products per matrix product.
//!
//! Deliberately unoptimised: it is the test oracle of the fused path and the baseline its
//! benchmarks report ratios against.

mod backward;

pub use backward::backward;

use crate::cpu::construct::{select_row, sigmoid, Scorer};
use crate::cpu::gemm::{gemm, Op};
use crate::cpu::normalize::row_normalize;
use crate::error::{Error, Result};
use crate::hypergraph::{HypergraphConfig, IncidenceMode, Normalization, Rule, ZeroDegree};
use crate::real::Real;
use crate::validate::{check_finite, check_shape, contiguous, flat};
use ndarray::{Array3, ArrayView2, ArrayView3};
use rayon::prelude::*;

/// Everything the dense forward materialised, per image, kept for its backward.
pub struct DenseCtx<T> {
    cfg: HypergraphConfig,
    dims: (usize, usize, usize, usize, usize),
    images: Vec<DenseImage<T>>,
}

/// One image's dense tensors (`N × N` unless noted).
pub(super) struct DenseImage<T> {
    /// `f̂` (cosine rules) or the raw features (ε-ball), `[N, D]`, and the row norms.
    a: Vec<T>,
    norms: Vec<T>,
    /// `S = F̂F̂ᵀ`, or the distance matrix for the ε-ball.
    s: Vec<T>,
    /// `σ(alpha · margin)`.
    i: Vec<T>,
    /// Selection mask (kNN / top-k), or all ones.
    m: Vec<T>,
    h: Vec<T>,
    w: Vec<T>,
    d_v: Vec<T>,
    d_e: Vec<T>,
    /// The chain's factors `Dv', H, W, De^-1, Hᵀ, Dv'` and its running products.
    factors: Vec<Vec<T>>,
    partial: Vec<Vec<T>>,
    g: Vec<T>,
    /// `X`, `[N, Dx]`, and `P = XΘ`, `[N, C]`.
    x: Vec<T>,
    p: Vec<T>,
}

fn mm<T: Real>(a: &[T], b: &[T], n: usize) -> Vec<T> {
    let mut c = vec![T::zero(); n * n];
    gemm(
        &mut c,
        (n, n, n),
        a,
        Op::N,
        b,
        Op::N,
        T::one(),
        false,
        false,
    );
    c
}

fn diag<T: Real>(v: &[T]) -> Vec<T> {
    let n = v.len();
    let mut m = vec![T::zero(); n * n];
    for (i, &x) in v.iter().enumerate() {
        m[i * n + i] = x;
    }
    m
}

fn transpose<T: Real>(a: &[T], n: usize) -> Vec<T> {
    let mut t = vec![T::zero(); n * n];
    for i in 0..n {
        for j in 0..n {
            t[j * n + i] = a[i * n + j];
        }
    }
    t
}

/// Dense forward of the whole chain features → incidence → convolution, keeping every
/// intermediate for [`backward`].
pub fn forward<T: Real>(
    features: ArrayView3<T>,
    x: Option<ArrayView3<T>>,
    theta: ArrayView2<T>,
    weights: Option<ArrayView2<T>>,
    cfg: &HypergraphConfig,
) -> Result<(Array3<T>, DenseCtx<T>)> {
    run(features, x, theta, weights, cfg, true).map(|(y, ctx)| (y, ctx.expect("saved")))
}

/// Dense forward without keeping intermediates beyond their last use (`torch.no_grad`).
pub fn conv<T: Real>(
    features: ArrayView3<T>,
    x: Option<ArrayView3<T>>,
    theta: ArrayView2<T>,
    weights: Option<ArrayView2<T>>,
    cfg: &HypergraphConfig,
) -> Result<Array3<T>> {
    Ok(run(features, x, theta, weights, cfg, false)?.0)
}

fn run<T: Real>(
    features: ArrayView3<T>,
    x: Option<ArrayView3<T>>,
    theta: ArrayView2<T>,
    weights: Option<ArrayView2<T>>,
    cfg: &HypergraphConfig,
    save: bool,
) -> Result<(Array3<T>, Option<DenseCtx<T>>)> {
    let (b, n, d) = crate::autograd::validate_features(&features, cfg)?;
    let xv = x.unwrap_or(features.view());
    let dx = xv.dim().2;
    check_shape("x", &xv.shape()[..2], &[b, n])?;
    check_finite("x", flat(&contiguous(&xv)), xv.shape())?;
    let c = theta.ncols();
    check_shape("theta", theta.shape(), &[dx, c])?;
    let wv = match &weights {
        Some(w) => {
            check_shape("weights", w.shape(), &[b, n])?;
            flat(&contiguous(w)).to_vec()
        }
        None => vec![T::one(); b * n],
    };
    let f = contiguous(&features);
    let xs = contiguous(&xv);
    let ts = contiguous(&theta);
    let images: Vec<DenseImage<T>> = (0..b)
        .into_par_iter()
        .map(|img| {
            let fb = &flat(&f)[img * n * d..(img + 1) * n * d];
            let xb = &flat(&xs)[img * n * dx..(img + 1) * n * dx];
            let wb = &wv[img * n..(img + 1) * n];
            image_forward(fb, xb, flat(&ts), wb, (n, d, dx, c), cfg, img, save)
        })
        .collect::<Result<_>>()?;
    let mut y = Vec::with_capacity(b * n * c);
    for im in &images {
        let mut yb = vec![T::zero(); n * c];
        gemm(
            &mut yb,
            (n, n, c),
            &im.g,
            Op::N,
            &im.p,
            Op::N,
            T::one(),
            false,
            false,
        );
        y.extend(yb);
    }
    let y = Array3::from_shape_vec((b, n, c), y).expect("length");
    let ctx = save.then_some(DenseCtx {
        cfg: *cfg,
        dims: (b, n, d, dx, c),
        images,
    });
    Ok((y, ctx))
}

fn image_forward<T: Real>(
    f: &[T],
    x: &[T],
    theta: &[T],
    w: &[T],
    (n, d, dx, c): (usize, usize, usize, usize),
    cfg: &HypergraphConfig,
    img: usize,
    save: bool,
) -> Result<DenseImage<T>> {
    let alpha = T::of(cfg.alpha);
    let eps_rule = matches!(cfg.rule, Rule::EpsBall { .. });
    let mut norms = vec![T::zero(); n];
    let a = if eps_rule {
        f.to_vec()
    } else {
        let mut fhat = vec![T::zero(); n * d];
        row_normalize(f, d, T::of(cfg.norm_eps), &mut fhat, &mut norms);
        fhat
    };
    let scorer = Scorer::new(cfg, &a, d, !eps_rule);
    let mut gram = vec![T::zero(); n * n];
    gemm(
        &mut gram,
        (n, d, n),
        &a,
        Op::N,
        &a,
        Op::T,
        T::one(),
        false,
        false,
    );
    let margin: Vec<T> = (0..n * n)
        .map(|k| scorer.margin(k / n, k % n, gram[k]))
        .collect();
    let i_mat: Vec<T> = margin.iter().map(|&m| sigmoid(alpha * m)).collect();

    // Selection: each column e sorted by similarity (kNN, or top-k among I > 0.5).
    let mut m = vec![T::one(); n * n];
    let selection = match cfg.rule {
        Rule::Knn { k } => Some((k, false)),
        Rule::Threshold { top_k: Some(k) } => Some((k, true)),
        _ => None,
    };
    if let Some((k, thresholded)) = selection {
        m.fill(T::zero());
        for e in 0..n {
            let col: Vec<T> = (0..n).map(|i| gram[i * n + e]).collect();
            for i in select_row(e, &col, &scorer, k, thresholded) {
                m[i as usize * n + e] = T::one();
            }
        }
    }
    let half = T::of(0.5);
    let h: Vec<T> = (0..n * n)
        .map(|k| match cfg.mode {
            IncidenceMode::Soft => m[k] * i_mat[k],
            _ if k / n == k % n => T::one(),
            _ if selection.is_some() => m[k],
            _ => {
                if i_mat[k] > half {
                    T::one()
                } else {
                    T::zero()
                }
            }
        })
        .collect();

    let d_v: Vec<T> = (0..n)
        .map(|i| (0..n).map(|e| h[i * n + e] * w[e]).sum())
        .collect();
    let d_e: Vec<T> = (0..n).map(|e| (0..n).map(|i| h[i * n + e]).sum()).collect();
    let inv = |v: T, p: f64, kind: &'static str, index: usize| -> Result<T> {
        if v > T::zero() {
            Ok(v.powf(T::of(-p)))
        } else if cfg.zero_degree == ZeroDegree::Error {
            Err(Error::ZeroDegree {
                kind,
                image: img,
                index,
            })
        } else {
            Ok(T::zero())
        }
    };
    let p_v = if cfg.norm == Normalization::Symmetric {
        0.5
    } else {
        1.0
    };
    let dv_pow: Vec<T> = d_v
        .iter()
        .enumerate()
        .map(|(i, &v)| inv(v, p_v, "vertex", i))
        .collect::<Result<_>>()?;
    let de_inv: Vec<T> = d_e
        .iter()
        .enumerate()
        .map(|(e, &v)| inv(v, 1.0, "hyperedge", e))
        .collect::<Result<_>>()?;

    let mut factors = vec![
        diag(&dv_pow),
        h.clone(),
        diag(w),
        diag(&de_inv),
        transpose(&h, n),
    ];
    if cfg.norm == Normalization::Symmetric {
        factors.push(diag(&dv_pow));
    }
    let mut partial = vec![factors[0].clone()];
    for fac in &factors[1..] {
        let next = mm(partial.last().expect("non-empty"), fac, n);
        if !save {
            partial.clear();
        }
        partial.push(next);
    }
    let g = partial.pop().expect("non-empty");
    if !save {
        factors.clear();
    }
    let mut p = vec![T::zero(); n * c];
    gemm(
        &mut p,
        (n, dx, c),
        x,
        Op::N,
        theta,
        Op::N,
        T::one(),
        false,
        false,
    );
    let s = if eps_rule {
        (0..n * n)
            .map(|k| scorer.distance(k / n, k % n, gram[k]))
            .collect()
    } else {
        gram
    };
    if !save {
        return Ok(DenseImage {
            a: Vec::new(),
            norms,
            s: Vec::new(),
            i: Vec::new(),
            m: Vec::new(),
            h: Vec::new(),
            w: Vec::new(),
            d_v,
            d_e,
            factors,
            partial,
            g,
            x: Vec::new(),
            p,
        });
    }
    let x = x.to_vec();
    Ok(DenseImage {
        a,
        norms,
        s,
        i: i_mat,
        m,
        h,
        w: w.to_vec(),
        d_v,
        d_e,
        factors,
        partial,
        g,
        x,
        p,
    })
}
