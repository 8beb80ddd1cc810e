//! Hypergraph convolution of one image, right to left, never forming
//! `G = Dv^-1/2 H W De^-1 Hᵀ Dv^-1/2`:
//! `P = XΘ`, `Z = s_v ⊙ P`, `U = Hᵀ Z`, `E = b_e ⊙ U`, `V = H E`, `Y = a_v ⊙ V`,
//! with `b_e = w_e / d_e`, and `s_v = a_v = d_v^-1/2` (symmetric) or `s_v = 1`,
//! `a_v = d_v^-1` (random walk).

use super::gemm::{gemm, Op};
use super::spmm::{apply, matvec, Side};
use crate::error::{Error, Result};
use crate::hypergraph::{HypergraphConfig, ImageGraph, Normalization, ZeroDegree};
use crate::real::Real;

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

/// What the backward of one image needs from its forward.
#[derive(Clone, Debug)]
pub struct ImageConvCtx<T> {
    pub scalings: Scalings<T>,
    /// `P = XΘ`, `[n, c]`.
    pub p: Vec<T>,
    /// `U = Hᵀ Z`, `[n, c]`.
    pub u: Vec<T>,
    /// `V = H E`, `[n, c]`.
    pub v: Vec<T>,
}

/// Gradients of one image; `d_theta` is accumulated by the caller.
#[derive(Clone, Debug)]
pub struct ImageConvGrads<T> {
    pub dx: Vec<T>,
    pub dw: Vec<T>,
    /// `∂L/∂H` dense `[n, n]`, when asked for.
    pub dh: Option<Vec<T>>,
}

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

/// `y = a_v ⊙ H (b_e ⊙ Hᵀ (s_v ⊙ XΘ))`, using `y` itself for `P` and `Z`, and one
/// `[n, c]` scratch buffer. With `save`, also returns the context for the backward.
pub fn forward<T: Real>(
    g: &ImageGraph<T>,
    dims: ConvDims,
    x: &[T],
    theta: &[T],
    sc: Scalings<T>,
    y: &mut [T],
    save: bool,
) -> Option<ImageConvCtx<T>> {
    let ConvDims { n, dx, c } = dims;
    gemm(y, (n, dx, c), x, Op::N, theta, Op::N, T::one(), false, true);
    let p = save.then(|| y.to_vec());
    scale_rows(y, c, &sc.s_v);

    let mut e = vec![T::zero(); n * c];
    let ones = vec![T::one(); n];
    let u = if save {
        apply(&g.incidence, n, Side::Ht, y, c, &ones, &mut e);
        let u = e.clone();
        scale_rows(&mut e, c, &sc.b_e);
        Some(u)
    } else {
        apply(&g.incidence, n, Side::Ht, y, c, &sc.b_e, &mut e);
        None
    };

    if save {
        apply(&g.incidence, n, Side::H, &e, c, &ones, y);
        let v = y.to_vec();
        scale_rows(y, c, &sc.a_v);
        Some(ImageConvCtx {
            scalings: sc,
            p: p?,
            u: u?,
            v,
        })
    } else {
        apply(&g.incidence, n, Side::H, &e, c, &sc.a_v, y);
        None
    }
}

/// Backward of [`forward`] for one image: `dX`, `dw`, optionally `dH`, and `dΘ` added into
/// `d_theta` (`[dx, c]`).
#[allow(clippy::too_many_arguments)]
pub fn backward<T: Real>(
    g: &ImageGraph<T>,
    dims: ConvDims,
    cfg: &HypergraphConfig,
    ctx: &ImageConvCtx<T>,
    x: &[T],
    theta: &[T],
    w: &[T],
    dy: &[T],
    d_theta: &mut [T],
    need_dh: bool,
) -> ImageConvGrads<T> {
    let ConvDims { n, dx, c } = dims;
    let sc = &ctx.scalings;
    let ones = vec![T::one(); n];

    let mut dv = dy.to_vec();
    scale_rows(&mut dv, c, &sc.a_v);
    let mut de = vec![T::zero(); n * c];
    apply(&g.incidence, n, Side::Ht, &dv, c, &ones, &mut de);
    let db = row_dots(&ctx.u, &de, c);
    let mut du = de;
    scale_rows(&mut du, c, &sc.b_e);
    let mut dz = vec![T::zero(); n * c];
    apply(&g.incidence, n, Side::H, &du, c, &ones, &mut dz);
    let da = row_dots(&ctx.v, dy, c);
    let ds = row_dots(&ctx.p, &dz, c);
    let mut dp = dz;
    scale_rows(&mut dp, c, &sc.s_v);

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

    let mut dxv = vec![T::zero(); n * dx];
    gemm(
        &mut dxv,
        (n, c, dx),
        &dp,
        Op::N,
        theta,
        Op::T,
        T::one(),
        false,
        true,
    );
    gemm(
        d_theta,
        (dx, n, c),
        x,
        Op::T,
        &dp,
        Op::N,
        T::one(),
        true,
        true,
    );

    let dh = need_dh.then(|| {
        // dH = Z dUᵀ + dV Eᵀ + dd_v wᵀ + 1 dd_eᵀ.
        let mut z = ctx.p.clone();
        scale_rows(&mut z, c, &sc.s_v);
        let mut e = ctx.u.clone();
        scale_rows(&mut e, c, &sc.b_e);
        let mut dh = vec![T::zero(); n * n];
        gemm(
            &mut dh,
            (n, c, n),
            &z,
            Op::N,
            &du,
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
    ImageConvGrads { dx: dxv, dw, dh }
}

pub(crate) fn scale_rows<T: Real>(m: &mut [T], c: usize, s: &[T]) {
    if c == 0 {
        return;
    }
    for (row, &k) in m.chunks_mut(c).zip(s) {
        row.iter_mut().for_each(|x| *x = *x * k);
    }
}

fn row_dots<T: Real>(a: &[T], b: &[T], c: usize) -> Vec<T> {
    a.chunks(c)
        .zip(b.chunks(c))
        .map(|(x, y)| x.iter().zip(y).map(|(&p, &q)| p * q).sum())
        .collect()
}
