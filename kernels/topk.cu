// Fused similarity → top-k capped and kNN incidence.
//
// Maths: hyperedge j (centred on vertex j) keeps, among the vertices i with S_ij > tau (top-k
// cap) or among all vertices (kNN), the k with the largest S_ij, ties broken by the lower index
// i; the centre j is always kept (it ranks first). Result: bit (i, j) of the mask for each kept
// i, set with atomicOr (the mask must be zeroed by the caller). H is not symmetric here.
//
// Threads: grid = (T row tiles, B), 256 threads. A block owns the 64 hyperedges j = ti·64 + r
// and sweeps all T column tiles of vertices. Each sweep step computes S for 64×64 (j, i) pairs
// with the SIMT tile, then merges each row's candidates into that row's running selection (kept
// sorted, best first, in dynamic shared memory): every element u of (selection ∪ candidates)
// counts the elements ranked above it, and moves to that rank if it is below k. The order is
// strict (score, then index), so ranks are unique and the result is deterministic.
//
// Dynamic shared memory: 4·64·k words (two selections of keys and indices) + 64 counts.
// LIMITATION: k ≤ 64 (the selections live in shared memory), and the tile GEMM is the SIMT
// one for every dtype (no tensor-core variant of the selection yet).
#include "gemm_tile.cuh"

namespace hipl {

constexpr unsigned kTopkMax = 64;  // largest k the shared-memory selection supports

// true when (ka, ia) ranks above (kb, ib).
__device__ __forceinline__ bool ranks_above(float ka, unsigned ia, float kb, unsigned ib) {
    return ka > kb || (ka == kb && ia < ib);
}

template <class T>
__device__ void sim_topk(GPTR(const T) fhat, GPTR(unsigned) mask, unsigned n, unsigned d,
                         unsigned k, float tau, unsigned knn) {
    HIPL_SHARED(float, As, kSimtK * kSimtLd);
    HIPL_SHARED(float, Bs, kSimtK * kSimtLd);
    HIPL_SHARED(float, Cs, kTile * kCsLd);
    HIPL_DYN_SHARED(smem);
    auto key_a = HIPL_SMEM_AS(float, smem);
    auto idx_a = HIPL_SMEM_AS(unsigned, smem + 4 * kTile * k);
    auto key_b = HIPL_SMEM_AS(float, smem + 8 * kTile * k);
    auto idx_b = HIPL_SMEM_AS(unsigned, smem + 12 * kTile * k);
    auto count = HIPL_SMEM_AS(unsigned, smem + 16 * kTile * k);

    if (k == 0 || k > kTopkMax) return;  // uniform over the block: no barrier is skipped
    unsigned tid = threadIdx.x, b = blockIdx.y, ti = blockIdx.x;
    unsigned tiles = (n + kTile - 1) / kTile, r0 = ti * kTile;
    GPTR(const T) x = fhat + size_t(b) * n * d;
    if (tid < kTile) count[tid] = 0;
    bool flip = false;  // false: the selection lives in (key_a, idx_a)

    for (unsigned tj = 0; tj < tiles; ++tj) {
        unsigned c0 = tj * kTile;
        simt_tile(x, n, d, r0, c0, As, Bs, Cs);

        // Candidate keys in place: -inf marks "not a member", +inf the centre.
        for (unsigned e = tid; e < kTile * kTile; e += kThreads) {
            unsigned r = e / kTile, c = e % kTile;
            float s = Cs[r * kCsLd + c];
            float key = -INFINITY;
            if (r0 + r < n && c0 + c < n) {
                if (r0 + r == c0 + c) key = INFINITY;
                else if (knn || s > tau) key = s;
            }
            Cs[r * kCsLd + c] = key;
        }
        __syncthreads();

        auto cur_key = flip ? key_b : key_a;
        auto cur_idx = flip ? idx_b : idx_a;
        auto nxt_key = flip ? key_a : key_b;
        auto nxt_idx = flip ? idx_a : idx_b;
        unsigned span = k + kTile;  // union slots per row: k selection slots, then 64 candidates
        for (unsigned e = tid; e < kTile * span; e += kThreads) {
            unsigned r = e / span, u = e % span, have = count[r];
            float key;
            unsigned idx;
            if (u < k) {
                if (u >= have) continue;
                key = cur_key[r * k + u];
                idx = cur_idx[r * k + u];
            } else {
                key = Cs[r * kCsLd + (u - k)];
                if (key == -INFINITY) continue;
                idx = c0 + (u - k);
            }
            unsigned rank = 0;
            for (unsigned v = 0; v < have; ++v)
                rank += ranks_above(cur_key[r * k + v], cur_idx[r * k + v], key, idx);
            for (unsigned c = 0; c < kTile && rank < k; ++c) {
                float kc = Cs[r * kCsLd + c];
                rank += kc != -INFINITY && ranks_above(kc, c0 + c, key, idx);
            }
            if (rank < k) {
                nxt_key[r * k + rank] = key;
                nxt_idx[r * k + rank] = idx;
            }
        }
        __syncthreads();

        if (tid < kTile) {
            unsigned added = 0;
            for (unsigned c = 0; c < kTile; ++c) added += Cs[tid * kCsLd + c] != -INFINITY;
            count[tid] = umin(k, count[tid] + added);
        }
        flip = !flip;
        __syncthreads();
    }

    auto sel_idx = flip ? idx_b : idx_a;
    size_t words = 2 * ((n + 63) / 64);
    GPTR(unsigned) m = mask + size_t(b) * n * words;
    for (unsigned e = tid; e < kTile * k; e += kThreads) {
        unsigned r = e / k, u = e % k, j = r0 + r;
        if (j >= n || u >= count[r]) continue;
        unsigned i = sel_idx[r * k + u];
        atomicOr(&m[size_t(i) * words + j / 32], 1u << (j % 32));
    }
}

}  // namespace hipl

// knn != 0 selects the kNN rule (tau ignored). Requires 1 ≤ k ≤ 64 (checked by the caller).
extern "C" __global__ void __launch_bounds__(256)
    sim_topk_f32(GPTR(const float) fhat, GPTR(unsigned) mask, unsigned n, unsigned d, unsigned k,
                 float tau, unsigned knn) {
    hipl::sim_topk(fhat, mask, n, d, k, tau, knn);
}
extern "C" __global__ void __launch_bounds__(256)
    sim_topk_bf16(GPTR(const __nv_bfloat16) fhat, GPTR(unsigned) mask, unsigned n, unsigned d,
                  unsigned k, float tau, unsigned knn) {
    hipl::sim_topk(fhat, mask, n, d, k, tau, knn);
}
extern "C" __global__ void __launch_bounds__(256)
    sim_topk_f16(GPTR(const __half) fhat, GPTR(unsigned) mask, unsigned n, unsigned d,
                 unsigned k, float tau, unsigned knn) {
    hipl::sim_topk(fhat, mask, n, d, k, tau, knn);
}
