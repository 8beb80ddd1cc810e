//! Devices, typed device buffers and the launch description shared by both backends.

use std::marker::PhantomData;
#[cfg(feature = "cuda-kernels")]
use std::sync::Arc;

use super::emu::EmuAlloc;
use crate::error::{Error, Result};

/// An element type that kernels read or write: plain data, no padding, any bit pattern valid.
pub trait Elem: Copy + Default + Send + Sync + 'static + private::Sealed {
    /// The kernel-name suffix of this type (`f32`, `bf16`, `f16`, `u32`).
    const DTYPE: &'static str;
}

mod private {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for u32 {}
    impl Sealed for half::bf16 {}
    impl Sealed for half::f16 {}
}

impl Elem for f32 {
    const DTYPE: &'static str = "f32";
}
impl Elem for u32 {
    const DTYPE: &'static str = "u32";
}
impl Elem for half::bf16 {
    const DTYPE: &'static str = "bf16";
}
impl Elem for half::f16 {
    const DTYPE: &'static str = "f16";
}

/// A floating-point element type of features (`f32`, `bf16`, `f16`); kernels accumulate in f32.
pub trait Float: Elem {}
impl Float for f32 {}
impl Float for half::bf16 {}
impl Float for half::f16 {}

/// Untyped device memory of one backend.
pub(crate) enum RawBuffer {
    Emu(EmuAlloc),
    #[cfg(feature = "cuda-kernels")]
    Cuda(cudarc::driver::CudaSlice<u8>),
    /// GPU memory owned elsewhere (a candle tensor): read-only, never freed here.
    #[cfg(feature = "cuda-kernels")]
    CudaBorrowed(super::driver::Borrowed),
}

impl RawBuffer {
    /// The GPU slice of an owned or borrowed GPU buffer.
    #[cfg(feature = "cuda-kernels")]
    fn cuda(&self) -> Option<&cudarc::driver::CudaSlice<u8>> {
        match self {
            RawBuffer::Cuda(s) => Some(s),
            RawBuffer::CudaBorrowed(b) => Some(b.slice()),
            RawBuffer::Emu(_) => None,
        }
    }
}

/// `len` elements of `T` in the memory of one [`Device`].
pub struct DeviceBuffer<T: Elem> {
    pub(crate) raw: RawBuffer,
    len: usize,
    _t: PhantomData<T>,
}

impl<T: Elem> DeviceBuffer<T> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl<T: Elem> std::fmt::Debug for DeviceBuffer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DeviceBuffer<{}>[{}]", T::DTYPE, self.len)
    }
}

/// Views a slice of plain elements as bytes.
pub(crate) fn as_bytes<T: Elem>(s: &[T]) -> &[u8] {
    // SAFETY: Elem is sealed to f32/u32/bf16/f16: no padding, every byte initialised; the
    // byte slice covers exactly the same memory and lifetime.
    unsafe { std::slice::from_raw_parts(s.as_ptr().cast::<u8>(), std::mem::size_of_val(s)) }
}

/// Grid, block and dynamic shared memory of one launch.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LaunchCfg {
    pub grid: (u32, u32, u32),
    pub block: (u32, u32, u32),
    pub smem: u32,
}

/// Most dynamic shared memory per block on the supported GPUs (sm_80: 163 KiB opt-in).
pub(crate) const MAX_DYN_SMEM: u32 = 160 * 1024;

impl LaunchCfg {
    /// A 1-D block of `threads` over a grid, checked against the hardware limits.
    pub fn new(op: &str, grid: (u64, u64, u64), threads: u32, smem: u32) -> Result<Self> {
        let bad = |what: &str| Error::Device {
            op: op.into(),
            msg: what.into(),
        };
        if grid.0 == 0 || grid.1 == 0 || grid.2 == 0 {
            return Err(bad("empty launch grid"));
        }
        if grid.0 > i32::MAX as u64 || grid.1 > 65_535 || grid.2 > 65_535 {
            return Err(bad(&format!(
                "grid {grid:?} exceeds (2^31-1, 65535, 65535)"
            )));
        }
        if threads == 0 || threads > 1024 {
            return Err(bad(&format!("block of {threads} threads")));
        }
        if smem > MAX_DYN_SMEM {
            return Err(bad(&format!(
                "{smem} bytes of dynamic shared memory > {MAX_DYN_SMEM}"
            )));
        }
        Ok(LaunchCfg {
            grid: (grid.0 as u32, grid.1 as u32, grid.2 as u32),
            block: (threads, 1, 1),
            smem,
        })
    }
}

