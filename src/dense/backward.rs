//! Backward of the dense path: what autograd does through the forward's graph, one pair of
//! products per matrix product.

use super::{DenseCtx, DenseImage};
use crate::autograd::HypergraphConvGrads;
use crate::cpu::gemm::{gemm, Op};
use crate::cpu::normalize::row_normalize_backward;
use crate::error::Result;
use crate::hypergraph::{HypergraphConfig, IncidenceMode, Normalization, Rule};
use crate::real::Real;
use crate::validate::{check_shape, contiguous, flat};
use ndarray::{Array2, Array3, ArrayView2, ArrayView3};

/// Dense backward (autograd through the forward's graph) given the same inputs.
/// `x_given` says whether a separate `X` was passed to [`forward`] (then its gradient is
/// returned apart from the features').
pub fn backward<T: Real>(
    ctx: &DenseCtx<T>,
    x_given: bool,
    theta: ArrayView2<T>,
    dy: ArrayView3<T>,
) -> Result<HypergraphConvGrads<T>> {
    let (b, n, d, dx, c) = ctx.dims;
    check_shape("dy", dy.shape(), &[b, n, c])?;
    check_shape("theta", theta.shape(), &[dx, c])?;
    let dys = contiguous(&dy);
    let ts = contiguous(&theta);
    let cfg = &ctx.cfg;
    let structural = cfg.mode != IncidenceMode::Hard;
    let mut df = vec![T::zero(); b * n * d];
    let mut dxs = vec![T::zero(); b * n * dx];
    let mut dw = vec![T::zero(); b * n];
    let mut dtheta = vec![T::zero(); dx * c];
    for (img, im) in ctx.images.iter().enumerate() {
        let gy = &flat(&dys)[img * n * c..(img + 1) * n * c];
        // Y = G P.
        let mut dg = vec![T::zero(); n * n];
        gemm(
            &mut dg,
            (n, c, n),
            gy,
            Op::N,
            &im.p,
            Op::T,
            T::one(),
            false,
            false,
        );
        let mut dp = vec![T::zero(); n * c];
        gemm(
            &mut dp,
            (n, n, c),
            &im.g,
            Op::T,
            gy,
            Op::N,
            T::one(),
            false,
            false,
        );
        // P = X Θ.
        gemm(
            &mut dtheta,
            (dx, n, c),
            &im.x,
            Op::T,
            &dp,
            Op::N,
            T::one(),
            true,
            false,
        );
        let mut dxb = vec![T::zero(); n * dx];
        gemm(
            &mut dxb,
            (n, c, dx),
            &dp,
            Op::N,
            flat(&ts),
            Op::T,
            T::one(),
            false,
            false,
        );
        // G = F0 F1 ... Fk, evaluated left to right: partial[j] = F0 ... Fj.
        let k = im.factors.len();
        let mut dfac = vec![Vec::new(); k];
        let mut d_run = dg;
        for j in (1..k).rev() {
            let mut dfj = vec![T::zero(); n * n];
            gemm(
                &mut dfj,
                (n, n, n),
                &im.partial[j - 1],
                Op::T,
                &d_run,
                Op::N,
                T::one(),
                false,
                false,
            );
            let mut prev = vec![T::zero(); n * n];
            gemm(
                &mut prev,
                (n, n, n),
                &d_run,
                Op::N,
                &im.factors[j],
                Op::T,
                T::one(),
                false,
                false,
            );
            dfac[j] = dfj;
            d_run = prev;
        }
        dfac[0] = d_run;
        let dg_diag = |m: &Vec<T>, i: usize| m[i * n + i];
        // Degree factors: Dv' = d_v^-p, De^-1 = 1/d_e.
        let p_v = if cfg.norm == Normalization::Symmetric {
            0.5
        } else {
            1.0
        };
        let mut dd_v = vec![T::zero(); n];
        for i in 0..n {
            let mut g = dg_diag(&dfac[0], i);
            if k == 6 {
                g += dg_diag(&dfac[5], i);
            }
            if im.d_v[i] > T::zero() {
                dd_v[i] = g * T::of(-p_v) * im.d_v[i].powf(T::of(-p_v - 1.0));
            }
        }
        let mut dd_e = vec![T::zero(); n];
        for e in 0..n {
            if im.d_e[e] > T::zero() {
                dd_e[e] = -dg_diag(&dfac[3], e) / (im.d_e[e] * im.d_e[e]);
            }
        }
        // d_v = H w, W = diag(w).
        for e in 0..n {
            let from_dv: T = (0..n).map(|i| im.h[i * n + e] * dd_v[i]).sum();
            dw[img * n + e] = dg_diag(&dfac[2], e) + from_dv;
        }
        let dfb = &mut df[img * n * d..(img + 1) * n * d];
        if structural {
            let mut dh = dfac[1].clone();
            for i in 0..n {
                for e in 0..n {
                    dh[i * n + e] =
                        dh[i * n + e] + dfac[4][e * n + i] + dd_v[i] * im.w[e] + dd_e[e];
                }
            }
            im.structure_backward(cfg, &dh, n, d, dfb);
        }
        match x_given {
            true => dxs[img * n * dx..(img + 1) * n * dx].copy_from_slice(&dxb),
            false => dfb.iter_mut().zip(&dxb).for_each(|(a, &g)| *a += g),
        }
    }
    Ok(HypergraphConvGrads {
        df: Array3::from_shape_vec((b, n, d), df).expect("length"),
        dx: x_given.then(|| Array3::from_shape_vec((b, n, dx), dxs).expect("length")),
        dtheta: Array2::from_shape_vec((dx, c), dtheta).expect("length"),
        dweights: Some(Array2::from_shape_vec((b, n), dw).expect("length")),
    })
}

impl<T: Real> DenseImage<T> {
    /// `dH → dI → dS → dF̂ → dF` (or `dH → dI → dDist → dF` for the ε-ball), elementwise
    /// and with dense products, as autograd does.
    fn structure_backward(
        &self,
        cfg: &HypergraphConfig,
        dh: &[T],
        n: usize,
        d: usize,
        df: &mut [T],
    ) {
        let alpha = T::of(cfg.alpha);
        let ds: Vec<T> = (0..n * n)
            .map(|k| dh[k] * self.m[k] * alpha * self.i[k] * (T::one() - self.i[k]))
            .collect();
        if let Rule::EpsBall { .. } = cfg.rule {
            // margin = eps − dist: dDist = −dS; dist_ij = ‖f_i − f_j‖.
            for i in 0..n {
                for j in 0..n {
                    let dist = self.s[i * n + j];
                    if i == j || dist <= T::zero() {
                        continue;
                    }
                    let g = -(ds[i * n + j] + ds[j * n + i]) / dist;
                    for k in 0..d {
                        df[i * d + k] += g * (self.a[i * d + k] - self.a[j * d + k]);
                    }
                }
            }
            return;
        }
        let mut dfhat = vec![T::zero(); n * d];
        gemm(
            &mut dfhat,
            (n, n, d),
            &ds,
            Op::N,
            &self.a,
            Op::N,
            T::one(),
            false,
            false,
        );
        gemm(
            &mut dfhat,
            (n, n, d),
            &ds,
            Op::T,
            &self.a,
            Op::N,
            T::one(),
            true,
            false,
        );
        row_normalize_backward(&self.a, &self.norms, d, T::of(cfg.norm_eps), &dfhat, df);
    }
}
