//! Op: hypergraph convolution `Y = Dv^-1/2 H W De^-1 Hᵀ Dv^-1/2 X Θ` (or the random-walk
//! form) over a batch, forward with a saved context and backward; and the whole chain
//! features → incidence → convolution.

use super::incidence::{incidence_backward, incidence_forward, IncidenceCtx};
use crate::cpu::conv::{self as kernel, ConvDims, ImageSaved, Scalings};
use crate::cpu::gemm::{gemm, Op};
use crate::error::{Error, Result};
use crate::hypergraph::{Hypergraph, HypergraphConfig, IncidenceMode};
use crate::real::Real;
use crate::validate::{check_finite, check_result, check_shape, contiguous, flat};
use ndarray::{Array2, Array3, ArrayView2, ArrayView3};

/// Saved by [`conv_forward`]: per image the degree scalings and, when the backward will need
/// them (hyperedge weights given, or soft / straight-through incidence), for the batch
/// `P = XΘ`, `U = Hᵀ Z` and `V = H E` (each `[B, N, C]`, row-major). With unit weights and
/// hard incidence nothing else is saved: the backward then needs only `dY`, `X` and `Θ`.
// LIMITATION: with hyperedge weights or soft / straight-through incidence, P, U and V are
// kept whole ([B, N, C] each: 64 MiB at 4×1369×1024), so that forward+backward peak is about
// torch's. Recomputing U and V in the backward's column blocks (cheap for the sparse
// storages) and P from column blocks of Θ would shrink it to the blocks' scratch, for one
// more XΘ product.
#[derive(Clone, Debug)]
pub struct ConvCtx<T> {
    scalings: Vec<Scalings<T>>,
    /// Whether `p`, `u` and `v` hold the forward's products (else they are empty).
    full: bool,
    p: Vec<T>,
    u: Vec<T>,
    v: Vec<T>,
    dims: ConvDims,
}

/// What the forward keeps for the backward.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Save {
    /// Nothing (forward only).
    Nothing,
    /// The degree scalings only: enough for `dX` and `dΘ`.
    Scalings,
    /// The scalings and `P`, `U`, `V`: also `dw` and `dH`.
    Full,
}

/// Gradients of the convolution's inputs.
#[derive(Clone, Debug)]
pub struct ConvGrads<T> {
    /// `[B, N, Dx]`.
    pub dx: Array3<T>,
    /// `[Dx, C]`, summed over the batch.
    pub dtheta: Array2<T>,
    /// `[B, N]`, the gradient of the hyperedge weights, when weights were given (with the
    /// default unit weights there is nothing to differentiate and it is `None`).
    pub dweights: Option<Array2<T>>,
    /// `[B, N, N]`, `∂L/∂H`, when asked for (needed by `Soft`/`StraightThrough`).
    pub dh: Option<Array3<T>>,
}

/// Checks `x`, `theta` and `weights` against the hypergraph; returns the dims.
fn validate<T: Real>(
    hg: &Hypergraph<T>,
    x: &ArrayView3<T>,
    theta: &ArrayView2<T>,
    weights: Option<&ArrayView2<T>>,
) -> Result<ConvDims> {
    let (b, n) = (hg.batch_size(), hg.n_vertices());
    let (xb, xn, dx) = x.dim();
    if (xb, xn) != (b, n) || dx == 0 {
        return Err(Error::shape("x", format!("[{b}, {n}, D >= 1]"), x.shape()));
    }
    let (tr, c) = theta.dim();
    if tr != dx || c == 0 {
        return Err(Error::shape(
            "theta",
            format!("[{dx}, C >= 1] (rows = x's D)"),
            theta.shape(),
        ));
    }
    check_finite("x", flat(&contiguous(x)), x.shape())?;
    check_finite("theta", flat(&contiguous(theta)), theta.shape())?;
    if let Some(w) = weights {
        check_shape("weights", w.shape(), &[b, n])?;
        let ws = contiguous(w);
        check_finite("weights", flat(&ws), w.shape())?;
        if let Some(pos) = flat(&ws).iter().position(|&v| v < T::zero()) {
            return Err(Error::invalid(
                "weights",
                "hyperedge weights >= 0",
                format!("{} at [{}, {}]", flat(&ws)[pos].to64(), pos / n, pos % n),
            ));
        }
    }
    Ok(ConvDims { n, dx, c })
}

