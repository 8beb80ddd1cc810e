// Soft incidence: fused similarity + sigmoid, its degree sums, and the elementwise backward.
//
// Forward: I = σ(alpha (S − tau)) with S = F̂F̂ᵀ, written dense [B, N, N] (I is symmetric; the
// upper tiles are computed and mirrored). Degrees: d_v(i) = Σ_j I_ij w_j, d_e(j) = Σ_i I_ij.
// Each tile also writes, for each of its rows, the partial sums over its 64 columns (and the
// mirrored partials) into part_w / part_1 [B, T, N]; soft_degrees_f32 adds the T partials of a
// row in tile order. Every partial is written once, so the sums are deterministic.
// Backward: dS = dI ⊙ alpha I (1 − I) (also the straight-through estimator's ∂I/∂S).
//
// Threads (sim_sigmoid_*): grid = (T(T+1)/2 upper tiles, B), 256 threads; tile GEMM as in
// gemm_tile.cuh; in the epilogue thread e writes I at tile element e (row-major, so stores are
// coalesced), mirrored stores read the tile transposed, and warp w sums rows w, w+8, ….
#include "gemm_tile.cuh"

namespace hipl {

__device__ __forceinline__ float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

template <class SC>
__device__ void sigmoid_epilogue(SC Cs, unsigned n, unsigned tiles, unsigned ti, unsigned tj,
                                 float alpha, float tau, GPTR(const float) w, GPTR(float) inc,
                                 GPTR(float) part_w, GPTR(float) part_1) {
    unsigned tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
    unsigned r0 = ti * kTile, c0 = tj * kTile;
    bool diagonal = ti == tj;

    for (unsigned e = tid; e < kTile * kTile; e += kThreads) {
        unsigned r = e / kTile, c = e % kTile;
        if (r0 + r < n && c0 + c < n)
            inc[size_t(r0 + r) * n + c0 + c] = sigmoid(alpha * (tile_s(Cs, r, c, diagonal) - tau));
        if (!diagonal && c0 + r < n && r0 + c < n)
            inc[size_t(c0 + r) * n + r0 + c] = sigmoid(alpha * (Cs[c * kCsLd + r] - tau));
    }

    // Row partials over this tile's columns (for rows r0..), then the mirrored ones.
    for (unsigned r = warp; r < kTile; r += kThreads / 32) {
        float s1 = 0.0f, sw = 0.0f;
        for (unsigned c = lane; c < kTile; c += 32) {
            if (r0 + r >= n || c0 + c >= n) continue;
            float v = sigmoid(alpha * (tile_s(Cs, r, c, diagonal) - tau));
            s1 += v;
            sw += v * (w ? w[c0 + c] : 1.0f);
        }
        s1 = warp_sum(s1);
        sw = warp_sum(sw);
        if (lane == 0 && r0 + r < n) {
            part_1[size_t(tj) * n + r0 + r] = s1;
            part_w[size_t(tj) * n + r0 + r] = sw;
        }
    }
    if (diagonal) return;
    for (unsigned c = warp; c < kTile; c += kThreads / 32) {
        float s1 = 0.0f, sw = 0.0f;
        for (unsigned r = lane; r < kTile; r += 32) {
            if (r0 + r >= n || c0 + c >= n) continue;
            float v = sigmoid(alpha * (Cs[r * kCsLd + c] - tau));
            s1 += v;
            sw += v * (w ? w[r0 + r] : 1.0f);
        }
        s1 = warp_sum(s1);
        sw = warp_sum(sw);
        if (lane == 0 && c0 + c < n) {
            part_1[size_t(ti) * n + c0 + c] = s1;
            part_w[size_t(ti) * n + c0 + c] = sw;
        }
    }
    (void)tiles;
}

// fhat [B, N, D]; w [B, N] or null (unit weights); inc [B, N, N]; part_w, part_1 [B, T, N].
template <class T>
__device__ void sim_sigmoid_simt(GPTR(const T) fhat, GPTR(const float) w, GPTR(float) inc,
                                 GPTR(float) part_w, GPTR(float) part_1, unsigned n, unsigned d,
                                 float alpha, float tau) {
    HIPL_SHARED(float, As, kSimtK * kSimtLd);
    HIPL_SHARED(float, Bs, kSimtK * kSimtLd);
    HIPL_SHARED(float, Cs, kTile * kCsLd);
    unsigned b = blockIdx.y, tiles = (n + kTile - 1) / kTile, ti, tj;
    upper_tile(blockIdx.x, tiles, ti, tj);

    simt_tile(fhat + size_t(b) * n * d, n, d, ti * kTile, tj * kTile, As, Bs, Cs);
    GPTR(const float) wb = w ? w + size_t(b) * n : w;
    sigmoid_epilogue(Cs, n, tiles, ti, tj, alpha, tau, wb, inc + size_t(b) * n * n,
                     part_w + size_t(b) * tiles * n, part_1 + size_t(b) * tiles * n);
}

template <class T>
__device__ void sim_sigmoid_wmma(GPTR(const T) fhat, GPTR(const float) w, GPTR(float) inc,
                                 GPTR(float) part_w, GPTR(float) part_1, unsigned n, unsigned d,
                                 float alpha, float tau) {
    HIPL_SHARED(T, As, kTile * kWmmaLd);
    HIPL_SHARED(T, Bs, kTile * kWmmaLd);
    HIPL_SHARED(float, Cs, kTile * kCsLd);
    unsigned b = blockIdx.y, tiles = (n + kTile - 1) / kTile, ti, tj;
    upper_tile(blockIdx.x, tiles, ti, tj);

    wmma_tile(fhat + size_t(b) * n * d, n, d, ti * kTile, tj * kTile, As, Bs, Cs);
    GPTR(const float) wb = w ? w + size_t(b) * n : w;
    sigmoid_epilogue(Cs, n, tiles, ti, tj, alpha, tau, wb, inc + size_t(b) * n * n,
                     part_w + size_t(b) * tiles * n, part_1 + size_t(b) * tiles * n);
}

}  // namespace hipl

