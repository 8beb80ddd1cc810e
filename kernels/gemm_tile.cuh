// The similarity tile shared by the fused similarity kernels: S[r0.., c0..] = F̂[r0..] F̂[c0..]ᵀ
// for one 64×64 tile of one image, left in shared memory (Cs, row stride kCsLd) for an
// epilogue. F̂ is row-major [N, D] (already offset to the image); rows ≥ N and columns ≥ D read
// as zero. Both variants use 256 threads and end with a barrier, so Cs is ready to read.
#pragma once
#include "common.cuh"

namespace hipl {

// LIMITATION: both tile GEMMs stage operands with plain loads and one buffer (no cp.async,
// no double buffering, 64×64 tiles); they are correct and spill-free but unmeasured on a GPU,
// and likely below cuBLAS. Pipelining the K loop is the next step if the bench asks for it.

constexpr unsigned kTile = 64;          // rows and columns of S per block
constexpr unsigned kThreads = 256;      // threads per block of the similarity kernels
constexpr unsigned kCsLd = kTile + 4;   // row stride of the S tile in shared memory
constexpr unsigned kSimtK = 16;         // SIMT: depth of one K step
constexpr unsigned kSimtLd = kTile + 4;  // SIMT: stride of the k-major operand tiles
constexpr unsigned kWmmaK = 32;         // tensor cores: depth of one K step
constexpr unsigned kWmmaLd = kWmmaK + 8;  // tensor cores: stride of the row-major operand tiles

// Upper-triangle tile `linear` (row-major over ti ≤ tj) of a T×T tile grid.
__device__ __forceinline__ void upper_tile(unsigned linear, unsigned tiles, unsigned& ti,
                                           unsigned& tj) {
    ti = 0;
    while (linear >= tiles - ti) {
        linear -= tiles - ti;
        ++ti;
    }
    tj = ti + linear;
}

// SIMT fp32 tile. Thread (ty, tx) = (tid / 16, tid % 16) owns the 4×4 outputs at rows
// ty + 16i, columns tx + 16j; each K step stages 16 columns of both operands k-major in As/Bs.
template <class T, class SA, class SC>
__device__ void simt_tile(GPTR(const T) x, unsigned n, unsigned d, unsigned r0, unsigned c0,
                          SA As, SA Bs, SC Cs) {
    unsigned tid = threadIdx.x, ty = tid / 16, tx = tid % 16;
    float acc[4][4];
    for (int i = 0; i < 4; ++i)
        for (int j = 0; j < 4; ++j) acc[i][j] = 0.0f;

    for (unsigned k0 = 0; k0 < d; k0 += kSimtK) {
        for (unsigned q = 0; q < kTile * kSimtK / kThreads; ++q) {
            unsigned e = tid + kThreads * q, m = e / kSimtK, k = e % kSimtK;
            unsigned gk = k0 + k, ga = r0 + m, gb = c0 + m;
            As[k * kSimtLd + m] = ga < n && gk < d ? to_f32(x[size_t(ga) * d + gk]) : 0.0f;
            Bs[k * kSimtLd + m] = gb < n && gk < d ? to_f32(x[size_t(gb) * d + gk]) : 0.0f;
        }
        __syncthreads();
        for (unsigned k = 0; k < kSimtK; ++k) {
            float a[4], b[4];
            for (int i = 0; i < 4; ++i) a[i] = As[k * kSimtLd + ty + 16 * i];
            for (int j = 0; j < 4; ++j) b[j] = Bs[k * kSimtLd + tx + 16 * j];
            for (int i = 0; i < 4; ++i)
                for (int j = 0; j < 4; ++j) acc[i][j] += a[i] * b[j];
        }
        __syncthreads();
    }
    for (int i = 0; i < 4; ++i)
        for (int j = 0; j < 4; ++j) Cs[(ty + 16 * i) * kCsLd + tx + 16 * j] = acc[i][j];
    __syncthreads();
}

// Tensor-core tile (bf16/f16 in, f32 accumulate). Warp w owns rows 16·(w/2).. and the two
// 16×16 fragments at columns 32·(w%2) and 32·(w%2)+16. Operands are staged row-major
// [64][kWmmaLd]; F̂[c0..] read column-major is exactly the matrix_b operand F̂ᵀ.
template <class T, class SA, class SC>
__device__ void wmma_tile(GPTR(const T) x, unsigned n, unsigned d, unsigned r0, unsigned c0,
                          SA As, SA Bs, SC Cs) {
    namespace wmma = nvcuda::wmma;
    unsigned tid = threadIdx.x, warp = tid / 32;
    unsigned wr = (warp / 2) * 16, wc = (warp % 2) * 32;
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc0, acc1;
    wmma::fill_fragment(acc0, 0.0f);
    wmma::fill_fragment(acc1, 0.0f);
    T zero = from_f32<T>(0.0f);

    for (unsigned k0 = 0; k0 < d; k0 += kWmmaK) {
        for (unsigned q = 0; q < kTile * kWmmaK / kThreads; ++q) {
            unsigned e = tid + kThreads * q, m = e / kWmmaK, k = e % kWmmaK;
            unsigned gk = k0 + k, ga = r0 + m, gb = c0 + m;
            As[m * kWmmaLd + k] = ga < n && gk < d ? x[size_t(ga) * d + gk] : zero;
            Bs[m * kWmmaLd + k] = gb < n && gk < d ? x[size_t(gb) * d + gk] : zero;
        }
        __syncthreads();
        for (unsigned kk = 0; kk < kWmmaK; kk += 16) {
            wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> a;
            wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::col_major> b0, b1;
            wmma::load_matrix_sync(a, As + wr * kWmmaLd + kk, kWmmaLd);
            wmma::load_matrix_sync(b0, Bs + wc * kWmmaLd + kk, kWmmaLd);
            wmma::load_matrix_sync(b1, Bs + (wc + 16) * kWmmaLd + kk, kWmmaLd);
            wmma::mma_sync(acc0, a, b0, acc0);
            wmma::mma_sync(acc1, a, b1, acc1);
        }
        __syncthreads();
    }
    wmma::store_matrix_sync(Cs + wr * kCsLd + wc, acc0, kCsLd, wmma::mem_row_major);
    wmma::store_matrix_sync(Cs + wr * kCsLd + wc + 16, acc1, kCsLd, wmma::mem_row_major);
    __syncthreads();
}

// S at tile position (r, c). On diagonal tiles the lower half mirrors the upper one, so the
// rule sees an exactly symmetric S whatever order the hardware summed in.
template <class SC>
__device__ __forceinline__ float tile_s(SC Cs, unsigned r, unsigned c, bool diagonal) {
    if (diagonal && r > c) return Cs[c * kCsLd + r];
    return Cs[r * kCsLd + c];
}

}  // namespace hipl
