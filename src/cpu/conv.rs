//! Hypergraph convolution of one image, right to left, never forming
//! `G = Dv^-1/2 H W De^-1 Hᵀ Dv^-1/2`:
//! `P = XΘ`, `Z = s_v ⊙ P`, `U = Hᵀ Z`, `E = b_e ⊙ U`, `V = H E`, `Y = a_v ⊙ V`,
//! with `b_e = w_e / d_e`, and `s_v = a_v = d_v^-1/2` (symmetric) or `s_v = 1`,
//! `a_v = d_v^-1` (random walk).

use super::gemm::{gemm, gemm_blocks, Block, Op};
use super::spmm::{apply, matvec, Side};
use crate::error::{Error, Result};
use crate::hypergraph::{HypergraphConfig, ImageGraph, Normalization, ZeroDegree};
use crate::real::Real;
use rayon::prelude::*;

/// Shapes of one image's convolution: `n` vertices, `dx` input and `c` output channels.
#[derive(Clone, Copy, Debug)]
pub struct ConvDims {
    pub n: usize,
    pub dx: usize,
    pub c: usize,
}

/// The degree scalings of one image.
#[derive(Clone, Debug)]
pub struct Scalings<T> {
    /// `d_v(i) = Σ_e H_ie w_e`.
    pub d_v: Vec<T>,
    /// Applied to `P` before `Hᵀ` (1 for random walk).
    pub s_v: Vec<T>,
    /// Applied to `H E`.
    pub a_v: Vec<T>,
    /// `w_e / d_e`.
    pub b_e: Vec<T>,
}

/// What the backward of one image needs from its forward, borrowed from the batch's
/// saved buffers (each `[n, c]`).
#[derive(Clone, Copy, Debug)]
pub struct ImageSaved<'a, T> {
    /// `P = XΘ`.
    pub p: &'a [T],
    /// `U = Hᵀ Z`.
    pub u: &'a [T],
    /// `V = H E`.
    pub v: &'a [T],
}

/// Gradients of one image other than `dX` and `dΘ` (which the caller forms from `dP` for
/// the whole batch at once).
#[derive(Clone, Debug)]
pub struct ImageConvGrads<T> {
    pub dw: Vec<T>,
    /// `∂L/∂H` dense `[n, n]`, when asked for.
    pub dh: Option<Vec<T>>,
}

/// Columns of `[n, c]` matrices pushed through the incidence products at a time. The
/// operator acts on each column alone (`Y[:, J] = G · P[:, J]`), so the products need
/// scratch for only `n × COL_BLOCK` values, whatever `c` is.
pub const COL_BLOCK: usize = 128;

/// Computes the degree scalings, applying the zero-degree policy.
pub fn scalings<T: Real>(
    g: &ImageGraph<T>,
    n: usize,
    w: &[T],
    cfg: &HypergraphConfig,
    image: usize,
) -> Result<Scalings<T>> {
    let d_v = matvec(&g.incidence, n, Side::H, w);
    let policy = |kind: &'static str, deg: &[T]| -> Result<()> {
        if cfg.zero_degree == ZeroDegree::Error {
            if let Some(index) = deg.iter().position(|&x| x == T::zero()) {
                return Err(Error::ZeroDegree { kind, image, index });
            }
        }
        Ok(())
    };
    policy("vertex", &d_v)?;
    policy("hyperedge", &g.d_e)?;
    let inv = |x: T, p: T| if x > T::zero() { x.powf(-p) } else { T::zero() };
    let half = T::of(0.5);
    let (s_v, a_v) = match cfg.norm {
        Normalization::Symmetric => {
            let s: Vec<T> = d_v.iter().map(|&x| inv(x, half)).collect();
            (s.clone(), s)
        }
        Normalization::RandomWalk => (
            vec![T::one(); n],
            d_v.iter().map(|&x| inv(x, T::one())).collect(),
        ),
    };
    let b_e = w
        .iter()
        .zip(&g.d_e)
        .map(|(&w, &de)| w * inv(de, T::one()))
        .collect();
    Ok(Scalings { d_v, s_v, a_v, b_e })
}