fn weights_of<T: Real>(weights: Option<&ArrayView2<T>>, b: usize, n: usize) -> Vec<T> {
    match weights {
        Some(w) => flat(&contiguous(w)).to_vec(),
        None => vec![T::one(); b * n],
    }
}

fn run<T: Real>(
    hg: &Hypergraph<T>,
    x: ArrayView3<T>,
    theta: ArrayView2<T>,
    weights: Option<ArrayView2<T>>,
    save: Save,
) -> Result<(Array3<T>, Option<ConvCtx<T>>)> {
    let dims = validate(hg, &x, &theta, weights.as_ref())?;
    let ConvDims { n, dx, c } = dims;
    let b = hg.batch_size();
    let start = std::time::Instant::now();
    let w = weights_of(weights.as_ref(), b, n);
    let scalings = hg
        .images()
        .iter()
        .enumerate()
        .map(|(img, g)| kernel::scalings(g, n, &w[img * n..(img + 1) * n], hg.config(), img))
        .collect::<Result<Vec<_>>>()?;
    let xs = contiguous(&x);
    let ts = contiguous(&theta);
    // XΘ for the whole batch in one product (B·N rows: a better-shaped GEMM than one per
    // image), straight into the output, which the propagation then overwrites in place.
    // LIMITATION: when the complement of H is (nearly) empty, as on CLIP-like features
    // under the paper's rule, Y = a_v ⊙ [1 (rᵀΘ) − (H̄ b)(qᵀΘ) + R Θ] (r, q: weighted
    // column sums of X; R nonzero only on rows that H̄ touches) needs XΘ on those rows
    // only; XΘ is still formed whole here.
    let mut y = vec![T::zero(); b * n * c];
    gemm(
        &mut y,
        (b * n, dx, c),
        flat(&xs),
        Op::N,
        flat(&ts),
        Op::N,
        T::one(),
        false,
        true,
    );
    let full = save == Save::Full;
    let (p, mut u, mut v) = if full {
        (
            y.clone(),
            vec![T::zero(); b * n * c],
            vec![T::zero(); b * n * c],
        )
    } else {
        (Vec::new(), Vec::new(), Vec::new())
    };
    // Images one after another, each parallel inside: only one image's scratch is alive.
    for (img, yb) in y.chunks_mut(n * c).enumerate() {
        let range = img * n * c..(img + 1) * n * c;
        let saved = full.then(|| (&mut u[range.clone()], &mut v[range]));
        kernel::propagate(hg.image(img), n, c, &scalings[img], yb, saved);
    }
    check_result("the output Y", "x/theta/weights", &y, &[b, n, c])?;
    let y = Array3::from_shape_vec((b, n, c), y).expect("length b*n*c");
    tracing::info!(
        device = "cpu",
        b,
        n,
        dx,
        c,
        saved = ?save,
        elapsed_ms = start.elapsed().as_secs_f64() * 1e3,
        "hypergraph convolution"
    );
    Ok((
        y,
        (save != Save::Nothing).then_some(ConvCtx {
            scalings,
            full,
            p,
            u,
            v,
            dims,
        }),
    ))
}

/// Forward only (nothing saved): `x: [B, N, Dx]`, `theta: [Dx, C]`, `weights: [B, N]`
/// (default all ones) → `Y: [B, N, C]`.
pub fn conv<T: Real>(
    hg: &Hypergraph<T>,
    x: ArrayView3<T>,
    theta: ArrayView2<T>,
    weights: Option<ArrayView2<T>>,
) -> Result<Array3<T>> {
    Ok(run(hg, x, theta, weights, Save::Nothing)?.0)
}

/// Forward, saving what [`conv_backward`] needs: the degree scalings and, with hyperedge
/// weights or soft / straight-through incidence, `XΘ`, `Hᵀ Z` and `H E` per image (for
/// `dw` and `dH`).
pub fn conv_forward<T: Real>(
    hg: &Hypergraph<T>,
    x: ArrayView3<T>,
    theta: ArrayView2<T>,
    weights: Option<ArrayView2<T>>,
) -> Result<(Array3<T>, ConvCtx<T>)> {
    let save = if weights.is_some() || hg.config().mode != IncidenceMode::Hard {
        Save::Full
    } else {
        Save::Scalings
    };
    let (y, ctx) = run(hg, x, theta, weights, save)?;
    Ok((y, ctx.expect("saved when asked")))
}

