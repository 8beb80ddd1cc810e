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

/// A row-major `[rows, cols]` block of a larger row-major matrix: element `(i, j)` is
/// `data[i * stride + j]`, so `stride >= cols` (a column block of a wider matrix).
#[derive(Clone, Copy, Debug)]
pub struct Block<'a, T> {
    pub data: &'a [T],
    pub rows: usize,
    pub cols: usize,
    pub stride: usize,
}

impl<'a, T: Real> Block<'a, T> {
    fn view(self, op: Op) -> MatRef<'a, T> {
        let len = if self.rows == 0 {
            0
        } else {
            (self.rows - 1) * self.stride + self.cols
        };
        let m = MatRef::from_row_major_slice_with_stride(
            &self.data[..len],
            self.rows,
            self.cols,
            self.stride,
        );
        match op {
            Op::N => m,
            Op::T => m.transpose(),
        }
    }
}

/// [`gemm`] on blocks: `c += op(a) · op(b)` (or `c = …` without `accumulate`), `c` a
/// `[m, n]` block of a row-major matrix with row stride `c_stride`. Shapes are the caller's
/// invariant (checked in debug builds).
pub fn gemm_blocks<T: Real>(
    c: &mut [T],
    (m, n, c_stride): (usize, usize, usize),
    a: Block<'_, T>,
    op_a: Op,
    b: Block<'_, T>,
    op_b: Op,
    accumulate: bool,
) {
    let lhs = a.view(op_a);
    let rhs = b.view(op_b);
    debug_assert!(lhs.nrows() == m && rhs.ncols() == n && lhs.ncols() == rhs.nrows());
    if m == 0 || n == 0 {
        return;
    }
    let len = (m - 1) * c_stride + n;
    // The transpose of a column-major view: faer 0.24.4's
    // `from_row_major_slice_with_stride_mut` swaps the two strides.
    let dst = MatMut::from_column_major_slice_with_stride_mut(&mut c[..len], n, m, c_stride)
        .transpose_mut();
    let accum = if accumulate {
        Accum::Add
    } else {
        Accum::Replace
    };
    if lhs.ncols() == 0 {
        if !accumulate {
            for i in 0..m {
                c[i * c_stride..i * c_stride + n].fill(T::zero());
            }
        }
        return;
    }
    faer::linalg::matmul::matmul(dst, accum, lhs, rhs, T::one(), Par::rayon(0));
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

    #[test]
    fn gemm_blocks_accumulates_into_a_column_block_of_a_wider_matrix() {
        // c[:, 1..3] += a[:, 2..4] · bᵀ, inside a [2, 4] c.
        let a: Vec<f64> = (0..2 * 5).map(|i| i as f64 - 3.0).collect();
        let b: Vec<f64> = (0..2 * 2).map(|i| (i as f64).cos()).collect();
        let mut c = [1.0; 2 * 4];
        fn blk(data: &[f64], rows: usize, cols: usize, stride: usize) -> Block<'_, f64> {
            Block {
                data,
                rows,
                cols,
                stride,
            }
        }
        gemm_blocks(
            &mut c[1..],
            (2, 2, 4),
            blk(&a[2..], 2, 2, 5),
            Op::N,
            blk(&b, 2, 2, 2),
            Op::T,
            true,
        );
        for i in 0..2 {
            for j in 0..4 {
                let want = if (1..3).contains(&j) {
                    1.0 + (0..2)
                        .map(|p| a[i * 5 + 2 + p] * b[(j - 1) * 2 + p])
                        .sum::<f64>()
                } else {
                    1.0
                };
                assert!((c[i * 4 + j] - want).abs() < 1e-12, "c[{i}, {j}]");
            }
        }
    }
}
