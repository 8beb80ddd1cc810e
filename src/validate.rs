//! Input checks shared by the ops: shapes, finiteness, contiguous views.

use crate::error::{Error, Result};
use crate::real::Real;
use ndarray::{ArrayBase, CowArray, Data, Dimension};
use rayon::prelude::*;

/// A standard-layout (row-major, contiguous) view, copying only when the input is not.
pub fn contiguous<'a, T: Real, D: Dimension>(
    a: &'a ArrayBase<impl Data<Elem = T>, D>,
) -> CowArray<'a, T, D> {
    a.as_standard_layout()
}

/// The elements of a standard-layout array, row-major.
pub fn flat<'a, T, D: Dimension>(a: &'a CowArray<'_, T, D>) -> &'a [T] {
    a.as_slice()
        .expect("as_standard_layout gives a contiguous array")
}

/// Fails on the first NaN or infinity of `arg`, naming its multi-index.
pub fn check_finite<T: Real>(arg: &str, values: &[T], shape: &[usize]) -> Result<()> {
    // `x − x` is 0 for a finite x and NaN otherwise: sums of it over independent lanes
    // screen whole blocks with vector code; only a failing block is searched.
    const LANES: usize = 16;
    let block_ok = |block: &[T]| {
        let mut acc = [T::zero(); LANES];
        let mut chunks = block.chunks_exact(LANES);
        for chunk in &mut chunks {
            for (a, &x) in acc.iter_mut().zip(chunk) {
                #[allow(clippy::eq_op)] // x − x is the finiteness test above
                {
                    *a += x - x;
                }
            }
        }
        let tail = chunks.remainder().iter().all(|v| v.is_finite());
        tail && acc.iter().all(|a| *a == T::zero())
    };
    let first_bad = values
        .par_chunks(1 << 14)
        .position_first(|block| !block_ok(block))
        .and_then(|blk| {
            let start = blk << 14;
            values[start..]
                .iter()
                .position(|v| !v.is_finite())
                .map(|p| start + p)
        });
    if let Some(pos) = first_bad {
        let mut index = Vec::with_capacity(shape.len());
        let mut rest = pos;
        for &dim in shape.iter().rev() {
            index.push(rest % dim.max(1));
            rest /= dim.max(1);
        }
        index.reverse();
        return Err(Error::NonFinite {
            arg: arg.into(),
            index: format!("{index:?}"),
            value: values[pos].to64(),
        });
    }
    Ok(())
}

/// Fails when a computed result of finite inputs is not finite (an overflow in `T`),
/// blaming the inputs `blame` and naming where in `what` it happened.
pub fn check_result<T: Real>(what: &str, blame: &str, values: &[T], shape: &[usize]) -> Result<()> {
    check_finite(what, values, shape).map_err(|e| match e {
        Error::NonFinite { index, value, .. } => Error::invalid(
            blame,
            format!("values whose {what} stays finite in this float type (scale them down)"),
            format!("an overflow to {value} in {what} at {index}"),
        ),
        e => e,
    })
}

/// Checks a `[B, N, D]` features tensor: `B >= 1`, `N >= 2`, `D >= 1`.
pub fn check_features_shape(arg: &str, shape: &[usize]) -> Result<(usize, usize, usize)> {
    let &[b, n, d] = shape else {
        return Err(Error::shape(arg, "3 dimensions [B, N, D]", shape));
    };
    if b == 0 {
        return Err(Error::shape(arg, "a non-empty batch (B >= 1)", shape));
    }
    if n < 2 {
        return Err(Error::shape(arg, "at least 2 vertices (N >= 2)", shape));
    }
    if d == 0 {
        return Err(Error::shape(arg, "at least 1 channel (D >= 1)", shape));
    }
    Ok((b, n, d))
}

/// Checks that `arg` has exactly `expected` as its shape.
pub fn check_shape(arg: &str, shape: &[usize], expected: &[usize]) -> Result<()> {
    if shape != expected {
        return Err(Error::shape(arg, format!("{expected:?}"), shape));
    }
    Ok(())
}
