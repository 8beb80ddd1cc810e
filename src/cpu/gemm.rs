//! Dense matrix products on row-major slices, through `faer`.

use crate::real::Real;
use faer::{Accum, MatMut, MatRef, Par};

/// Whether an operand is used as stored or transposed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// Use the matrix as stored.
    N,
    /// Use its transpose.
    T,
}

/// Views a row-major `[rows, cols]` slice, transposed when `op` is `T`.
fn view<T: Real>(a: &[T], rows: usize, cols: usize, op: Op) -> MatRef<'_, T> {
    let m = MatRef::from_row_major_slice(&a[..rows * cols], rows, cols);
    match op {
        Op::N => m,
        Op::T => m.transpose(),
    }
}

/// `c = beta·c + op(a) · op(b)` for row-major operands, where `op(a)` is `[m, k]`,
/// `op(b)` is `[k, n]` and `c` is `[m, n]`; `accumulate` picks `beta = 1` over `beta = 0`.
///
/// `a` is stored `[m, k]` for `Op::N` and `[k, m]` for `Op::T` (likewise `b`).
#[allow(clippy::too_many_arguments)]
pub fn gemm<T: Real>(
    c: &mut [T],
    (m, k, n): (usize, usize, usize),
    a: &[T],
    op_a: Op,
    b: &[T],
    op_b: Op,
    alpha: T,
    accumulate: bool,
    parallel: bool,
) {
    let (ar, ac) = if op_a == Op::N { (m, k) } else { (k, m) };
    let (br, bc) = if op_b == Op::N { (k, n) } else { (n, k) };
    let lhs = view(a, ar, ac, op_a);
    let rhs = view(b, br, bc, op_b);
    let dst = MatMut::from_row_major_slice_mut(&mut c[..m * n], m, n);
    let accum = if accumulate {
        Accum::Add
    } else {
        Accum::Replace
    };
    let par = if parallel { Par::rayon(0) } else { Par::Seq };
    if k == 0 {
        if !accumulate {
            c[..m * n].fill(T::zero());
        }
        return;
    }
    faer::linalg::matmul::matmul(dst, accum, lhs, rhs, alpha, par);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gemm_matches_naive_product_for_each_transpose() {
        let (m, k, n) = (3, 4, 5);
        let a: Vec<f64> = (0..m * k).map(|i| i as f64 * 0.5 - 1.0).collect();
        let b: Vec<f64> = (0..k * n).map(|i| (i as f64).sin()).collect();
        let mut want = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                want[i * n + j] = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
            }
        }
        let at: Vec<f64> = (0..k * m).map(|i| a[(i % m) * k + i / m]).collect();
        let bt: Vec<f64> = (0..n * k).map(|i| b[(i % k) * n + i / k]).collect();
        for (aa, oa) in [(&a, Op::N), (&at, Op::T)] {
            for (bb, ob) in [(&b, Op::N), (&bt, Op::T)] {
                let mut c = vec![0.0; m * n];
                gemm(&mut c, (m, k, n), aa, oa, bb, ob, 1.0, false, false);
                for (x, y) in c.iter().zip(&want) {
                    assert!((x - y).abs() < 1e-12);
                }
            }
        }
    }
}
