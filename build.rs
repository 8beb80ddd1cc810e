//! Build script: the host-emulation build of the CUDA kernels (always; `cargo test` runs the
//! kernels on the CPU through it) and, with feature `cuda` or `candle-cuda`, the nvcc build of
//! the same kernels into cubins and PTX embedded in the library. Helpers live in `build/`.

#[path = "build/emu.rs"]
mod emu;
#[path = "build/nvcc.rs"]
mod nvcc;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=build");
    println!("cargo:rerun-if-changed=kernels");
    if std::env::var_os("CARGO_FEATURE_CUDA").is_some()
        && std::env::var_os("CARGO_FEATURE_CANDLE_CUDA").is_some()
    {
        // cudarc's own build script would panic on the two linking modes; say why instead.
        eprintln!(
            "error: features `cuda` and `candle-cuda` cannot be combined: `cuda` loads the CUDA \
             libraries at run time, while candle-core's `cuda` (enabled by `candle-cuda`) links \
             them. Use `cuda` for the kernels alone, `candle-cuda` for the candle ops on CUDA \
             tensors (it includes the kernels)."
        );
        std::process::exit(1);
    }
    emu::compile();
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    if std::env::var_os("CARGO_FEATURE_CUDA_KERNELS").is_some() {
        if let Err(e) = nvcc::compile_all(&out_dir) {
            // A build error, not a panic backtrace: say what to set.
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
