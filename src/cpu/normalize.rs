//! Row normalisation `f̂_i = f_i / max(‖f_i‖, eps)` and its backward.

use crate::real::Real;
use rayon::prelude::*;

/// Writes `f̂` into `out` and each row's norm `‖f_i‖` into `norms` (rows of length `d`).
pub fn row_normalize<T: Real>(f: &[T], d: usize, eps: T, out: &mut [T], norms: &mut [T]) {
    out.par_chunks_mut(d)
        .zip(f.par_chunks(d))
        .zip(norms.par_iter_mut())
        .for_each(|((o, row), norm)| {
            *norm = row.iter().map(|&x| x * x).sum::<T>().sqrt();
            let inv = T::one() / norm.max(eps);
            o.iter_mut().zip(row).for_each(|(o, &x)| *o = x * inv);
        });
}

/// `df = (df̂ − f̂ ⟨f̂, df̂⟩) / ‖f‖` where `‖f‖ > eps`, else `df̂ / eps` (the floor is
/// constant there). Accumulates into `df`.
pub fn row_normalize_backward<T: Real>(
    fhat: &[T],
    norms: &[T],
    d: usize,
    eps: T,
    dfhat: &[T],
    df: &mut [T],
) {
    df.par_chunks_mut(d)
        .zip(fhat.par_chunks(d))
        .zip(dfhat.par_chunks(d))
        .zip(norms.par_iter())
        .for_each(|(((out, u), du), &norm)| {
            if norm > eps {
                let dot: T = u.iter().zip(du).map(|(&a, &b)| a * b).sum();
                let inv = T::one() / norm;
                for ((o, &a), &b) in out.iter_mut().zip(u).zip(du) {
                    *o += (b - a * dot) * inv;
                }
            } else {
                let inv = T::one() / eps;
                out.iter_mut().zip(du).for_each(|(o, &b)| *o += b * inv);
            }
        });
}
