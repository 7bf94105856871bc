#!/usr/bin/env bash
# CLI contract of mamba-ft: help, version, info (text and JSON, system and MODEL), --threads, one-line
# errors with a non-zero exit, and a tiny benchmark run.
# Usage: test_cli.sh BUILD/mamba-ft BUILD/libmft_ops.so [VENV_PYTHON TESTS_DIR]
set -uo pipefail
exe=$1
lib=$(realpath "$2")
python=${3:-}
tests_dir=${4:-}
failures=0
pass=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

check() {  # check NAME CONDITION...
  local name=$1; shift
  if "$@"; then pass=$((pass + 1)); else echo "FAIL: $name"; failures=$((failures + 1)); fi
}
# run EXPECTED_RC ARGS...: runs mamba-ft, keeps stdout/stderr in $tmp/out, $tmp/err, returns 0 if rc matches
run() {
  local want=$1; shift
  "$exe" "$@" >"$tmp/out" 2>"$tmp/err"
  local rc=$?
  if [ "$want" = nonzero ]; then [ $rc -ne 0 ]; else [ $rc -eq "$want" ]; fi
}
one_line_error() {  # stderr is exactly one line starting with "mamba-ft" or CLI11's message + hint
  [ "$(wc -l <"$tmp/err")" -le 2 ] && ! grep -q "Exception raised from" "$tmp/err" && ! grep -qi "frame #" "$tmp/err"
}

check "--version" run 0 --version
check "--version prints the version" grep -Eq '^mamba-ft [0-9]+\.[0-9]+\.[0-9]+' "$tmp/out"
check "--help" run 0 --help
check "--help lists info" grep -q "info" "$tmp/out"
check "--help lists bench" grep -q "bench" "$tmp/out"
check "--help lists --threads" grep -q -- "--threads" "$tmp/out"

check "info" run 0 info
check "info lists selective_scan with CPU" grep -Eq 'mft::selective_scan +CPU' "$tmp/out"
check "info names the op library" grep -q "$lib" "$tmp/out"
check "info --json" run 0 --threads 1 info --json
check "info --json parses and has the fields" python3 - "$tmp/out" "$lib" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
assert j["threads"] == 1, j["threads"]
assert j["op_library"] == sys.argv[2], j["op_library"]
for op in ["mft::selective_scan", "mft::causal_conv1d", "mft::causal_conv1d_update", "mft::selective_state_update"]:
    assert "CPU" in j["ops"][op], op
assert "Autograd" in j["ops"]["mft::selective_scan"]
assert set(j["cuda"]) == {"compiled", "available", "devices"}
assert j["libtorch_version"].startswith("2.")
PY

check "no subcommand fails" run nonzero
check "unknown subcommand fails" run nonzero frobnicate
check "unknown subcommand: short error" one_line_error
check "--threads 0 fails" run nonzero --threads 0 info
check "bench --dim 0 fails" run nonzero bench --dim 0
check "bench --dtype fp8 fails" run nonzero bench --dtype fp8
check "unwritable csv fails" run 1 bench --batch 1 --seqlen 8 --dim 16 --repeats 1 --no-eager --csv /nonexistent/dir/x.csv
check "unwritable csv: one clear line" grep -q "^mamba-ft: error: bench: cannot write /nonexistent/dir/x.csv" "$tmp/err"
check "unwritable csv: no stack dump" one_line_error

check "tiny bench runs" run 0 --threads 2 bench --batch 1 --seqlen 8 --dim 32 --dstate 4 --repeats 1 --eager-repeats 1 --csv "$tmp/bench.csv"
check "bench prints the scan row" grep -q "selective_scan" "$tmp/out"
check "bench states the machine" grep -q "^machine: .*threads 2" "$tmp/out"
check "bench CSV has 2 rows + header" test "$(wc -l <"$tmp/bench.csv")" -eq 3

if [ -n "$python" ]; then
  # info MODEL on a random HF model; the parameter count must equal transformers' own.
  "$python" "$tests_dir/models/make_hf_model.py" "$tmp/model" mamba-tied
  hf_params=$("$python" -c "import sys, transformers as t; m = t.AutoModelForCausalLM.from_pretrained(sys.argv[1]); print(sum(p.numel() for p in m.parameters()))" "$tmp/model" 2>/dev/null)
  check "HF parameter count obtained" test -n "$hf_params"
  check "info MODEL" run 0 info "$tmp/model"
  check "info MODEL names the family" grep -q "^family  *mamba" "$tmp/out"
  check "info MODEL counts parameters like HF ($hf_params)" grep -q "^parameters  *$hf_params " "$tmp/out"
  check "info MODEL lists the files read" grep -q "model.safetensors" "$tmp/out"
  check "info MODEL --json" run 0 info "$tmp/model" --json
  check "info MODEL --json has the fields" "$python" -c "import json,sys; j=json.load(open(sys.argv[1])); assert j['family']=='mamba' and j['parameters']==int(sys.argv[2]) and j['checkpoint_dtypes']=={'F32': 22}, j" "$tmp/out" "$hf_params"
  check "info on a missing folder fails" run 1 info "$tmp/nope"
  check "info on a missing folder: one line" one_line_error
fi

echo "$pass passed, $failures failed"
[ $failures -eq 0 ]
