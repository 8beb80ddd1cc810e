//! Kernel launches with checked shapes: each function validates its buffers against the
//! shapes it is given, computes the grid, launches, and returns new buffers.
//!
//! Shapes follow the CPU path: `b` images, `n` vertices (= hyperedges) each, `d` features.

pub mod csr;
pub mod incidence;
pub mod norm;
pub mod soft;
pub mod spmm;

use super::device::{DeviceBuffer, Elem};
use crate::error::{Error, Result};

/// `[b, n, d]`, all at least 1, with every count the kernels index fitting in u32.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    pub b: usize,
    pub n: usize,
    pub d: usize,
}

impl Shape {
    pub fn new(b: usize, n: usize, d: usize) -> Result<Self> {
        for (arg, v) in [("batch size B", b), ("vertices N", n), ("features D", d)] {
            if v == 0 {
                return Err(Error::invalid(arg, "at least 1", v));
            }
        }
        if b.checked_mul(n)
            .and_then(|x| x.checked_mul(n.max(d)))
            .is_none_or(|x| x > u32::MAX as usize)
            || n > 65_535 * 64
        {
            return Err(Error::invalid(
                "shape",
                "B·N·max(N, D) < 2^32",
                format!("[{b}, {n}, {d}]"),
            ));
        }
        Ok(Shape { b, n, d })
    }

    /// Elements of a `[b, n, d]` tensor.
    pub fn features(&self) -> usize {
        self.b * self.n * self.d
    }

    /// u32 words of one image's incidence bitmask row: `2·ceil(n/64)`.
    pub fn words(&self) -> usize {
        2 * self.n.div_ceil(64)
    }

    /// u32 words of the whole `[b, n, words]` bitmask.
    pub fn mask_len(&self) -> usize {
        self.b * self.n * self.words()
    }
}

pub(crate) fn check_len<T: Elem>(arg: &str, buf: &DeviceBuffer<T>, want: usize) -> Result<()> {
    if buf.len() != want {
        return Err(Error::shape(
            arg,
            format!("{want} elements of {}", T::DTYPE),
            buf.len(),
        ));
    }
    Ok(())
}

pub(crate) fn check_opt<T: Elem>(
    arg: &str,
    buf: Option<&DeviceBuffer<T>>,
    want: usize,
) -> Result<()> {
    buf.map_or(Ok(()), |b| check_len(arg, b, want))
}

pub(crate) fn blocks(items: usize, per_block: usize) -> u64 {
    items.div_ceil(per_block) as u64
}
