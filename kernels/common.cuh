// Shared helpers for every kernel: portability macros (CUDA vs host emulation), dtype
// conversions and warp reductions.
//
// The same sources compile with nvcc and, for tests, with a host C++ compiler that first
// includes kernels/emu/cuda_emu.h (which defines HIPL_EMU and its own versions of the macros
// below). Kernel code therefore declares global pointers with GPTR(T), shared arrays with
// HIPL_SHARED / HIPL_DYN_SHARED, and avoids C++ features that only one side has.
#pragma once

#ifndef HIPL_EMU
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <mma.h>
#include <stdint.h>
// A kernel parameter pointing to global memory.
#define GPTR(T) T* __restrict__
// A statically sized shared array; 32-byte aligned for wmma loads.
#define HIPL_SHARED(T, name, n) __shared__ __align__(32) T name[n]
// The block's dynamic shared memory as bytes; carve typed views with HIPL_SMEM_AS.
#define HIPL_DYN_SHARED(name) extern __shared__ __align__(32) unsigned char name[]
#define HIPL_SMEM_AS(T, p) reinterpret_cast<T*>(p)
#endif

namespace hipl {

constexpr unsigned kFullMask = 0xffffffffu;

__device__ __forceinline__ float to_f32(float x) { return x; }
__device__ __forceinline__ float to_f32(__half x) { return __half2float(x); }
__device__ __forceinline__ float to_f32(__nv_bfloat16 x) { return __bfloat162float(x); }

template <class T>
__device__ __forceinline__ T from_f32(float x);
template <>
__device__ __forceinline__ float from_f32<float>(float x) { return x; }
template <>
__device__ __forceinline__ __half from_f32<__half>(float x) { return __float2half(x); }
template <>
__device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float x) {
    return __float2bfloat16(x);
}

__device__ __forceinline__ bool is_finite(float x) {
    return (__float_as_uint(x) & 0x7f800000u) != 0x7f800000u;
}

// Sum over the 32 lanes by a fixed xor tree: every lane gets the same, reproducible result.
__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(kFullMask, v, o);
    return v;
}

__device__ __forceinline__ unsigned warp_sum_u32(unsigned v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(kFullMask, v, o);
    return v;
}

// Inclusive prefix sum over the lanes of a warp.
__device__ __forceinline__ unsigned warp_inclusive_scan(unsigned v, unsigned lane) {
    for (unsigned o = 1; o < 32; o <<= 1) {
        unsigned u = __shfl_up_sync(kFullMask, v, o);
        if (lane >= o) v += u;
    }
    return v;
}

__device__ __forceinline__ unsigned umin(unsigned a, unsigned b) { return a < b ? a : b; }

}  // namespace hipl
