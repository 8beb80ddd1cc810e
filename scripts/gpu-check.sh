#!/usr/bin/env bash
# GPU check for a machine with a GPU, nvcc 13.0 and PyTorch, and no Rust or network.
#
# Prepare on a build machine: `bash scripts/prepare-carry.sh` (fills carry/ with the test
# binaries from `cargo test --release --features cuda --no-run` and the bench binary), then
# bring the repository with carry/ to the GPU machine and run: `bash scripts/gpu-check.sh`.
#
# Steps, each under its own time limit so the whole run stays under 8 minutes:
#   1. device info and an nvcc sm_XX compile of every kernel for this GPU (catches toolchain
#      drift between the build and the GPU machine),
#   2. the kernel tests on the GPU (HIPL_TEST_DEVICE=cuda): every op and mode, CUDA against
#      the CPU path; and, when prepare-carry.sh could link it, candle_device (feature
#      `candle-cuda`): the candle ops' cuda_fwd on candle CUDA tensors against their CPU
#      forward (needs CUDA 13's cuBLAS, cuRAND and NVRTC on the library path, below),
#   3. hipl's CUDA bench and PyTorch's dense path on the same shapes (B=8, N=1369, D=1024),
#      reported as ratios against baselines measured in the same run.
# Writes $OUT/gpu-report.md (and logs); exits non-zero if a test failed.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/gpu-out}"
mkdir -p "$OUT"
report="$OUT/gpu-report.md"
start=$SECONDS
status=0
# Seconds a step may take: `want`, cut so the whole script ends within 460 s (< 8 min) with
# `reserve` seconds (default 0) still left for the steps after it.
budget() {
    local want=$1 left=$((460 - (SECONDS - start) - ${2:-0}))
    ((left < want)) && want=$left
    ((want < 1)) && want=1
    echo "$want"
}

# cudarc loads libcuda and libcublas at run time (candle_device links them, with cuRAND and
# NVRTC); PyTorch's wheels carry cuBLAS (and cuRAND, NVRTC where it depends on them).
torch_libs="$(python3 - <<'PY' 2>/dev/null
import glob, os, site
dirs = set()
for root in site.getsitepackages() + [site.getusersitepackages()]:
    dirs.update(os.path.dirname(p) for p in glob.glob(os.path.join(root, "nvidia", "*", "lib", "libcublas*.so*")))
    dirs.update(os.path.dirname(p) for p in glob.glob(os.path.join(root, "nvidia", "cu*", "lib", "libcublas*.so*")))
    dirs.update(os.path.dirname(p) for p in glob.glob(os.path.join(root, "nvidia", "*", "lib", "libcurand*.so*")))
print(":".join(sorted(dirs)))
PY
)"
export LD_LIBRARY_PATH="${torch_libs:+$torch_libs:}${LD_LIBRARY_PATH:-}"

{
    echo "# hipl GPU check"
    echo
    echo '```'
    nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total --format=csv 2>&1 | head -n 3
    nvcc --version 2>&1 | tail -n 1
    echo '```'
} >"$report"

echo "== 1. nvcc compile for this GPU"
cap="$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n 1 | tr -d '.')"
if [[ -n "$cap" ]] && command -v nvcc >/dev/null; then
    for src in kernels/*.cu; do
        if ! timeout "$(budget 40 300)" nvcc -cubin "-arch=sm_$cap" -O3 -std=c++17 -Ikernels -Xptxas -v \
            -o /dev/null "$src" >"$OUT/nvcc-$(basename "$src" .cu).log" 2>&1; then
            echo "- nvcc sm_$cap: $src FAILED (see nvcc-$(basename "$src" .cu).log)" >>"$report"
            status=1
        fi
    done
    grep -h "spill" "$OUT"/nvcc-*.log | grep -v " 0 bytes spill stores, 0 bytes spill loads" \
        >"$OUT/spills.txt" || true
    echo "- nvcc sm_$cap: compile failures are listed above; entries with spills: $(wc -l <"$OUT/spills.txt") (spills.txt)" >>"$report"
else
    echo "- nvcc compile skipped (no nvcc or no GPU visible)" >>"$report"
fi

echo "== 2. kernel tests on the GPU"
echo -e "\n## Tests (CUDA vs CPU path)\n" >>"$report"
if compgen -G "carry/tests/*" >/dev/null; then
    for t in carry/tests/*; do
        name="$(basename "$t")"
        HIPL_TEST_DEVICE=cuda timeout "$(budget 120 150)" "$t" --test-threads=2 >"$OUT/test-$name.log" 2>&1
        rc=$?
        summary="$(grep -E '^test result' "$OUT/test-$name.log" | tail -n 1)"
        echo "- $name: ${summary:-no summary} (exit $rc)" >>"$report"
        [[ $rc -eq 0 ]] || status=1
    done
else
    echo "- no test binaries in carry/tests: run scripts/prepare-carry.sh on a build machine" >>"$report"
    status=1
fi

echo "== 3. benches"
echo -e "\n## Benches\n" >>"$report"
if [[ -x carry/bench/cuda_bench ]]; then
    if timeout "$(budget 120)" carry/bench/cuda_bench 8 1369 1024 >"$OUT/bench-hipl.json" 2>"$OUT/bench-hipl.log"; then
        if ! timeout "$(budget 120)" python3 scripts/gpu_bench.py --hipl "$OUT/bench-hipl.json" \
            --out "$OUT/bench.md" >"$OUT/bench-torch.log" 2>&1; then
            echo "- PyTorch baseline failed: see bench-torch.log" >>"$report"
        else
            cat "$OUT/bench.md" >>"$report"
        fi
    else
        echo "- cuda_bench failed: see bench-hipl.log" >>"$report"
    fi
else
    echo "- no carry/bench/cuda_bench" >>"$report"
fi

echo -e "\nTotal time: $((SECONDS - start)) s" >>"$report"
cat "$report"
exit $status
