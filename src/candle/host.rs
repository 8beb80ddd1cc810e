//! Moving tensor data between candle and the CPU path: which element type an op computes
//! in, strided reads of candle storage, and bf16/f16 conversions.
//!
//! The CPU path runs in f32 or f64. f32 and f64 tensors are used as they are (borrowed
//! when contiguous); bf16 and f16 tensors are widened to f32 on the way in and rounded back
//! on the way out, so those ops pay one conversion pass per input and output.

use crate::error::Error;
use crate::real::Real;
use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, DType, Device, Layout, Shape, Tensor, WithDType};
use half::{bf16, f16};
use std::any::Any;
use std::borrow::Cow;
use std::sync::Mutex;

/// An element type the CPU path computes in (f32 or f64) that candle also knows.
pub(crate) trait Compute: Real + WithDType {}

impl Compute for f32 {}
impl Compute for f64 {}

/// Turns a `hipl::Error` into a candle error, keeping its message.
pub(crate) fn wrap(e: Error) -> candle_core::Error {
    candle_core::Error::wrap(e)
}

/// Whether tensors of `dtype` can go through the hypergraph ops.
fn supported(dtype: DType) -> bool {
    matches!(dtype, DType::F32 | DType::F64 | DType::BF16 | DType::F16)
}

/// Checks that every `(name, dtype)` is a float type the ops take and that all agree with
/// the first; returns that dtype.
pub(crate) fn common_dtype(args: &[(&str, DType)]) -> candle_core::Result<DType> {
    let (first_name, first) = args[0];
    if !supported(first) {
        return Err(wrap(Error::invalid(
            first_name,
            "a tensor of dtype f32, f64, bf16 or f16",
            format!("{first:?}"),
        )));
    }
    for &(name, dtype) in &args[1..] {
        if dtype != first {
            return Err(wrap(Error::invalid(
                name,
                format!("dtype {first:?} (the dtype of `{first_name}`)"),
                format!("{dtype:?}"),
            )));
        }
    }
    Ok(first)
}

/// Checks that `arg` has `rank` dimensions; returns them.
pub(crate) fn dims_of<'a>(
    arg: &str,
    shape: &'a Shape,
    rank: usize,
    expected: &str,
) -> candle_core::Result<&'a [usize]> {
    let dims = shape.dims();
    if dims.len() != rank {
        return Err(wrap(Error::shape(arg, expected, dims)));
    }
    Ok(dims)
}

/// Elements of `data` under `layout`, row-major: a borrow when the layout is contiguous
/// (any start offset), a gathered copy otherwise (transposed, narrowed, broadcast).
fn gather<'a, E: Copy>(data: &'a [E], layout: &Layout) -> Cow<'a, [E]> {
    if let Some((start, end)) = layout.contiguous_offsets() {
        return Cow::Borrowed(&data[start..end]);
    }
    let (dims, stride) = (layout.dims(), layout.stride());
    let count = layout.shape().elem_count();
    let mut out = Vec::with_capacity(count);
    if count == 0 {
        return Cow::Owned(out);
    }
    let mut index = vec![0usize; dims.len()];
    let mut offset = layout.start_offset();
    loop {
        out.push(data[offset]);
        // Odometer step over the multi-index, last dimension fastest.
        let mut k = dims.len();
        loop {
            if k == 0 {
                return Cow::Owned(out);
            }
            k -= 1;
            index[k] += 1;
            offset += stride[k];
            if index[k] < dims[k] {
                break;
            }
            offset -= index[k] * stride[k];
            index[k] = 0;
        }
    }
}

/// Reads `arg` from candle storage as `T`, row-major. Storage already holding `T` is
/// borrowed when contiguous; bf16/f16 are widened (only to `f32`).
pub(crate) fn read<'a, T: Compute>(
    arg: &str,
    storage: &'a CpuStorage,
    layout: &Layout,
) -> candle_core::Result<Cow<'a, [T]>> {
    if storage.dtype() == T::DTYPE {
        return Ok(gather(T::cpu_storage_as_slice(storage)?, layout));
    }
    let widened: Vec<T> = match (storage, T::DTYPE) {
        (CpuStorage::BF16(v), DType::F32) => gather(v, layout)
            .iter()
            .map(|x| T::of(x.to_f64()))
            .collect(),
        (CpuStorage::F16(v), DType::F32) => gather(v, layout)
            .iter()
            .map(|x| T::of(x.to_f64()))
            .collect(),
        _ => {
            return Err(wrap(Error::invalid(
                arg,
                format!(
                    "a tensor of dtype f32, f64, bf16 or f16 matching {:?}",
                    T::DTYPE
                ),
                format!("{:?}", storage.dtype()),
            )))
        }
    };
    Ok(Cow::Owned(widened))
}

