//! The host emulator's side in Rust: allocations it can bound-check and the launch call.
//!
//! `kernels/emu/` compiles every kernel for the host (see `build.rs`); `hipl_emu_launch` takes
//! arguments the way `cuLaunchKernel` does, plus a kind letter per argument that the C++ side
//! checks against the kernel's signature. Pointers must come from `hipl_emu_alloc`, whose
//! registry turns them into bounded pointers inside the kernel.

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::ptr::NonNull;

use super::device::{GemmSpec, KArg, LaunchCfg, RawBuffer};
use crate::error::{Error, Result};

extern "C" {
    fn hipl_emu_alloc(bytes: usize) -> *mut c_void;
    fn hipl_emu_free(p: *mut c_void);
    fn hipl_emu_launch(
        name: *const c_char,
        grid: *const u32,
        block: *const u32,
        smem: usize,
        args: *mut *mut c_void,
        kinds: *const c_char,
        nargs: c_int,
        err: *mut c_char,
        err_len: usize,
    ) -> c_int;
}

/// Host memory registered with the emulator.
pub(crate) struct EmuAlloc {
    ptr: NonNull<u8>,
    bytes: usize,
}

// SAFETY: the allocation is owned exclusively by this value; kernels only touch it during a
// launch, which borrows the owning buffer.
unsafe impl Send for EmuAlloc {}
// SAFETY: shared references only read (copy_to) or pass the pointer to a launch.
unsafe impl Sync for EmuAlloc {}

impl EmuAlloc {
    pub fn zeroed(bytes: usize) -> Result<Self> {
        // SAFETY: plain allocation call; a null result is handled below.
        let p = unsafe { hipl_emu_alloc(bytes) }.cast::<u8>();
        let ptr = NonNull::new(p).ok_or_else(|| Error::Device {
            op: "alloc".into(),
            msg: format!("emulator could not allocate {bytes} bytes"),
        })?;
        Ok(EmuAlloc { ptr, bytes })
    }

    pub fn from_bytes(src: &[u8]) -> Result<Self> {
        let a = Self::zeroed(src.len())?;
        // SAFETY: `a` owns `src.len()` fresh bytes that cannot overlap `src`.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), a.ptr.as_ptr(), src.len()) };
        Ok(a)
    }

    pub fn copy_to(&self, dst: &mut [u8]) {
        let n = dst.len().min(self.bytes);
        // SAFETY: both ranges are valid for `n` bytes; no launch runs while `&self` is held
        // here because launches need the buffer's owner.
        unsafe { std::ptr::copy_nonoverlapping(self.ptr.as_ptr(), dst.as_mut_ptr(), n) };
    }

    fn as_f32(&self) -> &[f32] {
        // SAFETY: hipl_emu_alloc returns calloc memory (aligned for any scalar); all bytes
        // are initialised and every pattern is a valid f32.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().cast::<f32>(), self.bytes / 4) }
    }

    fn as_f32_mut(&mut self) -> &mut [f32] {
        // SAFETY: as in `as_f32`, and `&mut self` makes the view unique.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr().cast::<f32>(), self.bytes / 4) }
    }
}

impl Drop for EmuAlloc {
    fn drop(&mut self) {
        // SAFETY: the pointer came from hipl_emu_alloc and is freed exactly once.
        unsafe { hipl_emu_free(self.ptr.as_ptr().cast()) }
    }
}