/// Backward of [`conv_forward`], given the same inputs and `dy: [B, N, C]`. With `need_dh`
/// also returns `∂L/∂H` (an `N × N` buffer per image). With unit weights (`None`), hard
/// incidence and no `dH`, it runs in column blocks straight into `dX` and `dΘ`, with scratch
/// of two `[N, 256]` blocks.
pub fn conv_backward<T: Real>(
    hg: &Hypergraph<T>,
    ctx: &ConvCtx<T>,
    x: ArrayView3<T>,
    theta: ArrayView2<T>,
    weights: Option<ArrayView2<T>>,
    dy: ArrayView3<T>,
    need_dh: bool,
) -> Result<ConvGrads<T>> {
    let dims = validate(hg, &x, &theta, weights.as_ref())?;
    if ctx.scalings.len() != hg.batch_size() {
        return Err(Error::shape(
            "hypergraph",
            format!(
                "the batch given to conv_forward ({} images)",
                ctx.scalings.len()
            ),
            [hg.batch_size()],
        ));
    }
    if dims.dx != ctx.dims.dx || dims.c != ctx.dims.c {
        return Err(Error::shape(
            "x/theta",
            format!(
                "the shapes given to conv_forward ([{}, {}])",
                ctx.dims.dx, ctx.dims.c
            ),
            [dims.dx, dims.c],
        ));
    }
    let ConvDims { n, dx, c } = dims;
    let b = hg.batch_size();
    check_shape("dy", dy.shape(), &[b, n, c])?;
    let dys = contiguous(&dy);
    check_finite("dy", flat(&dys), dy.shape())?;
    let w = weights_of(weights.as_ref(), b, n);
    let xs = contiguous(&x);
    let ts = contiguous(&theta);

    let (xs, ts, dys) = (flat(&xs), flat(&ts), flat(&dys));

    if !ctx.full {
        if weights.is_some() || need_dh {
            return Err(Error::invalid(
                if need_dh { "need_dh" } else { "weights" },
                "the inputs given to conv_forward (which had no hyperedge weights and hard \
                 incidence, so it saved nothing for dweights or dH)",
                if need_dh {
                    "dH asked for"
                } else {
                    "hyperedge weights"
                },
            ));
        }
        let mut dxs = vec![T::zero(); b * n * dx];
        let mut dtheta = vec![T::zero(); dx * c];
        for img in 0..b {
            kernel::backward_image_lean(
                hg.image(img),
                (n, dx, c),
                &ctx.scalings[img],
                &xs[img * n * dx..(img + 1) * n * dx],
                ts,
                &dys[img * n * c..(img + 1) * n * c],
                &mut dxs[img * n * dx..(img + 1) * n * dx],
                &mut dtheta,
            );
        }
        check_result("dX", "dy/x/theta", &dxs, &[b, n, dx])?;
        check_result("dtheta", "dy/x/theta", &dtheta, &[dx, c])?;
        return Ok(ConvGrads {
            dx: Array3::from_shape_vec((b, n, dx), dxs).expect("length"),
            dtheta: Array2::from_shape_vec((dx, c), dtheta).expect("length"),
            dweights: None,
            dh: None,
        });
    }

    // dP per image through the incidence products, then dX = dP Θᵀ and dΘ = Xᵀ dP for the
    // whole batch in one product each.
    let mut dp = vec![T::zero(); b * n * c];
    let mut dws = Vec::with_capacity(b * n);
    let mut dhs = Vec::new();
    for (img, dpb) in dp.chunks_mut(n * c).enumerate() {
        let range = img * n * c..(img + 1) * n * c;
        let saved = ImageSaved {
            p: &ctx.p[range.clone()],
            u: &ctx.u[range.clone()],
            v: &ctx.v[range.clone()],
        };
        let g = kernel::backward_image(
            hg.image(img),
            (n, c),
            hg.config(),
            &ctx.scalings[img],
            saved,
            &w[img * n..(img + 1) * n],
            &dys[range],
            dpb,
            need_dh,
        );
        dws.extend(g.dw);
        if let Some(dh) = g.dh {
            dhs.extend(dh);
        }
    }
    let mut dxs = vec![T::zero(); b * n * dx];
    gemm(
        &mut dxs,
        (b * n, c, dx),
        &dp,
        Op::N,
        ts,
        Op::T,
        T::one(),
        false,
        true,
    );
    let mut dtheta = vec![T::zero(); dx * c];
    gemm(
        &mut dtheta,
        (dx, b * n, c),
        xs,
        Op::T,
        &dp,
        Op::N,
        T::one(),
        false,
        true,
    );
    check_result("dX", "dy/x/theta/weights", &dxs, &[b, n, dx])?;
    check_result("dtheta", "dy/x/theta/weights", &dtheta, &[dx, c])?;
    check_result("dweights", "dy/x/theta/weights", &dws, &[b, n])?;
    Ok(ConvGrads {
        dx: Array3::from_shape_vec((b, n, dx), dxs).expect("length"),
        dtheta: Array2::from_shape_vec((dx, c), dtheta).expect("length"),
        dweights: weights
            .is_some()
            .then(|| Array2::from_shape_vec((b, n), dws).expect("length")),
        dh: need_dh.then(|| Array3::from_shape_vec((b, n, n), dhs).expect("length")),
    })
}

