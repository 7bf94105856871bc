#!/usr/bin/env bash
# The CUDA path on a GPU machine, in one short call: builds libmft_ops with its CUDA kernels and the
# CUDA tests against that machine's torch and nvcc (sm_90, MFT_OPS_ONLY: nothing else), runs the tests
# (CUDA vs CPU kernels over the op grid, gradients, determinism, fp64 finite differences),
# compute-sanitizer memcheck on two cases when it works there, and the scan/conv benchmark against the
# measured copy-bandwidth and exp2-rate floors; prints a short table last. Logs go to $OUT.
#
# The device machine has no package registry: the build's two header-only dependencies travel as
# Debian packages. Once per session, here:   scripts/gpu-check.sh --prepare      (writes .debs/)
# then through the device tool:   command "scripts/gpu-check.sh", carry [".debs"], timeout_s 420.
# Aim: under 5 minutes there (the CPU half of libmft_ops compiles on its 16 cores).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
if [ "${1:-}" = --prepare ]; then
  mkdir -p .debs
  grep -qx '/.debs/' .git/info/exclude 2>/dev/null || echo '/.debs/' >>.git/info/exclude
  (cd .debs && apt-get download nlohmann-json3-dev catch2 >/dev/null)
  ls .debs
  exit 0
fi
out=${OUT:-/tmp/mft-gpu-check}
mkdir -p "$out"
start=$(date +%s)
step() { echo "== $* ($(($(date +%s) - start)) s)"; }

step "device"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm --format=csv,noheader || true
nvcc=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
"$nvcc" --version | tail -1

step "dependencies"
deps=/tmp/mft-deps
mkdir -p "$deps"
ls .debs/*.deb >/dev/null 2>&1 || { echo "no .debs/: run scripts/gpu-check.sh --prepare here and carry .debs" >&2; exit 2; }
for f in .debs/*.deb; do dpkg -x "$f" "$deps"; done
py=$(command -v python3)
torch_dir=$("$py" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "share", "cmake", "Torch"))')
"$py" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)'

step "configure + build (mft_ops with CUDA kernels, mft_cuda_tests, mft_cuda_bench)"
build=/tmp/mft-gpu-build
cmake -S . -B "$build" -G Ninja -DMFT_OPS_ONLY=ON -DMFT_CUDA=ON -DMFT_CUDA_ARCHS=90 -DMFT_TORCH_DIR="$torch_dir" \
  -DCMAKE_CUDA_COMPILER="$nvcc" -DCMAKE_PREFIX_PATH="$deps/usr" >"$out/configure.log" 2>&1 ||
  { tail -30 "$out/configure.log"; exit 1; }
ninja -C "$build" mft_cuda_tests mft_cuda_bench >"$out/build.log" 2>&1 || { tail -40 "$out/build.log"; exit 1; }
tail -1 "$out/build.log"

step "tests"
set +e
"$build/mft_cuda_tests" "[cuda]" >"$out/tests.log" 2>&1
tests_rc=$?
tail -4 "$out/tests.log"
if [ $tests_rc -ne 0 ]; then grep -B3 -A12 FAILED "$out/tests.log" | head -80; fi

step "compute-sanitizer memcheck (two cases)"
sanitizer=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2>/dev/null || true)
if [ -n "$sanitizer" ]; then
  "$sanitizer" --tool memcheck --error-exitcode 3 "$build/mft_cuda_tests" "CUDA causal_conv1d*" \
    >"$out/memcheck.log" 2>&1
  echo "memcheck conv rc=$?"
  "$sanitizer" --tool memcheck --error-exitcode 3 "$build/mft_cuda_tests" "CUDA selective_scan backward*" \
    >>"$out/memcheck.log" 2>&1
  echo "memcheck scan rc=$?"
else
  echo "compute-sanitizer not found"
fi

step "benchmark"
"$build/mft_cuda_bench" 8 2048 >"$out/bench.log" 2>&1
bench_rc=$?
set -e
step "summary"
echo "tests rc=$tests_rc ($(tail -2 "$out/tests.log" | tr '\n' ' '))"
echo "bench rc=$bench_rc"
cat "$out/bench.log"
exit $((tests_rc | bench_rc))