/// `y ← a_v ⊙ H (b_e ⊙ Hᵀ (s_v ⊙ y))` for one image: `y` holds `P = XΘ` (`[n, c]`) on
/// entry and `Y` on exit. Runs in blocks of [`COL_BLOCK`] columns with two `[n, block]`
/// scratch buffers. With `saved = Some((u, v))` (each `[n, c]`), also writes `U = Hᵀ Z`
/// and `V = H E` there for the backward.
pub fn propagate<T: Real>(
    g: &ImageGraph<T>,
    n: usize,
    c: usize,
    sc: &Scalings<T>,
    y: &mut [T],
    mut saved: Option<(&mut [T], &mut [T])>,
) {
    let cb = COL_BLOCK.min(c);
    let mut z = vec![T::zero(); n * cb];
    let mut e = vec![T::zero(); n * cb];
    let ones = vec![T::one(); if saved.is_some() { n } else { 0 }];
    for j0 in (0..c).step_by(cb.max(1)) {
        let w = cb.min(c - j0);
        let (z, e) = (&mut z[..n * w], &mut e[..n * w]);
        gather(y, c, j0, w, Some(&sc.s_v), z);
        match saved.as_mut() {
            None => {
                apply(&g.incidence, n, Side::Ht, z, w, &sc.b_e, e);
                apply(&g.incidence, n, Side::H, e, w, &sc.a_v, z);
            }
            Some((u, v)) => {
                apply(&g.incidence, n, Side::Ht, z, w, &ones, e);
                scatter(e, u, c, j0, w);
                scale_rows(e, w, &sc.b_e);
                apply(&g.incidence, n, Side::H, e, w, &ones, z);
                scatter(z, v, c, j0, w);
                scale_rows(z, w, &sc.a_v);
            }
        }
        scatter(z, y, c, j0, w);
    }
}

/// `dst[i, :] = scale_i · src[i, j0..j0 + w]` (no scale: a copy), `src` `[n, c]`, `dst`
/// `[n, w]`.
fn gather<T: Real>(src: &[T], c: usize, j0: usize, w: usize, scale: Option<&[T]>, dst: &mut [T]) {
    dst.par_chunks_mut(w)
        .zip(src.par_chunks(c))
        .enumerate()
        .for_each(|(i, (d, s))| {
            let s = &s[j0..j0 + w];
            match scale {
                Some(k) => d.iter_mut().zip(s).for_each(|(d, &x)| *d = x * k[i]),
                None => d.copy_from_slice(s),
            }
        });
}

/// `dst[i, j0..j0 + w] = src[i, :]`, `src` `[n, w]`, `dst` `[n, c]`.
fn scatter<T: Real>(src: &[T], dst: &mut [T], c: usize, j0: usize, w: usize) {
    dst.par_chunks_mut(c)
        .zip(src.par_chunks(w))
        .for_each(|(d, s)| d[j0..j0 + w].copy_from_slice(s));
}

/// Backward of [`propagate`] for one image: writes `dP` (`[n, c]`) into `dp` and returns
/// `dw` and, when asked, `dH`. The products run in column blocks as in the forward (whole
/// width when `dH` is wanted: it needs `dV` and `dU` entire).
#[allow(clippy::too_many_arguments)]
pub fn backward_image<T: Real>(
    g: &ImageGraph<T>,
    (n, c): (usize, usize),
    cfg: &HypergraphConfig,
    sc: &Scalings<T>,
    saved: ImageSaved<'_, T>,
    w: &[T],
    dy: &[T],
    dp: &mut [T],
    need_dh: bool,
) -> ImageConvGrads<T> {
    let ones = vec![T::one(); n];
    let cb = if need_dh { c } else { COL_BLOCK.min(c) };
    let mut dv = vec![T::zero(); n * cb];
    let mut de = vec![T::zero(); n * cb];
    let mut part = vec![T::zero(); n * cb];
    // P's block, when it is not the whole of P.
    let mut pb = vec![T::zero(); if cb < c { n * cb } else { 0 }];
    let (mut db, mut ds) = (vec![T::zero(); n], vec![T::zero(); n]);
    let da = row_dots(saved.v, dy, c);
    for j0 in (0..c).step_by(cb.max(1)) {
        let w = cb.min(c - j0);
        let (dv, de, part) = (&mut dv[..n * w], &mut de[..n * w], &mut part[..n * w]);
        // dV = a_v ⊙ dY, dE = Hᵀ dV, dU = b_e ⊙ dE, dZ = H dU, dP = s_v ⊙ dZ.
        gather(dy, c, j0, w, Some(&sc.a_v), dv);
        apply(&g.incidence, n, Side::Ht, dv, w, &ones, de);
        gather(saved.u, c, j0, w, None, part);
        add_row_dots(&mut db, part, de, w);
        scale_rows(de, w, &sc.b_e);
        apply(&g.incidence, n, Side::H, de, w, &ones, part);
        let dz = part;
        if w == c {
            add_row_dots(&mut ds, saved.p, dz, w);
        } else {
            let pb = &mut pb[..n * w];
            gather(saved.p, c, j0, w, None, pb);
            add_row_dots(&mut ds, pb, dz, w);
        }
        scale_rows(dz, w, &sc.s_v);
        scatter(dz, dp, c, j0, w);
    }

    let dd_v: Vec<T> = (0..n)
        .map(|i| {
            let d = sc.d_v[i];
            if d <= T::zero() {
                return T::zero();
            }
            match cfg.norm {
                Normalization::Symmetric => -T::of(0.5) * d.powf(T::of(-1.5)) * (da[i] + ds[i]),
                Normalization::RandomWalk => -da[i] / (d * d),
            }
        })
        .collect();
    let from_d_v = matvec(&g.incidence, n, Side::Ht, &dd_v);
    let mut dd_e = vec![T::zero(); n];
    let dw: Vec<T> = (0..n)
        .map(|e| {
            let de = g.d_e[e];
            if de <= T::zero() {
                return from_d_v[e];
            }
            dd_e[e] = -db[e] * w[e] / (de * de);
            db[e] / de + from_d_v[e]
        })
        .collect();

    let dh = need_dh.then(|| {
        // dH = Z dUᵀ + dV Eᵀ + dd_v wᵀ + 1 dd_eᵀ, with dV and dU (= b_e ⊙ dE) the whole
        // width here.
        let mut z = saved.p.to_vec();
        scale_rows(&mut z, c, &sc.s_v);
        let mut e = saved.u.to_vec();
        scale_rows(&mut e, c, &sc.b_e);
        let mut dh = vec![T::zero(); n * n];
        gemm(
            &mut dh,
            (n, c, n),
            &z,
            Op::N,
            &de,
            Op::T,
            T::one(),
            false,
            true,
        );
        gemm(
            &mut dh,
            (n, c, n),
            &dv,
            Op::N,
            &e,
            Op::T,
            T::one(),
            true,
            true,
        );
        for (i, row) in dh.chunks_mut(n).enumerate() {
            for (e, v) in row.iter_mut().enumerate() {
                *v = *v + dd_v[i] * w[e] + dd_e[e];
            }
        }
        dh
    });
    ImageConvGrads { dw, dh }
}