/// One kernel argument, in the kernel's parameter order.
pub(crate) enum KArg<'a> {
    In(&'a RawBuffer),
    Out(&'a mut RawBuffer),
    /// A null pointer (an optional input left out).
    Null,
    U32(u32),
    F32(f32),
    U64(u64),
}

impl<'a> KArg<'a> {
    pub fn input<T: Elem>(b: &'a DeviceBuffer<T>) -> Self {
        KArg::In(&b.raw)
    }

    pub fn output<T: Elem>(b: &'a mut DeviceBuffer<T>) -> Self {
        KArg::Out(&mut b.raw)
    }

    pub fn optional<T: Elem>(b: Option<&'a DeviceBuffer<T>>) -> Self {
        b.map_or(KArg::Null, KArg::input)
    }
}

/// A row-major batched product `C[b] = op(A[b]) op(B[b])` (`C` is `m × n`, the inner size `k`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct GemmSpec {
    pub batch: usize,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    /// `A` is stored `k × m` (transposed) instead of `m × k`.
    pub trans_a: bool,
    /// `B` is stored `n × k` instead of `k × n`.
    pub trans_b: bool,
}

#[derive(Clone)]
enum Inner {
    Emu,
    #[cfg(feature = "cuda-kernels")]
    Cuda(Arc<super::driver::CudaBackend>),
}

/// Where kernels run: a CUDA GPU or the host emulator. Cheap to clone.
#[derive(Clone)]
pub struct Device {
    inner: Inner,
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Device({})", self.name())
    }
}

impl Device {
    /// The host emulator: runs the kernels on the calling CPU thread, one fiber per CUDA
    /// thread, checking barriers, warp collectives, bounds and shared-memory races. Slow:
    /// meant for tests and for debugging kernels.
    pub fn emulator() -> Device {
        Device { inner: Inner::Emu }
    }

    /// CUDA GPU `ordinal`, with the kernels loaded (cubin for its architecture, else PTX).
    #[cfg(feature = "cuda-kernels")]
    pub fn cuda(ordinal: usize) -> Result<Device> {
        let backend = super::driver::CudaBackend::new(ordinal)?;
        Ok(Device {
            inner: Inner::Cuda(Arc::new(backend)),
        })
    }

    /// The kernels on a stream and cuBLAS handle that someone else owns (candle's CUDA device):
    /// launches and products queue on `stream`, in order with its other work.
    #[cfg(feature = "cuda-kernels")]
    #[cfg_attr(not(feature = "candle-cuda"), allow(dead_code))]
    pub(crate) fn on_stream(
        stream: Arc<cudarc::driver::CudaStream>,
        blas: Arc<cudarc::cublas::CudaBlas>,
    ) -> Result<Device> {
        let backend = super::driver::CudaBackend::on_stream(stream, blas)?;
        Ok(Device {
            inner: Inner::Cuda(Arc::new(backend)),
        })
    }

    /// `len` elements of `T` at device address `ptr`, owned elsewhere, as a read-only buffer
    /// of this (GPU) device; dropping it does not free the memory.
    ///
    /// # Safety
    /// `ptr` must address at least `len` valid elements of `T` in this device's context,
    /// neither freed nor written by another stream while the buffer lives.
    #[cfg(feature = "cuda-kernels")]
    #[cfg_attr(not(feature = "candle-cuda"), allow(dead_code))]
    pub(crate) unsafe fn borrow_cuda<T: Elem>(
        &self,
        ptr: u64,
        len: usize,
    ) -> Result<DeviceBuffer<T>> {
        match &self.inner {
            // SAFETY: the caller's contract.
            Inner::Cuda(c) => Ok(DeviceBuffer {
                raw: RawBuffer::CudaBorrowed(unsafe {
                    c.borrow(ptr, len * std::mem::size_of::<T>())
                }),
                len,
                _t: PhantomData,
            }),
            Inner::Emu => Err(self.foreign("borrow")),
        }
    }

    /// A buffer this (GPU) device allocated, as a typed cudarc slice on its stream (same
    /// memory): how results become candle storage.
    #[cfg(feature = "cuda-kernels")]
    #[cfg_attr(not(feature = "candle-cuda"), allow(dead_code))]
    pub(crate) fn into_cuda_slice<T: Elem>(
        &self,
        buf: DeviceBuffer<T>,
    ) -> Result<cudarc::driver::CudaSlice<T>> {
        match (&self.inner, buf.raw) {
            (Inner::Cuda(c), RawBuffer::Cuda(s)) => c.into_typed(s, buf.len),
            _ => Err(self.foreign("into_cuda_slice")),
        }
    }

    /// The first CUDA GPU, or `None` — with one log line saying why — when this build lacks
    /// feature `cuda`, the CUDA driver library is missing, or there is no device. Callers then
    /// use the CPU path.
    pub fn cuda_if_available() -> Option<Device> {
        #[cfg(feature = "cuda-kernels")]
        {
            match super::driver::CudaBackend::probe() {
                Ok(()) => match Device::cuda(0) {
                    Ok(d) => return Some(d),
                    Err(e) => tracing::info!("no usable CUDA device ({e}); using the CPU path"),
                },
                Err(why) => tracing::info!("{why}; using the CPU path"),
            }
            None
        }
        #[cfg(not(feature = "cuda-kernels"))]
        {
            tracing::info!("built without feature `cuda`; using the CPU path");
            None
        }
    }

    /// A short description (`emulator`, or the GPU's name and compute capability).
    pub fn name(&self) -> String {
        match &self.inner {
            Inner::Emu => "emulator".to_string(),
            #[cfg(feature = "cuda-kernels")]
            Inner::Cuda(c) => c.name(),
        }
    }

