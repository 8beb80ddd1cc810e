// Planted kernels for the emulator's own tests (host emulation only; never built by nvcc).
// Each one either must run cleanly or must be caught by a specific check.
#include "../common.cuh"

// Correct: neighbours exchange through shared memory with a barrier between write and read.
extern "C" __global__ void emu_rotate_with_barrier(GPTR(unsigned) out) {
    HIPL_SHARED(unsigned, sh, 256);
    unsigned t = threadIdx.x;
    sh[t] = t * 10;
    __syncthreads();
    out[blockIdx.x * blockDim.x + t] = sh[(t + 1) % blockDim.x];
}

// Bug: the barrier between the write and the neighbour's read is missing.
extern "C" __global__ void emu_rotate_missing_barrier(GPTR(unsigned) out) {
    HIPL_SHARED(unsigned, sh, 256);
    unsigned t = threadIdx.x;
    sh[t] = t * 10;
    out[blockIdx.x * blockDim.x + t] = sh[(t + 1) % blockDim.x];
}

// Bug: no `if (i < n)` guard, so the last block writes past the end of `out`.
extern "C" __global__ void emu_fill_unguarded(GPTR(float) out, unsigned n) {
    unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
    (void)n;
    out[i] = 1.0f;
}

// Bug: shared index one past the array for the last thread.
extern "C" __global__ void emu_shared_overflow(GPTR(unsigned) out) {
    HIPL_SHARED(unsigned, sh, 64);
    unsigned t = threadIdx.x;
    sh[t + 1] = t;
    __syncthreads();
    out[t] = 0;
}

// Bug: only half the block reaches the barrier.
extern "C" __global__ void emu_divergent_barrier(GPTR(unsigned) out) {
    unsigned t = threadIdx.x;
    if (t < blockDim.x / 2) __syncthreads();
    out[t] = t;
}

// Bug: reads shared memory nobody wrote.
extern "C" __global__ void emu_uninitialised_read(GPTR(float) out) {
    HIPL_SHARED(float, sh, 64);
    unsigned t = threadIdx.x;
    if (t % 2 == 0) sh[t] = 1.0f;
    __syncthreads();
    out[t] = sh[t];
}

// Correct: warp intrinsics with known answers, written per thread.
// out[5·t + 0] = lane^1 via xor shuffle, [1] = ballot of (lane % 3 == 0), [2] = lane 7's value
// by index shuffle, [3] = down-shuffle by 4, [4] = inclusive scan of 1s (lane + 1).
extern "C" __global__ void emu_warp_intrinsics(GPTR(unsigned) out) {
    unsigned t = threadIdx.x, lane = t % 32;
    out[5 * t + 0] = __shfl_xor_sync(hipl::kFullMask, lane, 1);
    out[5 * t + 1] = __ballot_sync(hipl::kFullMask, lane % 3 == 0);
    out[5 * t + 2] = __shfl_sync(hipl::kFullMask, lane * 100, 7);
    out[5 * t + 3] = __shfl_down_sync(hipl::kFullMask, lane, 4);
    out[5 * t + 4] = hipl::warp_inclusive_scan(1u, lane);
}

// Bug: a shuffle inside a branch that half the warp skips.
extern "C" __global__ void emu_divergent_shuffle(GPTR(unsigned) out) {
    unsigned t = threadIdx.x;
    unsigned v = t;
    if (t % 32 < 16) v = __shfl_xor_sync(hipl::kFullMask, v, 1);
    out[t] = v;
}
