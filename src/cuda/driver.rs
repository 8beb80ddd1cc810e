//! The GPU backend over cudarc: context, one stream, the embedded kernel modules, launches
//! and cuBLAS (features `cuda` and `candle-cuda`). The stream and cuBLAS handle are its own
//! ([`CudaBackend::new`]) or candle's ([`CudaBackend::on_stream`]), and buffers are its own
//! allocations or [`Borrowed`] views of memory owned elsewhere (a candle tensor).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use cudarc::cublas::{sys::cublasOperation_t, CudaBlas, Gemm, GemmConfig, StridedBatchedConfig};
use cudarc::driver::{
    sys::CUfunction_attribute, CudaContext, CudaFunction, CudaModule, CudaSlice, CudaStream,
    LaunchConfig, PushKernelArg,
};
use cudarc::nvrtc::Ptx;

use super::device::{GemmSpec, KArg, LaunchCfg, RawBuffer};
use crate::error::{Error, Result};

/// One kernels/*.cu file as nvcc built it: a cubin per architecture and PTX for the lowest.
pub(crate) struct EmbeddedModule {
    pub name: &'static str,
    pub cubins: &'static [(u32, &'static [u8])],
    pub ptx: &'static str,
}

include!(concat!(env!("OUT_DIR"), "/cuda_modules.rs"));

fn dev_err(op: &str, e: impl std::fmt::Debug) -> Error {
    Error::Device {
        op: op.into(),
        msg: format!("{e:?}"),
    }
}

/// Runs `f`, turning a panic into `None` without printing it. cudarc's dynamic loading
/// panics when a CUDA library is missing; the caller reports that as one log line instead.
/// The panic hook is process-wide, so a panic on another thread during this call would go
/// unprinted (it still unwinds normally).
fn quietly<R>(f: impl FnOnce() -> R + std::panic::UnwindSafe) -> Option<R> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let r = std::panic::catch_unwind(f);
    std::panic::set_hook(hook);
    r.ok()
}

pub(crate) struct CudaBackend {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    blas: Arc<CudaBlas>,
    modules: Vec<Arc<CudaModule>>,
    functions: Mutex<HashMap<String, CudaFunction>>,
    name: String,
}

impl CudaBackend {
    /// Whether the driver library loads and reports a device, without panicking.
    pub fn probe() -> std::result::Result<(), String> {
        let count = quietly(CudaContext::device_count)
            .ok_or_else(|| "the CUDA driver library (libcuda) could not be loaded".to_string())?
            .map_err(|e| format!("the CUDA driver reported {e:?}"))?;
        if count < 1 {
            return Err("no CUDA device is present".into());
        }
        Ok(())
    }

    pub fn new(ordinal: usize) -> Result<Self> {
        Self::probe().map_err(|msg| Error::Device {
            op: "cuda init".into(),
            msg,
        })?;
        let ctx = CudaContext::new(ordinal).map_err(|e| dev_err("cuda init", e))?;
        let stream = ctx.default_stream();
        let blas = quietly(|| CudaBlas::new(stream.clone()))
            .ok_or_else(|| {
                dev_err(
                    "cublas init",
                    "libcublas could not be loaded (LD_LIBRARY_PATH?)",
                )
            })?
            .map_err(|e| dev_err("cublas init", e))?;
        Self::on_stream(stream, Arc::new(blas))
    }

    /// The kernels loaded into the context of `stream`, launched on `stream`, with `blas`
    /// (bound to the same stream) for the dense products: how the candle ops run on candle's
    /// own stream and cuBLAS handle.
    pub fn on_stream(stream: Arc<CudaStream>, blas: Arc<CudaBlas>) -> Result<Self> {
        let ctx = stream.context().clone();
        let (major, minor) = ctx
            .compute_capability()
            .map_err(|e| dev_err("cuda init", e))?;
        let arch = (major * 10 + minor) as u32;
        let mut modules = Vec::new();
        for m in MODULES {
            // Same major version and not newer than the device: the cubin runs as is.
            let cubin = m
                .cubins
                .iter()
                .filter(|(a, _)| *a / 10 == arch / 10 && *a <= arch)
                .max_by_key(|(a, _)| *a);
            let image = match cubin {
                Some((a, bytes)) => {
                    tracing::debug!(module = m.name, "cubin sm_{a} for sm_{arch}");
                    Ptx::from_binary(bytes.to_vec())
                }
                None => {
                    tracing::info!(module = m.name, "no cubin for sm_{arch}; JIT-compiling PTX");
                    Ptx::from_src(m.ptx)
                }
            };
            modules.push(ctx.load_module(image).map_err(|e| dev_err(m.name, e))?);
        }
        let name = format!(
            "{} (sm_{arch})",
            ctx.name().unwrap_or_else(|_| "CUDA device".into())
        );
        tracing::info!(device = %name, "CUDA kernels loaded");
        Ok(CudaBackend {
            ctx,
            stream,
            blas,
            modules,
            functions: Mutex::new(HashMap::new()),
            name,
        })
    }

