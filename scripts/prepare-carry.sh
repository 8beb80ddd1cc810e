#!/usr/bin/env bash
# Builds the binaries scripts/gpu-check.sh runs on a GPU machine (which has no Rust) and puts
# them in the git-ignored folder carry/:
#   carry/tests/<name>   the kernel test binaries (`cargo test --features cuda --no-run`), and
#                        candle_device built with `candle-cuda` when it links (see below)
#   carry/bench/cuda_bench
# Needs nvcc at build time (run .ci/cuda-check.sh once, or set NVCC / CUDA_HOME), and a build
# machine whose glibc is not newer than the GPU machine's.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p carry/tests carry/bench
# Copies the test executables of a `cargo test --no-run --message-format=json` into carry/tests.
carry_tests() {
    python3 -c '
import json, shutil, sys
for line in sys.stdin:
    msg = json.loads(line)
    if msg.get("reason") != "compiler-artifact" or not msg.get("executable"):
        continue
    if msg["profile"]["test"] and "test" in msg["target"]["kind"]:
        exe = msg["executable"]
        dst = "carry/tests/" + msg["target"]["name"]
        shutil.copy(exe, dst)
        print("carried", dst)
'
}
cargo test --release --features cuda --no-run \
    --test cuda_incidence --test cuda_sparse --test cuda_dtypes --test cuda_vs_cpu \
    --message-format=json | carry_tests
# The candle ops on candle's CUDA tensors (feature `candle-cuda`, which replaces `cuda` in its
# build): candle links libcuda, cuBLAS(Lt), cuRAND and NVRTC of CUDA 13, so linking needs them
# (or link stubs) on LIBRARY_PATH here, and the GPU machine needs them at run time. Optional:
# a failure is reported and the other binaries are still carried.
if CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-80}" cargo test --release --features candle-cuda \
    --no-run --test candle_device --message-format=json >carry/candle-cuda.json 2>carry/candle-cuda.log; then
    carry_tests <carry/candle-cuda.json
else
    echo "note: the candle-cuda test binary did not build (see carry/candle-cuda.log); the GPU"
    echo "      check runs without it"
    grep -m 3 -E "^error|cannot find -l" carry/candle-cuda.log || true
fi
rm -f carry/candle-cuda.json
cargo build --release --features cuda --example cuda_bench
cp target/release/examples/cuda_bench carry/bench/
# Debug info makes the binaries ~8x larger; the GPU run needs none of it.
if command -v strip >/dev/null; then
    strip --strip-debug carry/tests/* carry/bench/*
fi
echo "carry/ ready: $(du -sh carry | cut -f1)"
