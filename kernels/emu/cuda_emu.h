// Host emulation of the CUDA subset used by kernels/*.cu, for testing kernels without a GPU.
//
// Execution model: a launch runs its blocks one after another on the calling OS thread. Each
// CUDA thread of a block is a fiber (ucontext) with its own stack. A fiber runs until it reaches
// a barrier (__syncthreads), a warp collective (__shfl_*_sync, __ballot_sync, __syncwarp, wmma)
// or its end; the scheduler then releases warp collectives whose lanes have all arrived and the
// block barrier once every thread of the block waits on it. A barrier that some threads never
// reach, or a collective whose lanes disagree, is reported as an error instead of hanging.
//
// Checking: global pointers are fat pointers (emu::gptr) bounded by the allocation made with
// hipl_emu_alloc; shared memory is tracked per byte with a shadow recording which thread last
// wrote and read it in the current barrier epoch. An access by another thread within the same
// epoch, where one of the two is a write, is a race; so is reading shared memory never written.
// Only __syncthreads orders shared memory here (stricter than hardware, where __syncwarp also
// orders a warp's accesses); the kernels of this crate do not rely on warp-synchronous memory.
// The first error stops the launch and is returned to the caller.
#pragma once

#include <ucontext.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#define HIPL_EMU 1
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __restrict__ __restrict

struct uint3 {
    unsigned x, y, z;
};
struct dim3 {
    unsigned x = 1, y = 1, z = 1;
};

namespace emu {

// ----- errors -----------------------------------------------------------------------------------

void fail(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
bool failed();

// ----- global memory ----------------------------------------------------------------------------

// Finds the allocation holding `p`; returns false when `p` is in none.
bool find_alloc(const void* p, const unsigned char** base, size_t* bytes);

template <class T>
struct gptr {
    using U = std::remove_const_t<T>;
    T* base = nullptr;     // start of the allocation
    ptrdiff_t off = 0;     // element offset of this pointer from base
    size_t len = 0;        // allocation size in elements
    const char* name = "";  // parameter name, for messages

    T& at(ptrdiff_t i) const {
        ptrdiff_t k = off + i;
        if (base == nullptr || k < 0 || size_t(k) >= len) {
            fail("out-of-bounds global access to `%s`: element %td of %zu", name, k, len);
            thread_local U dummy{};
            return dummy;
        }
        return base[k];
    }
    template <class I, std::enable_if_t<std::is_integral_v<I>, int> = 0>
    T& operator[](I i) const { return at(ptrdiff_t(i)); }
    T& operator*() const { return at(0); }
    template <class I, std::enable_if_t<std::is_integral_v<I>, int> = 0>
    gptr operator+(I d) const { gptr g = *this; g.off += ptrdiff_t(d); return g; }
    explicit operator bool() const { return base != nullptr; }
    operator gptr<const T>() const { return gptr<const T>{base, off, len, name}; }
};

// ----- shared memory ----------------------------------------------------------------------------

struct Shadow {
    uint32_t w_epoch = UINT32_MAX;  // epoch of the last write; UINT32_MAX: never written
    int32_t writer = -1;
    uint32_t r_epoch = UINT32_MAX;
    int32_t reader = -1;  // -2: several threads read in r_epoch
    bool atomic_only = false;
};

void shared_read(Shadow* sh, size_t bytes, const char* name, size_t index);
void shared_write(Shadow* sh, size_t bytes, const char* name, size_t index);

template <class T>
struct SRef {
    unsigned char* p;  // null for an out-of-bounds reference
    Shadow* sh;
    const char* name;
    size_t index;
    operator T() const {
        T v{};
        if (!p) return v;
        shared_read(sh, sizeof(T), name, index);
        std::memcpy(&v, p, sizeof(T));
        return v;
    }
    const SRef& operator=(T v) const {
        if (!p) return *this;
        shared_write(sh, sizeof(T), name, index);
        std::memcpy(p, &v, sizeof(T));
        return *this;
    }
    const SRef& operator=(const SRef& o) const { return *this = T(o); }
    const SRef& operator+=(T v) const { return *this = T(T(*this) + v); }
    const SRef& operator-=(T v) const { return *this = T(T(*this) - v); }
    const SRef& operator*=(T v) const { return *this = T(T(*this) * v); }
    const SRef& operator|=(T v) const { return *this = T(T(*this) | v); }
};

// A typed view of block shared memory, with bounds and race checks on every access.
template <class T>
struct SArr {
    unsigned char* bytes = nullptr;
    Shadow* sh = nullptr;
    size_t n = 0;  // elements
    const char* name = "";
    template <class I, std::enable_if_t<std::is_integral_v<I>, int> = 0>
    SRef<T> operator[](I i) const {
        if (i < 0 || size_t(i) >= n) {
            fail("out-of-bounds shared access to `%s`: element %lld of %zu", name,
                 (long long)i, n);
            return SRef<T>{nullptr, nullptr, name, 0};
        }
        return SRef<T>{bytes + size_t(i) * sizeof(T), sh + size_t(i) * sizeof(T), name,
                       size_t(i)};
    }
    template <class I, std::enable_if_t<std::is_integral_v<I>, int> = 0>
    SArr operator+(I d) const {
        if (d < 0 || size_t(d) > n) {
            fail("shared pointer `%s` offset %lld outside 0..=%zu", name, (long long)d, n);
            return SArr{bytes, sh, 0, name};
        }
        return SArr{bytes + size_t(d) * sizeof(T), sh + size_t(d) * sizeof(T), n - size_t(d),
                    name};
    }
    template <class U>
    SArr<U> as() const {
        return SArr<U>{bytes, sh, n * sizeof(T) / sizeof(U), name};
    }
};

SArr<unsigned char> static_shared_bytes(const void* key, size_t bytes, const char* name);
SArr<unsigned char> dynamic_shared_bytes(const char* name);

template <class T>
SArr<T> static_shared(const void* key, size_t n, const char* name) {
    return static_shared_bytes(key, n * sizeof(T), name).template as<T>();
}

// ----- threads, blocks, collectives -------------------------------------------------------------

uint3& thread_idx();
uint3& block_idx();
uint3& block_dim();
uint3& grid_dim();
void syncthreads();

enum class WarpKind { Sync, Ballot, ShflIdx, ShflXor, ShflDown, ShflUp, Any, All };
// Every lane named in `mask` must call the same collective; returns this lane's result.
uint64_t warp_collective(WarpKind kind, uint32_t mask, uint64_t value, int arg, int width);
unsigned lane_id();

// ----- launching --------------------------------------------------------------------------------

using KernelFn = void (*)(void* closure);
// Runs `fn(closure)` for every thread of every block; returns 0, or 1 with `err` filled.
int run_kernel(dim3 grid, dim3 block, size_t dyn_smem, KernelFn fn, void* closure, char* err,
               size_t err_len);

}  // namespace emu

#define threadIdx (::emu::thread_idx())
#define blockIdx (::emu::block_idx())
#define blockDim (::emu::block_dim())
#define gridDim (::emu::grid_dim())
#define warpSize 32

inline void __syncthreads() { emu::syncthreads(); }
inline void __syncwarp(unsigned mask = 0xffffffffu) {
    emu::warp_collective(emu::WarpKind::Sync, mask, 0, 0, 32);
}
inline unsigned __ballot_sync(unsigned mask, int pred) {
    return unsigned(emu::warp_collective(emu::WarpKind::Ballot, mask, pred != 0, 0, 32));
}
inline int __any_sync(unsigned mask, int pred) {
    return int(emu::warp_collective(emu::WarpKind::Any, mask, pred != 0, 0, 32));
}
inline int __all_sync(unsigned mask, int pred) {
    return int(emu::warp_collective(emu::WarpKind::All, mask, pred != 0, 0, 32));
}

namespace emu {
template <class T>
T shfl(WarpKind k, unsigned mask, T v, int arg, int width) {
    static_assert(sizeof(T) <= 8 && std::is_trivially_copyable_v<T>);
    uint64_t bits = 0;
    std::memcpy(&bits, &v, sizeof(T));
    uint64_t r = warp_collective(k, mask, bits, arg, width);
    T out;
    std::memcpy(&out, &r, sizeof(T));
    return out;
}
}  // namespace emu

template <class T>
T __shfl_sync(unsigned mask, T v, int src, int width = 32) {
    return emu::shfl(emu::WarpKind::ShflIdx, mask, v, src, width);
}
template <class T>
T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
    return emu::shfl(emu::WarpKind::ShflXor, mask, v, lane_mask, width);
}
template <class T>
T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32) {
    return emu::shfl(emu::WarpKind::ShflDown, mask, v, int(delta), width);
}
template <class T>
T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32) {
    return emu::shfl(emu::WarpKind::ShflUp, mask, v, int(delta), width);
}

