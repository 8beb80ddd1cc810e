// Sparse products of the hypergraph convolution over CSR, with the degree scaling fused.
//
// The convolution (symmetric normalisation) is, right to left,
//   Z = Dv^{-1/2} P,   E = W De^{-1} Hᵀ Z (vertex → hyperedge),   Y = Dv^{-1/2} H E
// (random-walk: Z = P and Y = Dv^{-1} H E). Both sparse products have the form
//   out[r] = s_out[r] · Σ_{c ∈ row r of A} s_in[c] · x[c]
// with A = Hᵀ (v→e) or H (e→v) as CSR, and optional per-row scale vectors (null = 1).
// When the CSR holds the complement (complement[b] = 1), Σ over A's row is
// Σ_c s_in[c] x[c] − Σ over the complement's row; colsum_scaled_* precomputes the first term.
//
// degree_scales_u32 / _f32 turn degrees into the scale vectors, zero degree → 0 (never NaN):
//   v_inv_sqrt = d_v^{-1/2}, v_inv = d_v^{-1}, e_scale = w / d_e.
//
// Threads (spmm_gather_*): grid = (N rows, B), 128 threads; thread t accumulates columns
// t, t+128, … (four at a time) over the row's entries in CSR order — deterministic.
#include "common.cuh"

namespace hipl {

constexpr unsigned kSpmmThreads = 128;
constexpr unsigned kSpmmCols = 4;  // columns per thread per pass

template <class T>
__device__ void spmm_gather(GPTR(const unsigned) row_ptr, GPTR(const unsigned) col_idx,
                            GPTR(const unsigned) complement, GPTR(const T) x,
                            GPTR(const float) s_in, GPTR(const float) s_out,
                            GPTR(const float) colsum, GPTR(float) out, unsigned n, unsigned d,
                            unsigned cap) {
    unsigned r = blockIdx.x, b = blockIdx.y, t = threadIdx.x;
    unsigned lo = row_ptr[size_t(b) * (n + 1) + r], hi = row_ptr[size_t(b) * (n + 1) + r + 1];
    bool comp = complement[b] != 0;
    GPTR(const unsigned) cols = col_idx + size_t(b) * cap;
    GPTR(const T) xb = x + size_t(b) * n * d;
    float so = s_out ? s_out[size_t(b) * n + r] : 1.0f;

    for (unsigned d0 = 0; d0 < d; d0 += kSpmmThreads * kSpmmCols) {
        float acc[kSpmmCols];
        for (unsigned q = 0; q < kSpmmCols; ++q) acc[q] = 0.0f;
        for (unsigned p = lo; p < hi; ++p) {
            unsigned c = cols[p];
            float si = s_in ? s_in[size_t(b) * n + c] : 1.0f;
            for (unsigned q = 0; q < kSpmmCols; ++q) {
                unsigned col = d0 + t + q * kSpmmThreads;
                if (col < d) acc[q] += si * to_f32(xb[size_t(c) * d + col]);
            }
        }
        for (unsigned q = 0; q < kSpmmCols; ++q) {
            unsigned col = d0 + t + q * kSpmmThreads;
            if (col >= d) continue;
            float v = comp ? colsum[size_t(b) * d + col] - acc[q] : acc[q];
            out[(size_t(b) * n + r) * d + col] = so * v;
        }
    }
}

// colsum[b, col] = Σ_c s_in[c] x[b, c, col], in row order. grid = (ceil(D / 128), B), 128 threads.
template <class T>
__device__ void colsum_scaled(GPTR(const T) x, GPTR(const float) s_in, GPTR(float) colsum,
                              unsigned n, unsigned d) {
    unsigned col = blockIdx.x * blockDim.x + threadIdx.x, b = blockIdx.y;
    if (col >= d) return;
    float s = 0.0f;
    for (unsigned c = 0; c < n; ++c) {
        float si = s_in ? s_in[size_t(b) * n + c] : 1.0f;
        s += si * to_f32(x[(size_t(b) * n + c) * d + col]);
    }
    colsum[size_t(b) * d + col] = s;
}

__device__ __forceinline__ void write_scales(size_t i, float dv, float de, float w,
                                             GPTR(float) v_inv_sqrt, GPTR(float) v_inv,
                                             GPTR(float) e_scale) {
    v_inv_sqrt[i] = dv > 0.0f ? 1.0f / sqrtf(dv) : 0.0f;
    v_inv[i] = dv > 0.0f ? 1.0f / dv : 0.0f;
    e_scale[i] = de > 0.0f ? w / de : 0.0f;
}

}  // namespace hipl

