// Bitmask → CSR of the sparser of H and its complement H̄ = 1 − H, plus the bit transpose and
// the weighted vertex degree.
//
// Bitmask layout (see incidence.cu): per image N rows of `words` = 2·ceil(N/64) u32 words.
//
// 1. mask_row_counts_u32: cnt[i] = Σ_j H_ij (popcount). One warp per row, lanes over words.
// 2. csr_scan_u32: per image, total = Σ_i cnt[i]; the complement is stored when
//    2·total > N² (ties keep H). Row lengths become cnt[i] or N − cnt[i]; row_ptr is their
//    exclusive prefix sum (N+1 entries), complement[b] records the choice. One block per image,
//    256 threads, scanning 256 rows at a time (warp scans, then a scan of the 8 warp totals).
// 3. csr_fill_u32: col_idx of each row in increasing column order. One warp per row; lane l
//    takes word l of each 32-word chunk (inverted and masked to N columns for H̄), a warp scan
//    of the popcounts gives each lane its output offset, and __ffs walks the set bits.
//    col_idx of image b starts at b·cap, cap = max(1, ⌊N²/2⌋) ≥ nnz of the chosen matrix.
// 4. mask_transpose_u32: Hᵀ from H, one warp per 32×32 bit block: lane l loads row r0+l's word,
//    and ballot b over bit b of every lane's word is column c0+b across the 32 rows.
// 5. weighted_degree_f32: d_v(i) = Σ_j H_ij w_j (w null: unit weights). One warp per row;
//    lanes walk their words' set bits in order and meet in a fixed xor tree.
#include "common.cuh"

namespace hipl {

__device__ __forceinline__ unsigned row_words(unsigned n) { return 2 * ((n + 63) / 64); }

// Bits of word `wi` that are real columns (< n).
__device__ __forceinline__ unsigned valid_bits(unsigned wi, unsigned n) {
    unsigned lo = wi * 32;
    if (lo >= n) return 0;
    return n - lo >= 32 ? kFullMask : (1u << (n - lo)) - 1;
}

}  // namespace hipl

using hipl::kFullMask;

// grid = (ceil(N / 8), B), 256 threads.
extern "C" __global__ void mask_row_counts_u32(GPTR(const unsigned) mask, GPTR(unsigned) cnt,
                                               unsigned n) {
    unsigned lane = threadIdx.x % 32, b = blockIdx.y;
    unsigned row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    if (row >= n) return;
    unsigned words = hipl::row_words(n);
    size_t base = (size_t(b) * n + row) * words;
    unsigned c = 0;
    for (unsigned w = lane; w < words; w += 32) c += __popc(mask[base + w]);
    c = hipl::warp_sum_u32(c);
    if (lane == 0) cnt[size_t(b) * n + row] = c;
}

// grid = (1, B), 256 threads. cnt [B, N] in; row_ptr [B, N+1], complement [B] out.
extern "C" __global__ void __launch_bounds__(256)
    csr_scan_u32(GPTR(const unsigned) cnt, GPTR(unsigned) row_ptr, GPTR(unsigned) complement,
                 unsigned n) {
    HIPL_SHARED(unsigned, warp_tot, 8);
    HIPL_SHARED(unsigned long long, total_sh, 1);
    unsigned tid = threadIdx.x, lane = tid % 32, warp = tid / 32, b = blockIdx.y;
    GPTR(const unsigned) c = cnt + size_t(b) * n;
    GPTR(unsigned) rp = row_ptr + size_t(b) * (n + 1);

    unsigned long long part = 0;
    for (unsigned i = tid; i < n; i += 256) part += c[i];
    for (int o = 16; o > 0; o >>= 1) part += __shfl_xor_sync(kFullMask, part, o);
    if (lane == 0) warp_tot[warp] = unsigned(part);  // ≤ N²/8 per warp: fits for N < 2^17
    __syncthreads();
    if (tid == 0) {
        unsigned long long t = 0;
        for (unsigned w = 0; w < 8; ++w) t += warp_tot[w];
        total_sh[0] = t;
    }
    __syncthreads();
    unsigned long long total = total_sh[0];
    bool comp = 2 * total > (unsigned long long)n * n;
    if (tid == 0) complement[b] = comp ? 1 : 0;

    unsigned carry = 0;
    for (unsigned i0 = 0; i0 < n; i0 += 256) {
        unsigned i = i0 + tid;
        unsigned v = i < n ? (comp ? n - c[i] : c[i]) : 0;
        unsigned incl = hipl::warp_inclusive_scan(v, lane);
        __syncthreads();  // warp_tot is reused: earlier readers must be done
        if (lane == 31) warp_tot[warp] = incl;
        __syncthreads();
        unsigned before = carry;
        for (unsigned w = 0; w < warp; ++w) before += warp_tot[w];
        if (i < n) rp[i] = before + incl - v;
        for (unsigned w = 0; w < 8; ++w) carry += warp_tot[w];
    }
    if (tid == 0) rp[n] = carry;
}