/// Saved by [`hypergraph_conv_forward`].
#[derive(Clone, Debug)]
pub struct HypergraphConvCtx<T> {
    pub hypergraph: Hypergraph<T>,
    incidence: IncidenceCtx,
    conv: ConvCtx<T>,
}

/// Gradients of the whole chain.
#[derive(Clone, Debug)]
pub struct HypergraphConvGrads<T> {
    /// Gradient reaching the features: through `X` when `X` is `F`, and through the
    /// structure in `Soft`/`StraightThrough` modes.
    pub df: Array3<T>,
    /// Gradient of a separate `x`, when one was given.
    pub dx: Option<Array3<T>>,
    pub dtheta: Array2<T>,
    /// Gradient of the hyperedge weights, when they were given.
    pub dweights: Option<Array2<T>>,
}

/// Builds the hypergraph from `features` and convolves `x` (default: the features).
pub fn hypergraph_conv_forward<T: Real>(
    features: ArrayView3<T>,
    x: Option<ArrayView3<T>>,
    theta: ArrayView2<T>,
    weights: Option<ArrayView2<T>>,
    cfg: &HypergraphConfig,
) -> Result<(Array3<T>, HypergraphConvCtx<T>)> {
    let (hg, inc) = incidence_forward(features.view(), cfg)?;
    let (y, conv) = conv_forward(&hg, x.unwrap_or(features), theta, weights)?;
    Ok((
        y,
        HypergraphConvCtx {
            hypergraph: hg,
            incidence: inc,
            conv,
        },
    ))
}

/// Backward of [`hypergraph_conv_forward`], given the same inputs.
pub fn hypergraph_conv_backward<T: Real>(
    ctx: &HypergraphConvCtx<T>,
    features: ArrayView3<T>,
    x: Option<ArrayView3<T>>,
    theta: ArrayView2<T>,
    weights: Option<ArrayView2<T>>,
    dy: ArrayView3<T>,
) -> Result<HypergraphConvGrads<T>> {
    let hg = &ctx.hypergraph;
    let structural = hg.config().mode != IncidenceMode::Hard;
    let xv = x.as_ref().map(|v| v.view()).unwrap_or(features.view());
    let g = conv_backward(hg, &ctx.conv, xv, theta, weights, dy, structural)?;
    let structure = match &g.dh {
        Some(dh) => Some(incidence_backward(
            hg,
            &ctx.incidence,
            features.view(),
            dh.view(),
        )?),
        None => None,
    };
    let (df, dx) = match (x, structure) {
        (Some(_), Some(df)) => (df, Some(g.dx)),
        (Some(_), None) => (Array3::zeros(features.dim()), Some(g.dx)),
        (None, Some(mut df)) => {
            df += &g.dx;
            (df, None)
        }
        // Hard incidence and X = F: the gradient reaches F through X only.
        (None, None) => (g.dx, None),
    };
    Ok(HypergraphConvGrads {
        df,
        dx,
        dtheta: g.dtheta,
        dweights: g.dweights,
    })
}