// ----- intrinsics and atomics -------------------------------------------------------------------

inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz(unsigned(x)); }
inline float __uint_as_float(unsigned u) { float f; std::memcpy(&f, &u, 4); return f; }
inline unsigned __float_as_uint(float f) { unsigned u; std::memcpy(&u, &f, 4); return u; }
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline float __expf(float x) { return std::exp(x); }
inline float __fdividef(float a, float b) { return a / b; }
template <class T>
T __ldg(const T* p) { return *p; }

inline unsigned atomicAdd(unsigned* p, unsigned v) {
    return __atomic_fetch_add(p, v, __ATOMIC_RELAXED);
}
inline int atomicAdd(int* p, int v) { return __atomic_fetch_add(p, v, __ATOMIC_RELAXED); }
inline unsigned atomicOr(unsigned* p, unsigned v) {
    return __atomic_fetch_or(p, v, __ATOMIC_RELAXED);
}
inline unsigned atomicMax(unsigned* p, unsigned v) {
    unsigned old = __atomic_load_n(p, __ATOMIC_RELAXED);
    while (old < v && !__atomic_compare_exchange_n(p, &old, v, true, __ATOMIC_RELAXED,
                                                   __ATOMIC_RELAXED)) {
    }
    return old;
}

// ----- half and bfloat16 ------------------------------------------------------------------------

struct __half {
    uint16_t bits;
};
struct __nv_bfloat16 {
    uint16_t bits;
};
float __half2float(__half h);
__half __float2half(float f);  // round to nearest even
inline float __bfloat162float(__nv_bfloat16 b) { return __uint_as_float(unsigned(b.bits) << 16); }
__nv_bfloat16 __float2bfloat16(float f);  // round to nearest even

#include "wmma_emu.h"

// Kernel-source portability macros (the CUDA build defines the same names in common.cuh).
#define GPTR(T) ::emu::gptr<T>
#define HIPL_SHARED(T, name, n)       \
    static const char name##_key = 0; \
    const ::emu::SArr<T> name = ::emu::static_shared<T>(&name##_key, (n), #name)
#define HIPL_DYN_SHARED(name) \
    const ::emu::SArr<unsigned char> name = ::emu::dynamic_shared_bytes(#name)
#define HIPL_SMEM_AS(T, p) ((p).template as<T>())

inline unsigned atomicMin(unsigned* p, unsigned v) {
    unsigned old = __atomic_load_n(p, __ATOMIC_RELAXED);
    while (old > v && !__atomic_compare_exchange_n(p, &old, v, true, __ATOMIC_RELAXED,
                                                   __ATOMIC_RELAXED)) {
    }
    return old;
}
