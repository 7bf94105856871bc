#!/usr/bin/env bash
# `mamba-ft sweep` end to end on tiny presets (each run a few steps): points trained in child processes
# and evaluated, tables with CIs, the stability stage, the report; a rerun skips finished points; a
# changed recipe makes points stale; a failed point is recorded and the sweep goes on; SIGTERM checkpoints
# the running point and a rerun resumes it; bad sweep files fail in one line naming the key.
# Usage: test_sweep.sh BUILD/mamba-ft
set -uo pipefail
exe=$1
# shellcheck source=cli_lib.sh
source "$(dirname "$0")/cli_lib.sh"

qd=$tmp/qd
"$exe" make-data --out "$qd" >/dev/null
cat >"$tmp/sw.yaml" <<YAML
sweep:
  output_dir: $tmp/sw
  axes:
    family:
      mamba: {model.path: "preset:mamba-tiny"}
      pythia: {model.path: "preset:pythia-tiny"}
    precision.dtype: [fp32, bf16]
    peft:
      full: {peft.method: full}
      lora: {peft.method: lora}
    trainer.seed: [0, 1]
  reference: {precision.dtype: fp32, peft: full}
  pairs: {mamba: pythia}
  stability: {presets: {mamba: mamba-tiny, pythia: pythia-tiny}, blocks: 2, steps: 8, tokens: 16, precision_tokens: 8, k: 2}
base:
  model: {path: "", tokenizer: bytes}
  data: {format: alpaca, train_file: $qd/instruct.jsonl, max_length: 192}
  trainer: {max_steps: 2, batch_size: 2, eval_every: 0, save_every: 0, log_every: 1}
  eval: {tasks: [$qd/icl/capitals.yaml], shots: [0, 1], limit: 3, batch_size: 4}
YAML

check "sweep: 16 points" run 0 --threads 1 sweep "$tmp/sw.yaml"
check "sweep: every point ok" grep -q "16 ok, 0 failed, 0 pending" "$tmp/err"
check "sweep: summary, tables, stability and report" python3 - "$tmp/sw" <<'PY'
import csv, json, os, sys
d = sys.argv[1]
s = json.load(open(os.path.join(d, "summary.json")))
assert s["format"] == "mamba-ft-sweep/1" and len(s["points"]) == 16, s["points"]
assert all(p["status"] == "ok" and p["train"]["steps"] == 2 and p["train"]["memory_per_token_kb"] > 0 for p in s["points"])
div = [r for r in s["tables"]["divergence"] if r["task"] == "all"]
assert sorted(r["config"] for r in div) == ["mamba bf16 full", "mamba bf16 lora", "mamba fp32 lora",
                                            "pythia bf16 full", "pythia bf16 lora", "pythia fp32 lora"], div
assert all(r["n"] == 2 for r in div), div
icl = [r for r in s["tables"]["icl"] if r["config"] == "mamba fp32 full" and r["task"] == "capitals"][0]
assert set(icl["shots"]) == {"0", "1"} and icl["paired_config"] == "pythia fp32 full", icl
for t in ("divergence", "icl", "lora_spread", "throughput"):
    rows = list(csv.reader(open(os.path.join(d, "tables", t + ".csv"))))
    assert len(rows) >= 2, t
    assert os.path.getsize(os.path.join(d, "tables", t + ".md")) > 0
st = s["stability"]
assert set(st["mamba"]) == {"perturbation", "lyapunov", "precision"}, st
assert set(st["pythia"]) == {"perturbation", "precision"}, st  # a Transformer has no diagonal recurrence
ly = json.load(open(os.path.join(d, st["mamba"]["lyapunov"])))
assert all(l["exact"] <= 0 for l in ly["layers"]), ly
html = open(os.path.join(d, "report.html")).read()
assert "<svg" in html and "http://" not in html and "https://" not in html
PY
check "sweep: markdown tables on stdout" grep -q "^|mamba bf16 lora|all|" "$tmp/out"
check "sweep: training ran in child processes with logs" test -s "$tmp/sw/logs/family-mamba_dtype-bf16_peft-lora_seed-1.log"

check "sweep rerun" run 0 --threads 1 sweep "$tmp/sw.yaml"
check "sweep rerun: every point skipped" grep -q "(16 skipped as done)" "$tmp/err"
check "sweep --aggregate" run 0 sweep "$tmp/sw.yaml" --aggregate
check "sweep --dry-run: a changed recipe makes points stale" run 0 sweep "$tmp/sw.yaml" trainer.max_steps=3 --dry-run
check "sweep --dry-run: 16 stale" test "$(grep -c "stale (recipe changed)" "$tmp/out")" -eq 16
check "sweep --axis runs a subset" run 0 --threads 1 sweep "$tmp/sw.yaml" --axis family=mamba --axis trainer.seed=0 --axis precision.dtype=fp32
check "sweep --axis: 2 points, both done" grep -q "2 ok, 0 failed, 0 pending (2 skipped as done)" "$tmp/err"