extern "C" __global__ void __launch_bounds__(128)
    spmm_gather_f32(GPTR(const unsigned) row_ptr, GPTR(const unsigned) col_idx,
                    GPTR(const unsigned) complement, GPTR(const float) x, GPTR(const float) s_in,
                    GPTR(const float) s_out, GPTR(const float) colsum, GPTR(float) out,
                    unsigned n, unsigned d, unsigned cap) {
    hipl::spmm_gather(row_ptr, col_idx, complement, x, s_in, s_out, colsum, out, n, d, cap);
}
extern "C" __global__ void __launch_bounds__(128)
    spmm_gather_bf16(GPTR(const unsigned) row_ptr, GPTR(const unsigned) col_idx,
                     GPTR(const unsigned) complement, GPTR(const __nv_bfloat16) x,
                     GPTR(const float) s_in, GPTR(const float) s_out, GPTR(const float) colsum,
                     GPTR(float) out, unsigned n, unsigned d, unsigned cap) {
    hipl::spmm_gather(row_ptr, col_idx, complement, x, s_in, s_out, colsum, out, n, d, cap);
}
extern "C" __global__ void __launch_bounds__(128)
    spmm_gather_f16(GPTR(const unsigned) row_ptr, GPTR(const unsigned) col_idx,
                    GPTR(const unsigned) complement, GPTR(const __half) x, GPTR(const float) s_in,
                    GPTR(const float) s_out, GPTR(const float) colsum, GPTR(float) out,
                    unsigned n, unsigned d, unsigned cap) {
    hipl::spmm_gather(row_ptr, col_idx, complement, x, s_in, s_out, colsum, out, n, d, cap);
}

extern "C" __global__ void colsum_scaled_f32(GPTR(const float) x, GPTR(const float) s_in,
                                             GPTR(float) colsum, unsigned n, unsigned d) {
    hipl::colsum_scaled(x, s_in, colsum, n, d);
}
extern "C" __global__ void colsum_scaled_bf16(GPTR(const __nv_bfloat16) x, GPTR(const float) s_in,
                                              GPTR(float) colsum, unsigned n, unsigned d) {
    hipl::colsum_scaled(x, s_in, colsum, n, d);
}
extern "C" __global__ void colsum_scaled_f16(GPTR(const __half) x, GPTR(const float) s_in,
                                             GPTR(float) colsum, unsigned n, unsigned d) {
    hipl::colsum_scaled(x, s_in, colsum, n, d);
}

// Hard incidence: d_e as u32 counts. count = B·N; one thread per entry, 256 threads.
// w [B, N] or null (unit weights).
extern "C" __global__ void degree_scales_u32(GPTR(const float) d_v, GPTR(const unsigned) d_e,
                                             GPTR(const float) w, GPTR(float) v_inv_sqrt,
                                             GPTR(float) v_inv, GPTR(float) e_scale,
                                             unsigned count) {
    unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= count) return;
    hipl::write_scales(i, d_v[i], float(d_e[i]), w ? w[i] : 1.0f, v_inv_sqrt, v_inv, e_scale);
}

// Soft incidence: d_e as f32 sums.
extern "C" __global__ void degree_scales_f32(GPTR(const float) d_v, GPTR(const float) d_e,
                                             GPTR(const float) w, GPTR(float) v_inv_sqrt,
                                             GPTR(float) v_inv, GPTR(float) e_scale,
                                             unsigned count) {
    unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= count) return;
    hipl::write_scales(i, d_v[i], d_e[i], w ? w[i] : 1.0f, v_inv_sqrt, v_inv, e_scale);
}

// y[b, r, :] = s[b, r] · x[b, r, :] (the soft path's diagonal scalings around cuBLAS).
// rows = B·N; grid = (ceil(D / 128), rows), 128 threads.
extern "C" __global__ void scale_rows_f32(GPTR(const float) x, GPTR(const float) s, GPTR(float) y,
                                          unsigned rows, unsigned d) {
    unsigned col = blockIdx.x * blockDim.x + threadIdx.x, r = blockIdx.y;
    if (col >= d || r >= rows) return;
    y[size_t(r) * d + col] = s[r] * x[size_t(r) * d + col];
}
