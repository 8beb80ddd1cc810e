//! `cuda_fwd` of the candle ops (feature `candle-cuda`): candle's CUDA storage seen as
//! [`DeviceBuffer`]s on candle's own stream and cuBLAS handle, the forwards of
//! [`super::device`], and the results handed back as candle storage of the same memory.
//!
//! f32 inputs laid out contiguously are read in place; strided f32 inputs get one contiguous
//! copy on the GPU (candle's strided copy), bf16/f16 inputs one cast to f32 (candle's cast
//! kernel), and bf16/f16 results one cast back. Nothing goes through the host but the scalars
//! the device checks read back.

// LIMITATION: only the forwards run on the GPU. The ops' backward on CUDA tensors copies the
// inputs and the gradient to the host, recomputes the forward there (no context is saved on
// the GPU) and uploads the gradients; device backwards (`cuda::conv_backward_device`, plus
// kernels for dweights and dH) called from `bwd` would lift it. Because the backward rebuilds
// the hypergraph on the CPU, a near tie in a kNN or top-k selection (similarities equal to
// within f32 rounding, which the two sides compute in different orders) can pick other
// members than the GPU forward did: the gradient then belongs to a slightly different
// structure. The same device backwards, reusing the forward's hypergraph, would lift it too.
// LIMITATION: f64 CUDA tensors are refused (the kernels compute in f32), and bf16/f16 are cast
// to f32 before the f32 kernels, matching the CPU op, rather than using the bf16/f16
// tensor-core kernels; a dtype switch in `F32Storage` and `build_on_device::<T>` would use them.
// LIMITATION: a borrowed input records its read event before our kernels are queued; correct
// on candle's single stream per device, not if candle ever uses several streams per device.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::driver::DevicePtr;
use candle_core::cuda_backend::{CudaDevice, CudaStorage, DeviceId};
use candle_core::{DType, Layout};

use super::device::{hypergraph_conv_forward, incidence_forward, ConvInputs};
use super::host;
use crate::cuda::ops::Shape;
use crate::cuda::{Device, DeviceBuffer};
use crate::error::Error;
use crate::hypergraph::HypergraphConfig;

/// Our kernels on candle's stream and cuBLAS handle, loaded once per candle device.
fn device(dev: &CudaDevice) -> candle_core::Result<Device> {
    static DEVICES: OnceLock<Mutex<HashMap<DeviceId, Device>>> = OnceLock::new();
    let mut devices = DEVICES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(d) = devices.get(&dev.id()) {
        return Ok(d.clone());
    }
    let d = Device::on_stream(dev.cuda_stream(), dev.cublas_handle()).map_err(host::wrap)?;
    devices.insert(dev.id(), d.clone());
    Ok(d)
}

/// An input as contiguous f32 on the GPU: candle's own storage, or a converted copy.
enum F32Storage<'a> {
    InPlace {
        storage: &'a CudaStorage,
        start: usize,
    },
    Copy(CudaStorage),
}

impl F32Storage<'_> {
    /// Reads `arg` (`s` under `l`) as contiguous f32 on the GPU.
    fn new<'a>(arg: &str, s: &'a CudaStorage, l: &Layout) -> candle_core::Result<F32Storage<'a>> {
        match (s.dtype(), l.contiguous_offsets()) {
            (DType::F32, Some((start, _))) => Ok(F32Storage::InPlace { storage: s, start }),
            (DType::F32, None) => {
                let out = s.device.alloc_zeros::<f32>(l.shape().elem_count())?;
                let mut out = CudaStorage::wrap_cuda_slice(out, s.device.clone());
                s.copy_strided_src(&mut out, 0, l)?;
                Ok(F32Storage::Copy(out))
            }
            (DType::BF16 | DType::F16, _) => Ok(F32Storage::Copy(s.to_dtype(l, DType::F32)?)),
            (other, _) => Err(host::wrap(Error::invalid(
                arg,
                "a CUDA tensor of dtype f32, bf16 or f16 (the kernels compute in f32; f64 \
                 tensors run on Device::Cpu)",
                format!("{other:?}"),
            ))),
        }
    }

    /// `len` elements from the start, borrowed as a read-only buffer of `dev`; the buffer
    /// must not outlive `self` (the lifetime ties it).
    fn view<'s>(&'s self, dev: &Device, len: usize) -> candle_core::Result<View<'s>> {
        let (storage, start) = match self {
            F32Storage::InPlace { storage, start } => (*storage, *start),
            F32Storage::Copy(storage) => (storage, 0),
        };
        let slice = storage.as_cuda_slice::<f32>()?;
        if start + len > slice.len() {
            candle_core::bail!("hipl: a CUDA input holds fewer elements than its layout");
        }
        let stream = storage.device.cuda_stream();
        let view = slice.slice(start..start + len);
        let (ptr, _read) = view.device_ptr(&stream);
        // SAFETY: `ptr` addresses `len` f32 of candle's storage, which `self` keeps alive for
        // the view's lifetime; every launch reading it queues on candle's stream (the one
        // `dev` was made for), after the work that wrote it and before any later reuse.
        let buf = unsafe { dev.borrow_cuda::<f32>(ptr, len) }.map_err(host::wrap)?;
        Ok(View {
            buf,
            _src: std::marker::PhantomData,
        })
    }
}

