// Host emulation of the nvcuda::wmma fragment API (included by cuda_emu.h).
//
// On hardware a fragment's elements are spread over the 32 lanes of a warp in an unspecified
// order. Here every lane holds the whole tile, so `num_elements` is the tile size: code that
// treats fragment elements only elementwise (the only portable use) behaves the same. Every
// operation is a warp collective (all lanes must call it together, as on hardware); stores are
// performed by lane 0 alone, so the shared-memory race checker sees one writer. The product
// accumulates in f32 in k order; tensor cores may sum in another order.
#pragma once

namespace nvcuda {
namespace wmma {

struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };

template <class Use, int M, int N, int K>
struct frag_shape;
template <int M, int N, int K>
struct frag_shape<matrix_a, M, N, K> {
    static constexpr int rows = M, cols = K;
};
template <int M, int N, int K>
struct frag_shape<matrix_b, M, N, K> {
    static constexpr int rows = K, cols = N;
};
template <int M, int N, int K>
struct frag_shape<accumulator, M, N, K> {
    static constexpr int rows = M, cols = N;
};

template <class Use, int M, int N, int K, class T, class Layout = void>
struct fragment {
    static constexpr int rows = frag_shape<Use, M, N, K>::rows;
    static constexpr int cols = frag_shape<Use, M, N, K>::cols;
    static constexpr int num_elements = rows * cols;
    T x[num_elements];
};

inline float emu_to_float(float v) { return v; }
inline float emu_to_float(__half v) { return __half2float(v); }
inline float emu_to_float(__nv_bfloat16 v) { return __bfloat162float(v); }

inline void emu_converge() { emu::warp_collective(emu::WarpKind::Sync, 0xffffffffu, 0, 0, 32); }

template <class Use, int M, int N, int K, class T, class L>
void fill_fragment(fragment<Use, M, N, K, T, L>& f, T v) {
    for (int i = 0; i < f.num_elements; ++i) f.x[i] = v;
}

// matrix_a / matrix_b: the layout is part of the fragment type.
template <class Use, int M, int N, int K, class T, class L, class P>
void load_matrix_sync(fragment<Use, M, N, K, T, L>& f, P ptr, unsigned ldm) {
    static_assert(!std::is_same_v<Use, accumulator>, "accumulator loads need a layout_t");
    emu_converge();
    constexpr bool row = std::is_same_v<L, row_major>;
    using F = fragment<Use, M, N, K, T, L>;
    for (int r = 0; r < F::rows; ++r)
        for (int c = 0; c < F::cols; ++c)
            f.x[r * F::cols + c] = T(ptr[row ? size_t(r) * ldm + c : size_t(c) * ldm + r]);
}

template <int M, int N, int K, class P>
void load_matrix_sync(fragment<accumulator, M, N, K, float>& f, P ptr, unsigned ldm,
                      layout_t layout) {
    emu_converge();
    for (int r = 0; r < M; ++r)
        for (int c = 0; c < N; ++c)
            f.x[r * N + c] =
                float(ptr[layout == mem_row_major ? size_t(r) * ldm + c : size_t(c) * ldm + r]);
}

template <int M, int N, int K, class P>
void store_matrix_sync(P ptr, const fragment<accumulator, M, N, K, float>& f, unsigned ldm,
                       layout_t layout) {
    emu_converge();
    if (emu::lane_id() != 0) return;
    for (int r = 0; r < M; ++r)
        for (int c = 0; c < N; ++c)
            ptr[layout == mem_row_major ? size_t(r) * ldm + c : size_t(c) * ldm + r] =
                f.x[r * N + c];
}

template <int M, int N, int K, class TA, class LA, class TB, class LB>
void mma_sync(fragment<accumulator, M, N, K, float>& d,
              const fragment<matrix_a, M, N, K, TA, LA>& a,
              const fragment<matrix_b, M, N, K, TB, LB>& b,
              const fragment<accumulator, M, N, K, float>& c) {
    emu_converge();
    float out[M * N];
    for (int i = 0; i < M; ++i)
        for (int j = 0; j < N; ++j) {
            float acc = c.x[i * N + j];
            for (int k = 0; k < K; ++k)
                acc += emu_to_float(a.x[i * K + k]) * emu_to_float(b.x[k * N + j]);
            out[i * N + j] = acc;
        }
    for (int i = 0; i < M * N; ++i) d.x[i] = out[i];
}

}  // namespace wmma
}  // namespace nvcuda