extern "C" __global__ void __launch_bounds__(256)
    sim_sigmoid_f32(GPTR(const float) fhat, GPTR(const float) w, GPTR(float) inc,
                    GPTR(float) part_w, GPTR(float) part_1, unsigned n, unsigned d, float alpha,
                    float tau) {
    hipl::sim_sigmoid_simt(fhat, w, inc, part_w, part_1, n, d, alpha, tau);
}
extern "C" __global__ void __launch_bounds__(256)
    sim_sigmoid_wmma_bf16(GPTR(const __nv_bfloat16) fhat, GPTR(const float) w, GPTR(float) inc,
                          GPTR(float) part_w, GPTR(float) part_1, unsigned n, unsigned d,
                          float alpha, float tau) {
    hipl::sim_sigmoid_wmma(fhat, w, inc, part_w, part_1, n, d, alpha, tau);
}
extern "C" __global__ void __launch_bounds__(256)
    sim_sigmoid_wmma_f16(GPTR(const __half) fhat, GPTR(const float) w, GPTR(float) inc,
                         GPTR(float) part_w, GPTR(float) part_1, unsigned n, unsigned d,
                         float alpha, float tau) {
    hipl::sim_sigmoid_wmma(fhat, w, inc, part_w, part_1, n, d, alpha, tau);
}