// grid = (ceil(N / 8), B), 256 threads.
extern "C" __global__ void csr_fill_u32(GPTR(const unsigned) mask, GPTR(const unsigned) row_ptr,
                                        GPTR(const unsigned) complement, GPTR(unsigned) col_idx,
                                        unsigned n, unsigned cap) {
    unsigned lane = threadIdx.x % 32, b = blockIdx.y;
    unsigned row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    if (row >= n) return;
    unsigned words = hipl::row_words(n);
    bool comp = complement[b] != 0;
    GPTR(const unsigned) m = mask + (size_t(b) * n + row) * words;
    GPTR(unsigned) out = col_idx + size_t(b) * cap;
    unsigned pos = row_ptr[size_t(b) * (n + 1) + row];

    for (unsigned w0 = 0; w0 < words; w0 += 32) {
        unsigned wi = w0 + lane;
        unsigned bits = wi < words ? m[wi] : 0;
        if (comp) bits = ~bits & hipl::valid_bits(wi, n);
        unsigned c = __popc(bits);
        unsigned incl = hipl::warp_inclusive_scan(c, lane);
        unsigned p = pos + incl - c;
        while (bits) {
            unsigned bit = __ffs(int(bits)) - 1;
            out[p++] = wi * 32 + bit;
            bits &= bits - 1;
        }
        pos += __shfl_sync(kFullMask, incl, 31);
    }
}

// grid = (words, ceil(words / 8), B), 256 threads: block (x, y) transposes column word x for
// the row words 8y..8y+7 (one per warp). Padding words of mask_t come out zero.
extern "C" __global__ void mask_transpose_u32(GPTR(const unsigned) mask, GPTR(unsigned) mask_t,
                                              unsigned n) {
    unsigned lane = threadIdx.x % 32, words = hipl::row_words(n), b = blockIdx.z;
    unsigned cw = blockIdx.x, rw = blockIdx.y * (blockDim.x / 32) + threadIdx.x / 32;
    if (rw >= words) return;
    size_t base = size_t(b) * n * words;
    unsigned r = rw * 32 + lane;
    unsigned mine = r < n ? mask[base + size_t(r) * words + cw] : 0;
    unsigned out = 0;
    for (unsigned bit = 0; bit < 32; ++bit) {
        unsigned col = __ballot_sync(kFullMask, (mine >> bit) & 1);
        if (lane == bit) out = col;
    }
    unsigned c = cw * 32 + lane;
    if (c < n) mask_t[base + size_t(c) * words + rw] = out;
}

// grid = (ceil(N / 8), B), 256 threads. w [B, N] or null; d_v [B, N].
extern "C" __global__ void weighted_degree_f32(GPTR(const unsigned) mask, GPTR(const float) w,
                                               GPTR(float) d_v, unsigned n) {
    unsigned lane = threadIdx.x % 32, b = blockIdx.y;
    unsigned row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    if (row >= n) return;
    unsigned words = hipl::row_words(n);
    GPTR(const unsigned) m = mask + (size_t(b) * n + row) * words;
    float s = 0.0f;
    for (unsigned wi = lane; wi < words; wi += 32) {
        unsigned bits = m[wi];
        while (bits) {
            unsigned bit = __ffs(int(bits)) - 1;
            s += w ? w[size_t(b) * n + wi * 32 + bit] : 1.0f;
            bits &= bits - 1;
        }
    }
    s = hipl::warp_sum(s);
    if (lane == 0) d_v[size_t(b) * n + row] = s;
}
