//! Products with the incidence matrix in every storage: `op(H) M` for a dense `[N, C]`
//! matrix `M`, with a per-output-row scale fused in, and `op(H) v` for vectors.

use super::gemm::{gemm, Op};
use crate::hypergraph::{Bitmask, Csr, Incidence};
use crate::real::Real;
use rayon::prelude::*;

/// Rows of a bitmask expanded to floats at a time, so that the product runs as a dense
/// GEMM without an `N × N` float buffer.
const TILE_ROWS: usize = 64;

/// Which side of `H` a product uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// `H M`: hyperedge → vertex (output rows are vertices).
    H,
    /// `Hᵀ M`: vertex → hyperedge (output rows are hyperedges).
    Ht,
}

/// `out = diag(scale) · op(H) · m` with `m` and `out` row-major `[n, c]`.
pub fn apply<T: Real>(
    inc: &Incidence<T>,
    n: usize,
    side: Side,
    m: &[T],
    c: usize,
    scale: &[T],
    out: &mut [T],
) {
    match inc {
        Incidence::Dense { h } => {
            let op = if side == Side::H { Op::N } else { Op::T };
            gemm(out, (n, n, c), h, op, m, Op::N, T::one(), false, true);
            scale_rows(out, c, scale);
        }
        Incidence::Bitmask { h, ht } => {
            let bits = match (side, ht) {
                (Side::H, _) | (Side::Ht, None) => h,
                (Side::Ht, Some(t)) => t,
            };
            bitmask_product(bits, m, c, scale, out);
        }
        Incidence::Csr { by_vertex, by_edge } => {
            let rows = if side == Side::H { by_vertex } else { by_edge };
            csr_product(rows, m, c, scale, out, None);
        }
        Incidence::Complement { by_vertex, by_edge } => {
            let rows = if side == Side::H { by_vertex } else { by_edge };
            let col_sum = column_sums(m, c);
            csr_product(rows, m, c, scale, out, Some(&col_sum));
        }
    }
}

/// `op(H) v` for a vector `v` of length `n`.
pub fn matvec<T: Real>(inc: &Incidence<T>, n: usize, side: Side, v: &[T]) -> Vec<T> {
    let ones = vec![T::one(); n];
    let mut out = vec![T::zero(); n];
    match inc {
        Incidence::Dense { h } => {
            for (i, o) in out.iter_mut().enumerate() {
                *o = match side {
                    Side::H => (0..n).map(|e| h[i * n + e] * v[e]).sum(),
                    Side::Ht => (0..n).map(|r| h[r * n + i] * v[r]).sum(),
                };
            }
        }
        _ => apply(inc, n, side, v, 1, &ones, &mut out),
    }
    out
}

fn scale_rows<T: Real>(out: &mut [T], c: usize, scale: &[T]) {
    out.par_chunks_mut(c.max(1))
        .zip(scale.par_iter())
        .for_each(|(row, &s)| {
            row.iter_mut().for_each(|x| *x *= s);
        });
}

fn column_sums<T: Real>(m: &[T], c: usize) -> Vec<T> {
    let mut sum = vec![T::zero(); c];
    for row in m.chunks(c.max(1)) {
        for (s, &x) in sum.iter_mut().zip(row) {
            *s += x;
        }
    }
    sum
}

/// Row `r` of the output is `scale_r (Σ_{j ∈ row r} m_j)`, or with `ones_minus`,
/// `scale_r (1ᵀm − Σ_{j ∈ row r} m_j)` (the complement identity).
fn csr_product<T: Real>(
    rows: &Csr,
    m: &[T],
    c: usize,
    scale: &[T],
    out: &mut [T],
    ones_minus: Option<&[T]>,
) {
    if c == 0 {
        return;
    }
    out.par_chunks_mut(c).enumerate().for_each(|(r, o)| {
        o.fill(T::zero());
        for &j in rows.row(r) {
            let src = &m[j as usize * c..(j as usize + 1) * c];
            for (x, &y) in o.iter_mut().zip(src) {
                *x += y;
            }
        }
        let s = scale[r];
        match ones_minus {
            Some(sum) => o.iter_mut().zip(sum).for_each(|(x, &t)| *x = (t - *x) * s),
            None => o.iter_mut().for_each(|x| *x *= s),
        }
    });
}

/// `out = diag(scale) · B · m` for a bit matrix `B`, expanding `TILE_ROWS` rows at a time
/// into a float tile and multiplying it with a dense GEMM.
fn bitmask_product<T: Real>(bits: &Bitmask, m: &[T], c: usize, scale: &[T], out: &mut [T]) {
    let n_cols = bits.n_cols();
    if c == 0 {
        return;
    }
    out.par_chunks_mut(TILE_ROWS * c)
        .enumerate()
        .for_each(|(t, o)| {
            let r0 = t * TILE_ROWS;
            let rows = o.len() / c;
            let mut tile = vec![T::zero(); rows * n_cols];
            for r in 0..rows {
                let dst = &mut tile[r * n_cols..(r + 1) * n_cols];
                for j in bits.iter_row(r0 + r) {
                    dst[j] = T::one();
                }
            }
            gemm(
                o,
                (rows, n_cols, c),
                &tile,
                Op::N,
                m,
                Op::N,
                T::one(),
                false,
                false,
            );
            for (r, row) in o.chunks_mut(c).enumerate() {
                let s = scale[r0 + r];
                row.iter_mut().for_each(|x| *x *= s);
            }
        });
}