// d_v(i) = Σ_t part_w[t, i], d_e(i) = Σ_t part_1[t, i] in tile order. One thread per (i, b):
// grid = (ceil(N / 256), B), 256 threads.
extern "C" __global__ void soft_degrees_f32(GPTR(const float) part_w, GPTR(const float) part_1,
                                            GPTR(float) d_v, GPTR(float) d_e, unsigned n,
                                            unsigned tiles) {
    unsigned i = blockIdx.x * blockDim.x + threadIdx.x, b = blockIdx.y;
    if (i >= n) return;
    size_t base = size_t(b) * tiles * n;
    float sw = 0.0f, s1 = 0.0f;
    for (unsigned t = 0; t < tiles; ++t) {
        sw += part_w[base + size_t(t) * n + i];
        s1 += part_1[base + size_t(t) * n + i];
    }
    d_v[size_t(b) * n + i] = sw;
    d_e[size_t(b) * n + i] = s1;
}

// dS = dI ⊙ alpha I (1 − I), elementwise over `count` entries; one thread per entry
// (grid-stride loop, 256 threads).
extern "C" __global__ void sigmoid_bwd_f32(GPTR(const float) inc, GPTR(const float) d_inc,
                                           GPTR(float) d_s, unsigned long long count,
                                           float alpha) {
    for (size_t e = size_t(blockIdx.x) * blockDim.x + threadIdx.x; e < count;
         e += size_t(gridDim.x) * blockDim.x) {
        float v = inc[e];
        d_s[e] = d_inc[e] * alpha * v * (1.0f - v);
    }
}

// Soft incidence under a selection rule (top-k cap, kNN): I_ie is kept where bit (i, e) of the
// hard selection mask is set and zeroed elsewhere. count = B·N·N entries; grid-stride, 256
// threads per block.
extern "C" __global__ void mask_dense_f32(GPTR(float) inc, GPTR(const unsigned) mask, unsigned n,
                                          unsigned long long count) {
    size_t words = 2 * ((n + 63) / 64);
    for (size_t e = size_t(blockIdx.x) * blockDim.x + threadIdx.x; e < count;
         e += size_t(gridDim.x) * blockDim.x) {
        size_t row = e / n;  // b·N + i
        unsigned col = unsigned(e % n);
        if (!((mask[row * words + col / 32] >> (col % 32)) & 1)) inc[e] = 0.0f;
    }
}

// The dense 0/1 incidence of a hard bitmask (the candle incidence op's output): out[e] = bit
// (i, col) of row b·N + i, for e = (b·N + i)·N + col. count = B·N·N entries; grid-stride, 256
// threads per block.
extern "C" __global__ void mask_to_dense_f32(GPTR(float) out, GPTR(const unsigned) mask,
                                             unsigned n, unsigned long long count) {
    size_t words = 2 * ((n + 63) / 64);
    for (size_t e = size_t(blockIdx.x) * blockDim.x + threadIdx.x; e < count;
         e += size_t(gridDim.x) * blockDim.x) {
        size_t row = e / n;  // b·N + i
        unsigned col = unsigned(e % n);
        out[e] = float((mask[row * words + col / 32] >> (col % 32)) & 1);
    }
}

// Degrees of a dense incidence [B, N, N] (used after masking, when I is no longer symmetric):
// d_v(i) = Σ_e I_ie w_e (row i, in column order), d_e(e) = Σ_i I_ie (column e, in row order).
// One thread per (index, image): grid = (ceil(N / 256), B), 256 threads.
extern "C" __global__ void dense_degrees_f32(GPTR(const float) inc, GPTR(const float) w,
                                             GPTR(float) d_v, GPTR(float) d_e, unsigned n) {
    unsigned i = blockIdx.x * blockDim.x + threadIdx.x, b = blockIdx.y;
    if (i >= n) return;
    GPTR(const float) h = inc + size_t(b) * n * n;
    float sv = 0.0f, se = 0.0f;
    for (unsigned j = 0; j < n; ++j) {
        sv += h[size_t(i) * n + j] * (w ? w[size_t(b) * n + j] : 1.0f);
        se += h[size_t(j) * n + i];
    }
    d_v[size_t(b) * n + i] = sv;
    d_e[size_t(b) * n + i] = se;
}
