// The host-emulation build of every kernel, and the C ABI the Rust tests launch them through.
//
// hipl_emu_launch mirrors cuLaunchKernel: `args[i]` points to the i-th argument's value. Each
// argument also carries a kind letter (p pointer, u u32, i i32, f f32, U u64) checked against
// the kernel's signature, and pointers must come from hipl_emu_alloc: they become bounded
// emu::gptr values, so any access outside the allocation is reported.
#include "cuda_emu.h"

#include <cstring>
#include <tuple>
#include <utility>

#include "../csr.cu"
#include "../incidence.cu"
#include "../norm.cu"
#include "../soft.cu"
#include "../spmm.cu"
#include "../topk.cu"
#include "selftest.cu"

namespace {

template <class P>
struct Arg;

template <class T>
struct Arg<emu::gptr<T>> {
    static constexpr char kind = 'p';
    static emu::gptr<T> get(void* slot, int i) {
        void* raw;
        std::memcpy(&raw, slot, sizeof raw);
        emu::gptr<T> g;
        static thread_local char names[32][16];
        std::snprintf(names[i % 32], 16, "argument %d", i);
        g.name = names[i % 32];
        if (!raw) return g;
        const unsigned char* base;
        size_t bytes;
        if (!emu::find_alloc(raw, &base, &bytes)) {
            emu::fail("argument %d: pointer %p is not from hipl_emu_alloc", i, raw);
            return g;
        }
        size_t off = static_cast<const unsigned char*>(raw) - base;
        if (off % sizeof(T) != 0 || reinterpret_cast<uintptr_t>(base) % alignof(T) != 0) {
            emu::fail("argument %d: pointer misaligned for its element type", i);
            return g;
        }
        g.base = reinterpret_cast<T*>(const_cast<unsigned char*>(base));
        g.off = ptrdiff_t(off / sizeof(T));
        g.len = bytes / sizeof(T);
        return g;
    }
};

template <class S, char K>
struct Scalar {
    static constexpr char kind = K;
    static S get(void* slot, int) {
        S v;
        std::memcpy(&v, slot, sizeof v);
        return v;
    }
};
template <>
struct Arg<unsigned> : Scalar<unsigned, 'u'> {};
template <>
struct Arg<int> : Scalar<int, 'i'> {};
template <>
struct Arg<float> : Scalar<float, 'f'> {};
template <>
struct Arg<unsigned long long> : Scalar<unsigned long long, 'U'> {};

template <class... P>
struct Closure {
    void (*kernel)(P...);
    std::tuple<P...> args;
    static void run(void* c) {
        auto* self = static_cast<Closure*>(c);
        std::apply(self->kernel, self->args);
    }
};

template <class... P, size_t... I>
int launch_typed(void (*kernel)(P...), std::index_sequence<I...>, dim3 grid, dim3 block,
                 size_t smem, void** args, const char* kinds, int nargs, char* err,
                 size_t err_len) {
    if (nargs != int(sizeof...(P))) {
        std::snprintf(err, err_len, "expected %zu arguments, got %d", sizeof...(P), nargs);
        return 1;
    }
    const char expected[] = {Arg<P>::kind..., '\0'};
    for (int i = 0; i < nargs; ++i)
        if (kinds[i] != expected[i]) {
            std::snprintf(err, err_len, "argument %d: expected kind '%c', got '%c'", i,
                          expected[i], kinds[i]);
            return 1;
        }
    Closure<P...> c{kernel, std::tuple<P...>(Arg<P>::get(args[I], int(I))...)};
    return emu::run_kernel(grid, block, smem, &Closure<P...>::run, &c, err, err_len);
}

template <class... P>
int launch(void (*kernel)(P...), dim3 grid, dim3 block, size_t smem, void** args,
           const char* kinds, int nargs, char* err, size_t err_len) {
    return launch_typed(kernel, std::index_sequence_for<P...>{}, grid, block, smem, args, kinds,
                        nargs, err, err_len);
}

using Launcher = int (*)(dim3, dim3, size_t, void**, const char*, int, char*, size_t);

#define ENTRY(name)                                                                        \
    {                                                                                      \
#name, [](dim3 g, dim3 b, size_t s, void** a, const char* k, int n, char* e, size_t l) { \
            return launch(&name, g, b, s, a, k, n, e, l);                                 \
        }                                                                                  \
    }

struct Entry {
    const char* name;
    Launcher launch;
};

const Entry kEntries[] = {
    ENTRY(normalize_rows_f32),      ENTRY(normalize_rows_bf16),     ENTRY(normalize_rows_f16),
    ENTRY(normalize_rows_bwd_f32),  ENTRY(normalize_rows_bwd_bf16), ENTRY(normalize_rows_bwd_f16),
    ENTRY(sim_incidence_f32),       ENTRY(sim_incidence_bf16),      ENTRY(sim_incidence_f16),
    ENTRY(sim_incidence_wmma_bf16), ENTRY(sim_incidence_wmma_f16),  ENTRY(sim_topk_f32),
    ENTRY(sim_topk_bf16),           ENTRY(sim_topk_f16),            ENTRY(sim_sigmoid_f32),
    ENTRY(sim_sigmoid_wmma_bf16),   ENTRY(sim_sigmoid_wmma_f16),    ENTRY(soft_degrees_f32),
    ENTRY(sigmoid_bwd_f32),         ENTRY(mask_dense_f32),          ENTRY(dense_degrees_f32),
    ENTRY(mask_to_dense_f32),       ENTRY(first_bad_f32),
    ENTRY(mask_row_counts_u32),     ENTRY(csr_scan_u32),
    ENTRY(csr_fill_u32),            ENTRY(mask_transpose_u32),      ENTRY(weighted_degree_f32),
    ENTRY(spmm_gather_f32),         ENTRY(spmm_gather_bf16),        ENTRY(spmm_gather_f16),
    ENTRY(colsum_scaled_f32),       ENTRY(colsum_scaled_bf16),      ENTRY(colsum_scaled_f16),
    ENTRY(degree_scales_u32),       ENTRY(degree_scales_f32),       ENTRY(scale_rows_f32),
    ENTRY(emu_rotate_with_barrier), ENTRY(emu_rotate_missing_barrier),
    ENTRY(emu_fill_unguarded),      ENTRY(emu_shared_overflow),     ENTRY(emu_divergent_barrier),
    ENTRY(emu_uninitialised_read),  ENTRY(emu_warp_intrinsics),     ENTRY(emu_divergent_shuffle),
};

}  // namespace

// Returns 0 on success, 1 when the kernel or its arguments failed a check (message in `err`),
// 2 when no kernel has that name.
extern "C" int hipl_emu_launch(const char* name, const unsigned grid[3], const unsigned block[3],
                               size_t smem, void** args, const char* kinds, int nargs, char* err,
                               size_t err_len) {
    for (const Entry& e : kEntries)
        if (std::strcmp(e.name, name) == 0)
            return e.launch(dim3{grid[0], grid[1], grid[2]}, dim3{block[0], block[1], block[2]},
                            smem, args, kinds, nargs, err, err_len);
    std::snprintf(err, err_len, "no emulated kernel named `%s`", name);
    return 2;
}