/// A borrowed input buffer tied to the storage it views.
struct View<'s> {
    buf: DeviceBuffer<f32>,
    _src: std::marker::PhantomData<&'s CudaStorage>,
}

/// A result of `dev` as candle storage (the same memory) of `dtype`, cast on the GPU if it is
/// not f32.
fn output(
    dev: &Device,
    candle: &CudaDevice,
    buf: DeviceBuffer<f32>,
    dims: &[usize],
    dtype: DType,
) -> candle_core::Result<CudaStorage> {
    let slice = dev.into_cuda_slice(buf).map_err(host::wrap)?;
    let storage = CudaStorage::wrap_cuda_slice(slice, candle.clone());
    match dtype {
        DType::F32 => Ok(storage),
        _ => storage.to_dtype(&Layout::contiguous(dims), dtype),
    }
}

fn shape3(l: &Layout) -> candle_core::Result<(usize, usize, usize)> {
    let d = host::dims_of("features", l.shape(), 3, "3 dimensions [B, N, D]")?;
    Ok((d[0], d[1], d[2]))
}

/// `cuda_fwd` of the incidence op.
pub(crate) fn incidence(
    cfg: &HypergraphConfig,
    s: &CudaStorage,
    l: &Layout,
) -> candle_core::Result<(CudaStorage, candle_core::Shape)> {
    let (b, n, d) = shape3(l)?;
    let dev = device(&s.device)?;
    let shape = Shape::new(b, n, d).map_err(host::wrap)?;
    let f = F32Storage::new("features", s, l)?;
    let fv = f.view(&dev, b * n * d)?;
    let h = incidence_forward(&dev, &fv.buf, shape, cfg).map_err(host::wrap)?;
    let out = output(&dev, &s.device, h, &[b, n, n], s.dtype())?;
    Ok((out, candle_core::Shape::from((b, n, n))))
}

/// `cuda_fwd` of the convolution op: `fx` is `[B, N, D]`, or `[B, N, D + Dx]` with
/// `x_channels = Some(Dx)` (features and `X` side by side).
#[allow(clippy::too_many_arguments)]
pub(crate) fn hypergraph_conv(
    cfg: &HypergraphConfig,
    x_channels: Option<usize>,
    s1: &CudaStorage,
    l1: &Layout,
    s2: &CudaStorage,
    l2: &Layout,
    s3: &CudaStorage,
    l3: &Layout,
) -> candle_core::Result<(CudaStorage, candle_core::Shape)> {
    let (b, n, d_total) = shape3(l1)?;
    let td = host::dims_of("theta", l2.shape(), 2, "2 dimensions [D, C]")?;
    let (rows, c) = (td[0], td[1]);
    if l3.dims() != [b, n] {
        let expected = format!("[{b}, {n}] (B and N of the features)");
        return Err(host::wrap(Error::shape("weights", expected, l3.dims())));
    }
    let dx = x_channels.unwrap_or(0);
    let d = d_total.checked_sub(dx).filter(|&d| d > 0).ok_or_else(|| {
        host::wrap(Error::shape(
            "features",
            format!("[{b}, {n}, D + {dx}] with D >= 1"),
            l1.dims(),
        ))
    })?;
    let dev = device(&s1.device)?;
    let shape = Shape::new(b, n, d).map_err(host::wrap)?;
    // The features and X are the two halves of the last axis: strided layouts, each copied
    // to a contiguous f32 buffer on the GPU.
    let (f, x) = match x_channels {
        Some(dx) => (
            F32Storage::new("features", s1, &l1.narrow(2, 0, d)?)?,
            Some(F32Storage::new("x", s1, &l1.narrow(2, d, dx)?)?),
        ),
        None => (F32Storage::new("features", s1, l1)?, None),
    };
    let theta = F32Storage::new("theta", s2, l2)?;
    let w = F32Storage::new("weights", s3, l3)?;
    let fv = f.view(&dev, b * n * d)?;
    let xv = x.as_ref().map(|x| x.view(&dev, b * n * dx)).transpose()?;
    let tv = theta.view(&dev, rows * c)?;
    let wv = w.view(&dev, b * n)?;
    let inputs = ConvInputs {
        features: &fv.buf,
        x: xv.as_ref().map(|v| (&v.buf, dx)),
        theta: (&tv.buf, rows, c),
        weights: &wv.buf,
    };
    let y = hypergraph_conv_forward(&dev, &inputs, shape, cfg).map_err(host::wrap)?;
    let out = output(&dev, &s1.device, y, &[b, n, c], s1.dtype())?;
    Ok((out, candle_core::Shape::from((b, n, c))))
}