    pub fn is_emulator(&self) -> bool {
        matches!(self.inner, Inner::Emu)
    }

    /// Copies `host` to a new buffer on this device.
    pub fn upload<T: Elem>(&self, host: &[T]) -> Result<DeviceBuffer<T>> {
        let raw = match &self.inner {
            Inner::Emu => RawBuffer::Emu(EmuAlloc::from_bytes(as_bytes(host))?),
            #[cfg(feature = "cuda-kernels")]
            Inner::Cuda(c) => RawBuffer::Cuda(c.upload(as_bytes(host))?),
        };
        Ok(DeviceBuffer {
            raw,
            len: host.len(),
            _t: PhantomData,
        })
    }

    /// A new buffer of `len` zero elements.
    pub fn zeros<T: Elem>(&self, len: usize) -> Result<DeviceBuffer<T>> {
        let bytes = len * std::mem::size_of::<T>();
        let raw = match &self.inner {
            Inner::Emu => RawBuffer::Emu(EmuAlloc::zeroed(bytes)?),
            #[cfg(feature = "cuda-kernels")]
            Inner::Cuda(c) => RawBuffer::Cuda(c.zeros(bytes)?),
        };
        Ok(DeviceBuffer {
            raw,
            len,
            _t: PhantomData,
        })
    }

    /// Copies a buffer back to the host (waits for the work queued before).
    pub fn download<T: Elem>(&self, buf: &DeviceBuffer<T>) -> Result<Vec<T>> {
        let mut out = vec![T::default(); buf.len];
        // SAFETY: as in `as_bytes`; every bit pattern is a valid T, so any bytes may be
        // written through this view, which covers exactly `out`.
        let bytes = unsafe {
            std::slice::from_raw_parts_mut(
                out.as_mut_ptr().cast::<u8>(),
                std::mem::size_of_val(out.as_slice()),
            )
        };
        match (&self.inner, &buf.raw) {
            (Inner::Emu, RawBuffer::Emu(a)) => a.copy_to(bytes),
            #[cfg(feature = "cuda-kernels")]
            (Inner::Cuda(c), raw) if raw.cuda().is_some() => {
                c.download(raw.cuda().expect("checked"), bytes)?
            }
            #[allow(unreachable_patterns)]
            _ => return Err(self.foreign("download")),
        }
        Ok(out)
    }

    fn foreign(&self, op: &str) -> Error {
        Error::Device {
            op: op.into(),
            msg: format!("buffer belongs to another device than {}", self.name()),
        }
    }

    /// Waits until all queued work on this device is done (a no-op in the emulator, which
    /// runs launches synchronously).
    pub fn synchronize(&self) -> Result<()> {
        match &self.inner {
            Inner::Emu => Ok(()),
            #[cfg(feature = "cuda-kernels")]
            Inner::Cuda(c) => c.synchronize(),
        }
    }

    /// Launches `kernel` (its `op_dtype` name) with `args` in parameter order.
    pub(crate) fn launch(
        &self,
        kernel: &str,
        cfg: &LaunchCfg,
        args: &mut [KArg<'_>],
    ) -> Result<()> {
        tracing::debug!(kernel, grid = ?cfg.grid, block = ?cfg.block, smem = cfg.smem, "launch");
        match &self.inner {
            Inner::Emu => super::emu::launch(kernel, cfg, args),
            #[cfg(feature = "cuda-kernels")]
            Inner::Cuda(c) => c.launch(kernel, cfg, args),
        }
    }

    /// `c = op(a) op(b)` batched, f32 (cuBLAS on a GPU; a plain loop in the emulator).
    pub(crate) fn gemm_f32(
        &self,
        spec: &GemmSpec,
        a: &DeviceBuffer<f32>,
        b: &DeviceBuffer<f32>,
        c: &mut DeviceBuffer<f32>,
    ) -> Result<()> {
        let need = |arg: &str, got: usize, want: usize| {
            if got < want {
                Err(Error::shape(arg, format!("at least {want} elements"), got))
            } else {
                Ok(())
            }
        };
        need("a", a.len, spec.batch * spec.m * spec.k)?;
        need("b", b.len, spec.batch * spec.k * spec.n)?;
        need("c", c.len, spec.batch * spec.m * spec.n)?;
        match (&self.inner, &a.raw, &b.raw, &mut c.raw) {
            (Inner::Emu, RawBuffer::Emu(a), RawBuffer::Emu(b), RawBuffer::Emu(c)) => {
                super::emu::gemm_f32(spec, a, b, c);
                Ok(())
            }
            #[cfg(feature = "cuda-kernels")]
            (Inner::Cuda(d), a, b, RawBuffer::Cuda(c))
                if a.cuda().is_some() && b.cuda().is_some() =>
            {
                d.gemm_f32(
                    spec,
                    a.cuda().expect("checked"),
                    b.cuda().expect("checked"),
                    c,
                )
            }
            #[allow(unreachable_patterns)]
            _ => Err(self.foreign("gemm")),
        }
    }
}