    pub fn name(&self) -> String {
        self.name.clone()
    }

    /// `bytes` of device memory at `ptr` owned elsewhere, as a slice on this backend's stream
    /// that is never freed here.
    ///
    /// # Safety
    /// `ptr` must point to at least `bytes` bytes of device memory of this backend's context,
    /// valid (not freed, not written by other streams) while the result lives.
    #[cfg_attr(not(feature = "candle-cuda"), allow(dead_code))]
    pub unsafe fn borrow(&self, ptr: u64, bytes: usize) -> Borrowed {
        // SAFETY: the caller's contract; `Borrowed` leaks the slice instead of freeing it.
        Borrowed(Some(unsafe {
            self.stream.upgrade_device_ptr::<u8>(ptr, bytes)
        }))
    }

    /// Hands an allocation of this backend over as a typed cudarc slice (same memory, same
    /// stream), e.g. to become candle storage.
    #[cfg_attr(not(feature = "candle-cuda"), allow(dead_code))]
    pub fn into_typed<T>(&self, s: CudaSlice<u8>, len: usize) -> Result<CudaSlice<T>> {
        if len * std::mem::size_of::<T>() > s.len() {
            return Err(dev_err(
                "into_typed",
                "buffer shorter than the typed length",
            ));
        }
        let ptr = s.leak();
        // SAFETY: `ptr` is the allocation `s` owned (of at least `len` T, checked above),
        // whose ownership `leak` released; the new slice frees it on this stream when dropped.
        Ok(unsafe { self.stream.upgrade_device_ptr::<T>(ptr, len) })
    }

    pub fn upload(&self, bytes: &[u8]) -> Result<CudaSlice<u8>> {
        if bytes.is_empty() {
            return self.zeros(0);
        }
        self.stream
            .clone_htod(bytes)
            .map_err(|e| dev_err("upload", e))
    }

    pub fn zeros(&self, bytes: usize) -> Result<CudaSlice<u8>> {
        // Zero-length device allocations are not allowed; keep one byte.
        self.stream
            .alloc_zeros::<u8>(bytes.max(1))
            .map_err(|e| dev_err("alloc", e))
    }

    pub fn download(&self, src: &CudaSlice<u8>, dst: &mut [u8]) -> Result<()> {
        if dst.is_empty() {
            return Ok(());
        }
        let view = src.slice(0..dst.len());
        self.stream
            .memcpy_dtoh(&view, dst)
            .map_err(|e| dev_err("download", e))?;
        self.stream
            .synchronize()
            .map_err(|e| dev_err("download", e))
    }

    pub fn synchronize(&self) -> Result<()> {
        self.stream
            .synchronize()
            .map_err(|e| dev_err("synchronize", e))
    }

    fn function(&self, kernel: &str) -> Result<CudaFunction> {
        let mut cache = self
            .functions
            .lock()
            .map_err(|_| dev_err(kernel, "poisoned lock"))?;
        if let Some(f) = cache.get(kernel) {
            return Ok(f.clone());
        }
        let f = self
            .modules
            .iter()
            .find_map(|m| m.load_function(kernel).ok())
            .ok_or_else(|| dev_err(kernel, "no such kernel in the embedded modules"))?;
        cache.insert(kernel.to_string(), f.clone());
        Ok(f)
    }

