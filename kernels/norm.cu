// Row normalisation of patch features, forward and backward.
//
// Forward:  f̂_i = f_i · (1 / max(‖f_i‖, eps)), with ‖f_i‖ saved for the backward pass.
// Backward: df_i = (df̂_i − f̂_i ⟨f̂_i, df̂_i⟩) / ‖f_i‖  when ‖f_i‖ > eps,
//           df_i = df̂_i / eps                          otherwise (the divisor was the constant).
// Rows are the B·N rows of a row-major [B, N, D] tensor.
//
// Threads: one warp per row, 8 rows per 256-thread block (grid.x = ceil(rows / 8)). Lanes stride
// over the D columns, partial sums meet in a fixed xor tree, so results are reproducible.
#include "common.cuh"

namespace hipl {

template <class T>
__device__ void normalize_rows(GPTR(const T) f, GPTR(T) fhat, GPTR(float) norms,
                               GPTR(unsigned) first_bad_row, unsigned rows, unsigned d,
                               float eps) {
    unsigned lane = threadIdx.x % 32;
    unsigned row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    if (row >= rows) return;  // whole warps leave together; no barrier follows
    size_t base = size_t(row) * d;

    float ss = 0.0f;
    bool finite = true;
    for (unsigned k = lane; k < d; k += 32) {
        float v = to_f32(f[base + k]);
        finite = finite && is_finite(v);
        ss += v * v;
    }
    ss = warp_sum(ss);
    finite = __all_sync(kFullMask, finite);
    if (!finite) {
        if (lane == 0) atomicMin(&first_bad_row[0], row);
        return;
    }

    float norm = sqrtf(ss);
    float inv = 1.0f / fmaxf(norm, eps);
    for (unsigned k = lane; k < d; k += 32) fhat[base + k] = from_f32<T>(to_f32(f[base + k]) * inv);
    if (lane == 0) norms[row] = norm;
}

template <class T>
__device__ void normalize_rows_bwd(GPTR(const T) fhat, GPTR(const float) norms,
                                   GPTR(const float) dfhat, GPTR(float) df, unsigned rows,
                                   unsigned d, float eps) {
    unsigned lane = threadIdx.x % 32;
    unsigned row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    if (row >= rows) return;
    size_t base = size_t(row) * d;
    float norm = norms[row];

    if (!(norm > eps)) {
        for (unsigned k = lane; k < d; k += 32) df[base + k] = dfhat[base + k] / eps;
        return;
    }
    float dot = 0.0f;
    for (unsigned k = lane; k < d; k += 32) dot += to_f32(fhat[base + k]) * dfhat[base + k];
    dot = warp_sum(dot);
    for (unsigned k = lane; k < d; k += 32)
        df[base + k] = (dfhat[base + k] - to_f32(fhat[base + k]) * dot) / norm;
}

}  // namespace hipl

// One entry per input dtype; the backward pass reads f̂ in the forward's dtype.
extern "C" __global__ void normalize_rows_f32(GPTR(const float) f, GPTR(float) fhat,
                                            GPTR(float) norms, GPTR(unsigned) first_bad_row,
                                            unsigned rows, unsigned d, float eps) {
    hipl::normalize_rows(f, fhat, norms, first_bad_row, rows, d, eps);
}
extern "C" __global__ void normalize_rows_bwd_f32(GPTR(const float) fhat, GPTR(const float) norms,
                                                GPTR(const float) dfhat, GPTR(float) df,
                                                unsigned rows, unsigned d, float eps) {
    hipl::normalize_rows_bwd(fhat, norms, dfhat, df, rows, d, eps);
}
extern "C" __global__ void normalize_rows_bf16(GPTR(const __nv_bfloat16) f, GPTR(__nv_bfloat16) fhat,
                                            GPTR(float) norms, GPTR(unsigned) first_bad_row,
                                            unsigned rows, unsigned d, float eps) {
    hipl::normalize_rows(f, fhat, norms, first_bad_row, rows, d, eps);
}
extern "C" __global__ void normalize_rows_bwd_bf16(GPTR(const __nv_bfloat16) fhat, GPTR(const float) norms,
                                                GPTR(const float) dfhat, GPTR(float) df,
                                                unsigned rows, unsigned d, float eps) {
    hipl::normalize_rows_bwd(fhat, norms, dfhat, df, rows, d, eps);
}
extern "C" __global__ void normalize_rows_f16(GPTR(const __half) f, GPTR(__half) fhat,
                                            GPTR(float) norms, GPTR(unsigned) first_bad_row,
                                            unsigned rows, unsigned d, float eps) {
    hipl::normalize_rows(f, fhat, norms, first_bad_row, rows, d, eps);
}
extern "C" __global__ void normalize_rows_bwd_f16(GPTR(const __half) fhat, GPTR(const float) norms,
                                                GPTR(const float) dfhat, GPTR(float) df,
                                                unsigned rows, unsigned d, float eps) {
    hipl::normalize_rows_bwd(fhat, norms, dfhat, df, rows, d, eps);
}

// Input check on the device: the smallest index of v[0, count) holding a NaN or an infinity, or
// (when nonneg != 0) a negative value, is left in first_bad[0], which the caller sets to
// UINT_MAX; count < 2^32. Grid-stride, 256 threads per block.
extern "C" __global__ void first_bad_f32(GPTR(const float) v, GPTR(unsigned) first_bad,
                                         unsigned count, unsigned nonneg) {
    for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < count;
         i += gridDim.x * blockDim.x) {
        float x = v[i];
        if (!hipl::is_finite(x) || (nonneg && x < 0.0f)) atomicMin(&first_bad[0], i);
    }
}
