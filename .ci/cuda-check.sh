#!/usr/bin/env bash
# CUDA checks that need no GPU:
#   1. installs nvcc 13.0 from PyPI into a virtual environment (cached between runs),
#   2. compiles every kernels/*.cu for sm_80 and sm_90 with `-Xptxas -v`, failing on a
#      compile error or on any register spill,
#   3. builds the crate with `--features cuda` (cubins + PTX embedded), and with
#      `--features candle-cuda` (the candle ops' `cuda_fwd`; candle-core's `cuda` compiles
#      candle's own kernels with the same nvcc, for CUDA_COMPUTE_CAP, default 80),
#   4. runs the kernel tests and the candle ops' device forwards on the host emulator.
# Usage: bash .ci/cuda-check.sh [--no-tests]   (from anywhere; HIPL_CI_CACHE overrides the
# cache folder). --no-tests skips step 4, for a caller whose `cargo test --release` already
# runs the emulated kernel tests (they are ordinary integration tests).
set -euo pipefail
cd "$(dirname "$0")/.."

cache="${HIPL_CI_CACHE:-$HOME/.cache/hipl-ci}"
venv="$cache/nvcc-13.0"
archs=(80 90)

echo "== nvcc 13.0 from PyPI ($venv)"
if [[ ! -x "$venv/bin/python" ]]; then
    python3 -m venv "$venv"
fi
# nvvm and crt are pinned too: unpinned, pip picks newer ones whose PTX the 13.0 ptxas rejects.
"$venv/bin/pip" install --quiet --disable-pip-version-check \
    "nvidia-cuda-nvcc==13.0.*" "nvidia-cuda-runtime==13.0.*" "nvidia-cuda-cccl==13.0.*" \
    "nvidia-nvvm==13.0.*" "nvidia-cuda-crt==13.0.*"
site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
nvcc="$(find "$site/nvidia" -path '*/bin/nvcc' -type f | head -n 1)"
if [[ -z "$nvcc" ]]; then
    echo "error: no nvcc under $site/nvidia" >&2
    exit 1
fi
cuda_root="$(dirname "$(dirname "$nvcc")")"
includes=()
while IFS= read -r dir; do includes+=("-I$dir"); done \
    < <(find "$site/nvidia" -maxdepth 3 -type d -name include)
export PATH="$cuda_root/bin:$PATH"
export NVCC="$nvcc"
"$nvcc" --version | tail -n 2

echo "== compile every kernel with -Xptxas -v (sm_${archs[*]// /, sm_})"
logdir="$(mktemp -d)"
trap 'rm -rf "$logdir"' EXIT
status=0
for src in kernels/*.cu; do
    for arch in "${archs[@]}"; do
        log="$logdir/$(basename "$src" .cu).sm_$arch.log"
        if ! "$nvcc" -cubin "-arch=sm_$arch" -O3 -std=c++17 -Ikernels "${includes[@]}" \
            -Xptxas -v -o "$logdir/out.cubin" "$src" >"$log" 2>&1; then
            echo "FAIL: $src for sm_$arch does not compile:"
            cat "$log"
            status=1
            continue
        fi
        # ptxas prints, per entry: "Compiling entry function 'name' for 'sm_XX'", then
        # "N bytes stack frame, S bytes spill stores, L bytes spill loads", then "Used R registers".
        awk -v src="$src" -v arch="$arch" '
            /Compiling entry function/ { fn = $0; sub(/.*function \x27/, "", fn); sub(/\x27.*/, "", fn) }
            /spill stores/ {
                for (i = 1; i <= NF; i++) {
                    if ($(i+1) == "bytes" && $(i+2) == "spill" && $(i+3) == "stores,") st = $i
                    if ($(i+1) == "bytes" && $(i+2) == "spill" && $(i+3) == "loads") ld = $i
                }
                spill[fn] = st "/" ld
                if (st + 0 > 0 || ld + 0 > 0) bad = bad " " fn
            }
            /Used [0-9]+ registers/ {
                match($0, /Used [0-9]+ registers/); regs = substr($0, RSTART + 5, RLENGTH - 15)
                smem = "0"; if (match($0, /[0-9]+ bytes smem/)) smem = substr($0, RSTART, RLENGTH - 11)
                printf "  sm_%s %-26s %3s regs  %6s B smem  spill st/ld %s\n", arch, fn, regs, smem, spill[fn]
            }
            END { if (bad != "") { print "FAIL: register spills in" bad; exit 1 } }
        ' "$log" || status=1
    done
done
if [[ $status -ne 0 ]]; then
    echo "kernel compilation check failed" >&2
    exit 1
fi
echo "no compile errors, no spills"

echo "== cargo build --release --features cuda"
cargo build --release --features cuda --lib

# candle-core's kernel build asks nvidia-smi for the compute capability unless told; there is
# no GPU here. Its PTX for sm_80 is JIT-compiled by the driver on newer GPUs. Only the library
# is built: test binaries would link libcuda, cuBLAS, cuRAND and NVRTC (candle links them).
echo "== cargo build --release --features candle-cuda"
t0=$SECONDS
CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-80}" cargo build --release --features candle-cuda --lib
echo "candle-cuda build: $((SECONDS - t0)) s"

if [[ "${1:-}" == "--no-tests" ]]; then
    echo "cuda-check: passed (tests skipped)"
    exit 0
fi
echo "== emulated kernel tests"
cargo test --release --test emu_checks --test cuda_incidence --test cuda_sparse --test cuda_dtypes \
    --test cuda_vs_cpu
cargo test --release --features candle --test candle_device
echo "cuda-check: all passed"