/// Columns per block of [`backward_image_lean`]: wider than [`COL_BLOCK`] so that the
/// `dX += dP_J Θ_Jᵀ` products, whose inner dimension is the block width, stay efficient.
pub const LEAN_COL_BLOCK: usize = 256;

/// Backward of [`propagate`] for one image when neither `dw` nor `dH` is wanted (unit
/// hyperedge weights, hard incidence): the operator is then applied to `dY` alone and
/// nothing of the forward is needed but the scalings. For each block `J` of
/// [`LEAN_COL_BLOCK`] columns, `dP_J = s_v ⊙ H (b_e ⊙ Hᵀ (a_v ⊙ dY_J))` goes straight into
/// `dX += dP_J Θ_Jᵀ` (`dx`: `[n, dx]`) and `dΘ_J += Xᵀ dP_J` (`dtheta`: `[dx, c]`), so the
/// scratch is two `[n, block]` buffers whatever `c` is.
#[allow(clippy::too_many_arguments)]
pub fn backward_image_lean<T: Real>(
    g: &ImageGraph<T>,
    (n, dx, c): (usize, usize, usize),
    sc: &Scalings<T>,
    x: &[T],
    theta: &[T],
    dy: &[T],
    dx_out: &mut [T],
    dtheta: &mut [T],
) {
    let cb = LEAN_COL_BLOCK.min(c);
    let mut a = vec![T::zero(); n * cb];
    let mut b = vec![T::zero(); n * cb];
    for j0 in (0..c).step_by(cb.max(1)) {
        let w = cb.min(c - j0);
        let (a, b) = (&mut a[..n * w], &mut b[..n * w]);
        gather(dy, c, j0, w, Some(&sc.a_v), a);
        apply(&g.incidence, n, Side::Ht, a, w, &sc.b_e, b);
        apply(&g.incidence, n, Side::H, b, w, &sc.s_v, a);
        let dp = Block {
            data: &a[..],
            rows: n,
            cols: w,
            stride: w,
        };
        let theta_j = Block {
            data: &theta[j0..],
            rows: dx,
            cols: w,
            stride: c,
        };
        let xb = Block {
            data: x,
            rows: n,
            cols: dx,
            stride: dx,
        };
        gemm_blocks(dx_out, (n, dx, dx), dp, Op::N, theta_j, Op::T, true);
        gemm_blocks(&mut dtheta[j0..], (dx, w, c), xb, Op::T, dp, Op::N, true);
    }
}

pub(crate) fn scale_rows<T: Real>(m: &mut [T], c: usize, s: &[T]) {
    if c == 0 {
        return;
    }
    m.par_chunks_mut(c).zip(s).for_each(|(row, &k)| {
        row.iter_mut().for_each(|x| *x *= k);
    });
}

/// `acc[i] += ⟨a_i, b_i⟩` over rows of width `c`.
fn add_row_dots<T: Real>(acc: &mut [T], a: &[T], b: &[T], c: usize) {
    acc.par_iter_mut()
        .zip(a.par_chunks(c).zip(b.par_chunks(c)))
        .for_each(|(s, (x, y))| {
            *s += x.iter().zip(y).map(|(&p, &q)| p * q).sum::<T>();
        });
}

fn row_dots<T: Real>(a: &[T], b: &[T], c: usize) -> Vec<T> {
    let mut out = vec![T::zero(); a.len() / c.max(1)];
    add_row_dots(&mut out, a, b, c);
    out
}
