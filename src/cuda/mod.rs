//! The CUDA backend: hand-written kernels (`kernels/*.cu`) behind a safe API.
//!
//! A [`Device`] is either a CUDA GPU driven through cudarc (feature `cuda`) or the host
//! emulator, which runs the very same kernel sources on the CPU with barrier, warp, bounds and
//! shared-memory race checks (always built; it is how the kernels are tested without a GPU).
//! [`DeviceBuffer`]s hold typed device memory; the functions in [`ops`] check every shape and
//! length, compute the launch parameters and launch. [`hypergraph`] builds a hypergraph and runs
//! the hypergraph convolution on a device with the same configuration types as the CPU path.
//!
//! [`Backend::detect`] picks the GPU when there is one and the CPU path otherwise (one log
//! line, never a panic); its `build_hypergraph` and `conv` take the CPU path's arguments.
//!
//! Features: `cuda` drives GPUs through cudarc with the CUDA libraries loaded at run time;
//! `candle-cuda` instead (the two exclude each other) also runs the candle ops on candle's CUDA
//! tensors, on candle's stream, with cudarc linking the libraries as candle-core requires.
//!
//! Building: feature `cuda` (or `candle-cuda`) compiles `kernels/*.cu` with nvcc at build time (found through
//! `NVCC`, `CUDA_HOME`/`CUDA_PATH`, or `PATH`) into cubins for sm_80 and sm_90 (override with
//! `HIPL_CUDA_ARCHS=80,86,90`) plus PTX for the lowest, all embedded in the library; at run
//! time the device's cubin is loaded, else the PTX is JIT-compiled by the driver. The host
//! emulator is always built (plain C++, no CUDA). `.ci/cuda-check.sh` installs nvcc from PyPI,
//! compiles every kernel with `-Xptxas -v` (failing on spills), builds with `cuda` and runs the
//! emulated kernel tests; `scripts/gpu-check.sh` runs the same tests and the benches on a GPU.
//!
//! Layouts are the CPU path's: features row-major `[B, N, D]`; the hard incidence bitmask has
//! per image `N` rows of `2·ceil(N/64)` u32 words, the bytes of the CPU's u64 words.

mod backend;
mod conv;
mod device;
#[cfg(feature = "cuda-kernels")]
mod driver;
pub mod emu;
pub mod hypergraph;
pub mod ops;

pub use backend::{Backend, Graph};
pub use conv::{conv, conv_backward, conv_backward_device, conv_device, DeviceConvGrads};
pub(crate) use device::GemmSpec;
pub use device::{Device, DeviceBuffer, Elem, Float};
pub(crate) use device::{KArg, LaunchCfg};
pub use hypergraph::{build_hypergraph, build_on_device, DeviceHypergraph};
