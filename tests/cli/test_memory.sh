#!/usr/bin/env bash
# The memory estimate that jobs are checked against before allocating (csrc/models/memory_estimate.h) is
# within 30 % of the measured peak RSS on the benchmark configurations: bench-train (mamba-130m,
# full-fp32 and lora-bf16, batch 1 x 512 tokens, as scripts/bench-train) and bench-model (mamba-130m and
# pythia-160m, fp32 and bf16, 512 prompt + 32 decoded tokens, as scripts/bench-models).
# Usage: test_memory.sh BUILD/mamba-ft
set -uo pipefail
exe=$1
# shellcheck source=cli_lib.sh
source "$(dirname "$0")/cli_lib.sh"

within_30_percent() {  # JSON on stdout ($tmp/out) has memory_estimate_mb within 30 % of peak_rss_mb
  python3 - "$tmp/out" "$1" <<'PY'
import json, sys
j = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
est, peak = j["memory_estimate_mb"], j["peak_rss_mb"]
print(f"{sys.argv[2]}: estimated {est:.0f} MiB, measured peak {peak:.0f} MiB ({100 * (est / peak - 1):+.0f} %)")
assert 0.7 <= est / peak <= 1.3, (est, peak)
PY
}

for mode in full-fp32 lora-bf16; do
  check "bench-train mamba-130m $mode" run 0 --threads 2 bench-train --model preset:mamba-130m --mode $mode --seq 512 \
    --batch 1 --steps 1 --warmup 1 --gemm-repeats 1 --json
  check "bench-train mamba-130m $mode: estimate within 30 % of the peak" within_30_percent "bench-train mamba-130m $mode"
done
for model in mamba-130m pythia-160m; do
  for dtype in fp32 bf16; do
    check "bench-model $model $dtype" run 0 --threads 2 bench-model --model preset:$model --dtype $dtype \
      --prompt-tokens 512 --decode-tokens 32 --repeats 1 --json
    check "bench-model $model $dtype: estimate within 30 % of the peak" within_30_percent "bench-model $model $dtype"
  done
done
echo "$pass passed, $failures failed"
[ $failures -eq 0 ]