# A point that fails is recorded; the others run; the exit status says so in one line.
cat >"$tmp/fail.yaml" <<YAML
sweep:
  output_dir: $tmp/fail
  axes:
    data:
      good: {}
      missing: {data.train_file: $tmp/no-such.jsonl}
  stability: {enabled: false}
  report: false
base:
  model: {path: "preset:mamba-tiny", tokenizer: bytes}
  data: {format: alpaca, train_file: $qd/instruct.jsonl, max_length: 192}
  trainer: {max_steps: 1, batch_size: 2, eval_every: 0, save_every: 0}
YAML
check "sweep with a failing point exits 1" run 1 --threads 1 sweep "$tmp/fail.yaml"
check "failing point: the error is the last line" bash -c 'tail -1 "$0" | grep -q "^mamba-ft: error: sweep: 1 of 2 points failed"' "$tmp/err"
check "failing point: no backtrace" bash -c '! grep -q "Exception raised from" "$0"' "$tmp/err"
check "failing point: recorded with its error, the other ran" python3 - "$tmp/fail/summary.json" <<'PY'
import json, sys
p = {x["id"]: x for x in json.load(open(sys.argv[1]))["points"]}
assert p["data-good"]["status"] == "ok", p
assert p["data-missing"]["status"] == "failed" and "no-such.jsonl" in p["data-missing"]["error"], p
PY

# SIGTERM checkpoints the running point; the rerun resumes it.
"$exe" --threads 1 sweep "$tmp/fail.yaml" --axis data=good trainer.max_steps=100000 sweep.output_dir="$tmp/intr" \
  >"$tmp/out" 2>"$tmp/err" &
pid=$!
for _ in $(seq 1 150); do ls "$tmp/intr/points/data-good/checkpoints" >/dev/null 2>&1 || [ -s "$tmp/intr/points/data-good/metrics.jsonl" ] && break; sleep 0.2; done
sleep 0.5
kill -TERM $pid
wait $pid
check "SIGTERM: exit 130" test $? -eq 130
check "SIGTERM: point recorded as interrupted" grep -q '"status": "interrupted"' "$tmp/intr/points/data-good/point.json"
"$exe" --threads 1 sweep "$tmp/fail.yaml" --axis data=good trainer.max_steps=100000 sweep.output_dir="$tmp/intr" \
  >"$tmp/out" 2>"$tmp/err" &
pid=$!
for _ in $(seq 1 150); do grep -q "resumed from" "$tmp/intr/logs/data-good.log" 2>/dev/null && break; sleep 0.2; done
kill -TERM $pid
wait $pid
check "rerun: the point resumes" grep -q "data-good (resume)" "$tmp/err"
check "rerun: from its checkpoint" grep -q "resumed from" "$tmp/intr/logs/data-good.log"

# Bad sweep files: one line naming the key.
sed 's/precision.dtype: \[fp32, bf16\]/precision.dtyp: [fp32, bf16]/' "$tmp/sw.yaml" >"$tmp/bad1.yaml"
check "unknown axis key fails" run 1 sweep "$tmp/bad1.yaml" --dry-run
check "unknown axis key: closest key" grep -q "did you mean 'precision.dtype'" "$tmp/err"
check "unknown axis key: one line" one_line_error
sed 's/precision.dtype: \[fp32, bf16\]/precision.dtype: []/' "$tmp/sw.yaml" >"$tmp/bad2.yaml"
check "empty axis fails" run 1 sweep "$tmp/bad2.yaml" --dry-run
check "empty axis: named" grep -q "sweep.axes.precision.dtype: empty axis" "$tmp/err"
printf 'sweep:\n  output_dir: x\n  axes: {}\nbase: {}\n' >"$tmp/bad3.yaml"
check "no axes fails" run 1 sweep "$tmp/bad3.yaml"
check "no axes: named" grep -q "sweep.axes: empty" "$tmp/err"
check "unknown --axis value fails" run 1 sweep "$tmp/sw.yaml" --axis family=mamab --dry-run
check "unknown --axis value: closest" grep -q "did you mean 'mamba'" "$tmp/err"
check "report of a folder without results fails" run 1 report "$tmp/qd"
check "report without results: one line" one_line_error

echo "$pass passed, $failures failed"
[ $failures -eq 0 ]
