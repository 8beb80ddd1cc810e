//! Compiles `kernels/*.cu` for the host with `kernels/emu/cuda_emu.h` (no CUDA needed) into a
//! static library the `hipl::cuda::emu` module calls.

pub fn compile() {
    cc::Build::new()
        .cpp(true)
        .std("c++17")
        .opt_level(2)
        .warnings(true)
        .file("kernels/emu/cuda_emu.cpp")
        .file("kernels/emu/registry.cpp")
        .include("kernels")
        .compile("hipl_emu");
}
