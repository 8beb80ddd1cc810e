// Fused similarity → hard incidence for the paper's threshold rule.
//
// Maths: S = F̂F̂ᵀ per image, H_ij = [S_ij > tau], and H_jj = 1 (the centre) always. H is symmetric, so only tiles (ti, tj) with
// ti ≤ tj are computed; tile (ti, tj) writes the bits of rows ti·64.. at columns tj·64.. and,
// when ti < tj, the mirrored bits of rows tj·64.. at columns ti·64... S never reaches global
// memory. Degree counts: deg[i] = Σ_j H_ij, which is both d_v(i) with unit weights and d_e(i)
// (symmetric H); added per 32-bit word with integer atomics, so the result is deterministic.
//
// Bitmask layout: per image N rows of `words` u32 words, words = 2·ceil(N/64); bit (i, j) is bit
// j%32 of word i·words + j/32 — the same bytes as the CPU's u64 words on little-endian.
// Columns ≥ N are 0. The mask needs no clearing: every word is written exactly once.
//
// Threads: grid = (T(T+1)/2 upper tiles, B images), 256 threads. The tile GEMM is SIMT fp32
// (any input dtype) or tensor cores (bf16/f16 only). Epilogue: thread e marks flag (e/64, e%64)
// in shared memory; then each warp packs 16 of the tile's 128 row-words by __ballot_sync over
// 32 flags (lane = column) and 16 of the 128 mirrored row-words (lane = row of the tile).
#include "gemm_tile.cuh"

namespace hipl {

template <class SC, class SF>
__device__ void threshold_epilogue(SC Cs, SF flags, unsigned n, unsigned ti, unsigned tj,
                                   float tau, GPTR(unsigned) mask, GPTR(unsigned) deg) {
    unsigned tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
    unsigned r0 = ti * kTile, c0 = tj * kTile, words = 2 * ((n + 63) / 64);
    bool diagonal = ti == tj;

    for (unsigned e = tid; e < kTile * kTile; e += kThreads) {
        unsigned r = e / kTile, c = e % kTile;
        bool centre = r0 + r == c0 + c;  // the centre belongs to its hyperedge whatever tau is
        bool in = r0 + r < n && c0 + c < n && (centre || tile_s(Cs, r, c, diagonal) > tau);
        flags[e] = in ? 1 : 0;
    }
    __syncthreads();

    for (unsigned w = warp; w < 2 * kTile; w += kThreads / 32) {
        unsigned r = w / 2, half = w % 2;
        unsigned bits = __ballot_sync(kFullMask, flags[r * kTile + half * 32 + lane] != 0);
        if (lane == 0 && r0 + r < n) {
            mask[size_t(r0 + r) * words + c0 / 32 + half] = bits;
            atomicAdd(&deg[r0 + r], unsigned(__popc(bits)));
        }
    }
    if (diagonal) return;
    for (unsigned w = warp; w < 2 * kTile; w += kThreads / 32) {
        unsigned c = w / 2, half = w % 2;
        unsigned bits = __ballot_sync(kFullMask, flags[(half * 32 + lane) * kTile + c] != 0);
        if (lane == 0 && c0 + c < n) {
            mask[size_t(c0 + c) * words + r0 / 32 + half] = bits;
            atomicAdd(&deg[c0 + c], unsigned(__popc(bits)));
        }
    }
}

// fhat: [B, N, D]; mask: [B, N, words]; deg: [B, N], zeroed by the caller.
template <class T>
__device__ void sim_incidence_simt(GPTR(const T) fhat, GPTR(unsigned) mask, GPTR(unsigned) deg,
                                   unsigned n, unsigned d, float tau) {
    HIPL_SHARED(float, As, kSimtK * kSimtLd);
    HIPL_SHARED(float, Bs, kSimtK * kSimtLd);
    HIPL_SHARED(float, Cs, kTile * kCsLd);
    HIPL_SHARED(unsigned char, flags, kTile * kTile);
    unsigned b = blockIdx.y, tiles = (n + kTile - 1) / kTile, ti, tj;
    upper_tile(blockIdx.x, tiles, ti, tj);
    size_t words = 2 * ((n + 63) / 64);

    simt_tile(fhat + size_t(b) * n * d, n, d, ti * kTile, tj * kTile, As, Bs, Cs);
    threshold_epilogue(Cs, flags, n, ti, tj, tau, mask + size_t(b) * n * words,
                       deg + size_t(b) * n);
}

template <class T>
__device__ void sim_incidence_wmma(GPTR(const T) fhat, GPTR(unsigned) mask, GPTR(unsigned) deg,
                                   unsigned n, unsigned d, float tau) {
    HIPL_SHARED(T, As, kTile * kWmmaLd);
    HIPL_SHARED(T, Bs, kTile * kWmmaLd);
    HIPL_SHARED(float, Cs, kTile * kCsLd);
    HIPL_SHARED(unsigned char, flags, kTile * kTile);
    unsigned b = blockIdx.y, tiles = (n + kTile - 1) / kTile, ti, tj;
    upper_tile(blockIdx.x, tiles, ti, tj);
    size_t words = 2 * ((n + 63) / 64);

    wmma_tile(fhat + size_t(b) * n * d, n, d, ti * kTile, tj * kTile, As, Bs, Cs);
    threshold_epilogue(Cs, flags, n, ti, tj, tau, mask + size_t(b) * n * words,
                       deg + size_t(b) * n);
}

}  // namespace hipl

extern "C" __global__ void __launch_bounds__(256)
    sim_incidence_f32(GPTR(const float) fhat, GPTR(unsigned) mask, GPTR(unsigned) deg,
                      unsigned n, unsigned d, float tau) {
    hipl::sim_incidence_simt(fhat, mask, deg, n, d, tau);
}
extern "C" __global__ void __launch_bounds__(256)
    sim_incidence_bf16(GPTR(const __nv_bfloat16) fhat, GPTR(unsigned) mask, GPTR(unsigned) deg,
                       unsigned n, unsigned d, float tau) {
    hipl::sim_incidence_simt(fhat, mask, deg, n, d, tau);
}
extern "C" __global__ void __launch_bounds__(256)
    sim_incidence_f16(GPTR(const __half) fhat, GPTR(unsigned) mask, GPTR(unsigned) deg,
                      unsigned n, unsigned d, float tau) {
    hipl::sim_incidence_simt(fhat, mask, deg, n, d, tau);
}
extern "C" __global__ void __launch_bounds__(256)
    sim_incidence_wmma_bf16(GPTR(const __nv_bfloat16) fhat, GPTR(unsigned) mask,
                            GPTR(unsigned) deg, unsigned n, unsigned d, float tau) {
    hipl::sim_incidence_wmma(fhat, mask, deg, n, d, tau);
}
extern "C" __global__ void __launch_bounds__(256)
    sim_incidence_wmma_f16(GPTR(const __half) fhat, GPTR(unsigned) mask, GPTR(unsigned) deg,
                           unsigned n, unsigned d, float tau) {
    hipl::sim_incidence_wmma(fhat, mask, deg, n, d, tau);
}