    pub fn launch(&self, kernel: &str, cfg: &LaunchCfg, args: &mut [KArg<'_>]) -> Result<()> {
        let f = self.function(kernel)?;
        // Static plus dynamic shared memory above 48 KiB needs the opt-in; setting it for every
        // launch with dynamic memory keeps the rule in one place.
        if cfg.smem > 0 {
            f.set_attribute(
                CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                cfg.smem as i32,
            )
            .map_err(|e| dev_err(kernel, e))?;
        }
        // Scalars must outlive the builder, which keeps references to them.
        let null: u64 = 0;
        let mut builder = self.stream.launch_builder(&f);
        for a in args.iter_mut() {
            match a {
                KArg::In(RawBuffer::Cuda(s)) => {
                    builder.arg(&*s);
                }
                KArg::In(RawBuffer::CudaBorrowed(b)) => {
                    builder.arg(b.slice());
                }
                KArg::Out(RawBuffer::Cuda(s)) => {
                    builder.arg(&mut *s);
                }
                KArg::Out(RawBuffer::CudaBorrowed(_)) => {
                    return Err(dev_err(
                        kernel,
                        "a borrowed (read-only) buffer as an output",
                    ));
                }
                KArg::Null => {
                    builder.arg(&null);
                }
                KArg::U32(v) => {
                    builder.arg(&*v);
                }
                KArg::F32(v) => {
                    builder.arg(&*v);
                }
                KArg::U64(v) => {
                    builder.arg(&*v);
                }
                _ => return Err(dev_err(kernel, "an emulator buffer was passed to the GPU")),
            }
        }
        let lc = LaunchConfig {
            grid_dim: cfg.grid,
            block_dim: cfg.block,
            shared_mem_bytes: cfg.smem,
        };
        // SAFETY: the argument list matches the kernel's parameters in order and type (the
        // ops module builds it next to the kernel's signature, and the emulator checks the
        // same lists kind by kind); every buffer's length was checked against the shape the
        // grid is computed from, so the kernel stays inside its buffers.
        unsafe { builder.launch(lc) }.map_err(|e| dev_err(kernel, e))?;
        Ok(())
    }

    pub fn gemm_f32(
        &self,
        spec: &GemmSpec,
        a: &CudaSlice<u8>,
        b: &CudaSlice<u8>,
        c: &mut CudaSlice<u8>,
    ) -> Result<()> {
        let (m, n, k) = (spec.m, spec.n, spec.k);
        let int = |v: usize| i32::try_from(v).map_err(|_| dev_err("gemm", "dimension over i32"));
        // Row-major C = op(A) op(B) is column-major Cᵀ = op(B)ᵀ op(A)ᵀ: swap the operands.
        let op = |t: bool| {
            if t {
                cublasOperation_t::CUBLAS_OP_T
            } else {
                cublasOperation_t::CUBLAS_OP_N
            }
        };
        let cfg = StridedBatchedConfig {
            gemm: GemmConfig {
                transa: op(spec.trans_b),
                transb: op(spec.trans_a),
                m: int(n)?,
                n: int(m)?,
                k: int(k)?,
                alpha: 1.0f32,
                lda: int(if spec.trans_b { k } else { n })?,
                ldb: int(if spec.trans_a { m } else { k })?,
                beta: 0.0f32,
                ldc: int(n)?,
            },
            batch_size: int(spec.batch)?,
            stride_a: (k * n) as i64,
            stride_b: (m * k) as i64,
            stride_c: (m * n) as i64,
        };
        // SAFETY: the byte slices hold at least batch·(m·k, k·n, m·n) f32 (checked by
        // Device::gemm_f32), so the transmuted views cover every element cuBLAS touches.
        unsafe {
            let av = a
                .transmute::<f32>(a.len() / 4)
                .ok_or_else(|| dev_err("gemm", "a"))?;
            let bv = b
                .transmute::<f32>(b.len() / 4)
                .ok_or_else(|| dev_err("gemm", "b"))?;
            let clen = c.len() / 4;
            let mut cv = c
                .transmute_mut::<f32>(clen)
                .ok_or_else(|| dev_err("gemm", "c"))?;
            self.blas.gemm_strided_batched(cfg, &bv, &av, &mut cv)
        }
        .map_err(|e| dev_err("gemm", e))?;
        let _ = &self.ctx;
        Ok(())
    }
}

/// Device memory owned elsewhere (a candle tensor's storage), seen as a cudarc slice on the
/// backend's stream. Dropping it releases the view without freeing the memory.
pub(crate) struct Borrowed(Option<CudaSlice<u8>>);

impl Borrowed {
    pub fn slice(&self) -> &CudaSlice<u8> {
        self.0
            .as_ref()
            .expect("a Borrowed holds its slice until dropped")
    }
}

impl Drop for Borrowed {
    fn drop(&mut self) {
        if let Some(s) = self.0.take() {
            // Releases the view's events, not the memory (its owner frees it).
            let _ = s.leak();
        }
    }
}