/// Runs one launch in the emulator; a failed check comes back as [`Error::Device`].
pub(crate) fn launch(kernel: &str, cfg: &LaunchCfg, args: &mut [KArg<'_>]) -> Result<()> {
    let fail = |msg: String| Error::Device {
        op: kernel.into(),
        msg,
    };
    let mut slots: Vec<u64> = Vec::with_capacity(args.len());
    let mut kinds: Vec<u8> = Vec::with_capacity(args.len() + 1);
    for a in args.iter_mut() {
        let (slot, kind) = match a {
            KArg::In(RawBuffer::Emu(m)) => (m.ptr.as_ptr() as u64, b'p'),
            KArg::Out(RawBuffer::Emu(m)) => (m.ptr.as_ptr() as u64, b'p'),
            KArg::Null => (0, b'p'),
            KArg::U32(v) => (*v as u64, b'u'),
            KArg::F32(v) => (v.to_bits() as u64, b'f'),
            KArg::U64(v) => (*v, b'U'),
            #[allow(unreachable_patterns)]
            _ => return Err(fail("a CUDA buffer was passed to the emulator".into())),
        };
        slots.push(slot);
        kinds.push(kind);
    }
    kinds.push(0);
    // Little-endian: a u32/f32 argument is the low 4 bytes of its slot, as the kernel reads it.
    let mut ptrs: Vec<*mut c_void> = slots
        .iter_mut()
        .map(|s| (s as *mut u64).cast::<c_void>())
        .collect();
    let name = CString::new(kernel).map_err(|_| fail("kernel name with a NUL byte".into()))?;
    let grid = [cfg.grid.0, cfg.grid.1, cfg.grid.2];
    let block = [cfg.block.0, cfg.block.1, cfg.block.2];
    let mut err = vec![0 as c_char; 1024];
    // SAFETY: every pointer argument is live for the call (slots, kinds, names, err); buffer
    // pointers come from hipl_emu_alloc and their owners are borrowed by `args`.
    let rc = unsafe {
        hipl_emu_launch(
            name.as_ptr(),
            grid.as_ptr(),
            block.as_ptr(),
            cfg.smem as usize,
            ptrs.as_mut_ptr(),
            kinds.as_ptr().cast(),
            args.len() as c_int,
            err.as_mut_ptr(),
            err.len(),
        )
    };
    if rc == 0 {
        return Ok(());
    }
    // SAFETY: the emulator NUL-terminates the message within `err`.
    let msg = unsafe { CStr::from_ptr(err.as_ptr()) }
        .to_string_lossy()
        .into_owned();
    Err(fail(msg))
}

/// Row-major batched f32 product for the emulated device, summing in k order.
pub(crate) fn gemm_f32(spec: &GemmSpec, a: &EmuAlloc, b: &EmuAlloc, c: &mut EmuAlloc) {
    let (m, n, k) = (spec.m, spec.n, spec.k);
    let (a, b) = (a.as_f32(), b.as_f32());
    let c = c.as_f32_mut();
    for bi in 0..spec.batch {
        let (ab, bb, cb) = (&a[bi * m * k..], &b[bi * k * n..], &mut c[bi * m * n..]);
        for i in 0..m {
            for j in 0..n {
                let mut s = 0.0f32;
                for p in 0..k {
                    let x = if spec.trans_a {
                        ab[p * m + i]
                    } else {
                        ab[i * k + p]
                    };
                    let y = if spec.trans_b {
                        bb[j * k + p]
                    } else {
                        bb[p * n + j]
                    };
                    s += x * y;
                }
                cb[i * n + j] = s;
            }
        }
    }
}

/// Launches a kernel by name with raw arguments; for the emulator's own tests (planted
/// kernels) and for debugging. Buffers must be emulator buffers.
#[doc(hidden)]
pub fn launch_raw(
    kernel: &str,
    grid: (u32, u32, u32),
    threads: u32,
    smem: u32,
    args: &mut [RawArg<'_>],
) -> Result<()> {
    let cfg = LaunchCfg::new(
        kernel,
        (grid.0 as u64, grid.1 as u64, grid.2 as u64),
        threads,
        smem,
    )?;
    let mut kargs: Vec<KArg<'_>> = args
        .iter_mut()
        .map(|a| match a {
            RawArg::BufU32(b) => KArg::Out(&mut b.raw),
            RawArg::BufF32(b) => KArg::Out(&mut b.raw),
            RawArg::U32(v) => KArg::U32(*v),
        })
        .collect();
    launch(kernel, &cfg, &mut kargs)
}

/// An argument of [`launch_raw`].
#[doc(hidden)]
pub enum RawArg<'a> {
    BufU32(&'a mut super::DeviceBuffer<u32>),
    BufF32(&'a mut super::DeviceBuffer<f32>),
    U32(u32),
}