/// Stores `values` (computed in `T`) as candle storage of `dtype`, rounding to bf16/f16
/// when asked.
pub(crate) fn write<T: Compute>(values: Vec<T>, dtype: DType) -> candle_core::Result<CpuStorage> {
    Ok(match dtype {
        d if d == T::DTYPE => T::to_cpu_storage_owned(values),
        DType::BF16 => CpuStorage::BF16(values.iter().map(|x| bf16::from_f64(x.to64())).collect()),
        DType::F16 => CpuStorage::F16(values.iter().map(|x| f16::from_f64(x.to64())).collect()),
        other => candle_core::bail!("hipl: cannot store {:?} results as {other:?}", T::DTYPE),
    })
}

/// The elements of an owned ndarray, row-major, without a copy when it is already laid out
/// that way from the start of its buffer.
pub(crate) fn into_vec<T: Copy, D: ndarray::Dimension>(a: ndarray::Array<T, D>) -> Vec<T> {
    if !a.is_standard_layout() {
        return a.iter().copied().collect();
    }
    let len = a.len();
    let (mut v, offset) = a.into_raw_vec_and_offset();
    let offset = offset.unwrap_or(0);
    if offset == 0 && v.len() == len {
        v
    } else {
        v.drain(offset..offset + len).collect()
    }
}

/// A tensor's elements on the host as `T`, row-major, whatever its layout or device.
pub(crate) fn host<T: Compute>(t: &Tensor) -> candle_core::Result<Vec<T>> {
    t.to_dtype(T::DTYPE)?.flatten_all()?.to_vec1::<T>()
}

/// A tensor of `shape` and `dtype` on `device` from values computed in `T`.
pub(crate) fn tensor<T: Compute>(
    values: Vec<T>,
    shape: impl Into<Shape>,
    dtype: DType,
    device: &Device,
) -> candle_core::Result<Tensor> {
    Tensor::from_vec(values, shape, device)?.to_dtype(dtype)
}

/// Calls `$body` with `$t` bound to the type the CPU path computes in for `$dtype`: f64 for
/// f64, f32 for f32, bf16 and f16.
macro_rules! dispatch {
    ($dtype:expr, $t:ident => $body:expr) => {
        match $dtype {
            candle_core::DType::F64 => {
                type $t = f64;
                $body
            }
            _ => {
                type $t = f32;
                $body
            }
        }
    };
}
pub(crate) use dispatch;

/// What a forward saved for its backward, in whichever element type it computed in. The
/// backward falls back to recomputing the forward when nothing (or another type) is here.
#[derive(Default)]
pub(crate) struct Saved(Mutex<Option<Box<dyn Any + Send + Sync>>>);

impl Saved {
    pub(crate) fn put<C: Any + Send + Sync>(&self, ctx: C) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(Box::new(ctx));
    }

    /// Runs `f` on the saved context if there is one of type `C`.
    pub(crate) fn with<C: Any, R>(&self, f: impl FnOnce(Option<&C>) -> R) -> R {
        let guard = self.0.lock().unwrap_or_else(|p| p.into_inner());
        f(guard.as_ref().and_then(|b| (**b).downcast_ref::<C>()))
    }
}

/// The error a CUDA tensor gets from the hypergraph ops in a build without `candle-cuda`
/// (candle-core's `cuda` enabled by another crate of the build).
#[cfg(not(feature = "candle-cuda"))]
pub(crate) fn no_cuda(op: &str) -> candle_core::Error {
    candle_core::Error::Cuda(
        format!(
            "hipl op `{op}` has no CUDA path in this build: enable hipl's feature `candle-cuda` \
             (instead of `cuda`), or move the tensors to Device::Cpu"
        )
        .into(),
    )
}
