#!/usr/bin/env bash
# Builds the binaries scripts/gpu-check.sh runs on a GPU machine (which has no Rust) and puts
# them in the git-ignored folder carry/:
#   carry/tests/<name>   the kernel test binaries (`cargo test --features cuda --no-run`)
#   carry/bench/cuda_bench
# Needs nvcc at build time (run .ci/cuda-check.sh once, or set NVCC / CUDA_HOME), and a build
# machine whose glibc is not newer than the GPU machine's.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p carry/tests carry/bench
cargo test --release --features cuda --no-run \
    --test cuda_incidence --test cuda_sparse --test cuda_dtypes --test cuda_vs_cpu \
    --message-format=json \
    | python3 -c '
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
cargo build --release --features cuda --example cuda_bench
cp target/release/examples/cuda_bench carry/bench/
# Debug info makes the binaries ~8x larger; the GPU run needs none of it.
if command -v strip >/dev/null; then
    strip --strip-debug carry/tests/* carry/bench/*
fi
echo "carry/ ready: $(du -sh carry | cut -f1)"
