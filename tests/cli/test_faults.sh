#!/usr/bin/env bash
# Faults during real work: a full disk (a 1 MiB tmpfs where this test may mount one, else a file size limit),
# a read-only file system, kill -9 inside training and resuming, damaged checkpoints, two runs on one output
# folder, resuming a finished run, a run whose every step is non-finite, and HF-layout folders of
# byte-vocabulary models. Nothing may crash, lose the previous good output, or leave temporary files.
# Usage: test_faults.sh BUILD/mamba-ft
set -uo pipefail
exe=$1
here=$(cd "$(dirname "$0")" && pwd)
recipes=$(cd "$here/../../recipes" && pwd)
fx() { python3 "$here/fixtures.py" "$@"; }
# shellcheck source=cli_lib.sh
source "$here/cli_lib.sh"
mounts=()
cleanup() {
  for d in "${mounts[@]}"; do umount "$d" 2>/dev/null; done
  rm -rf "$tmp"
}
trap cleanup EXIT

one_error() {  # exactly one error line, the last one, with the given text; no stack dump
  [ "$(grep -c '^mamba-ft: error: ' "$tmp/err")" -eq 1 ] && tail -n 1 "$tmp/err" | grep -Eq "^mamba-ft: error: .*($1)" &&
    ! grep -Eq 'terminate called|Exception raised from|frame #[0-9]' "$tmp/err"
}
no_temporaries() { test -z "$(find "$1" -name '*.tmp-*' 2>/dev/null)"; }
steps_of() { python3 -c "import json,sys; print(' '.join(str(json.loads(l)['step']) for l in open(sys.argv[1])))" "$1"; }

qd=$tmp/qd
"$exe" make-data --out "$qd" >/dev/null
# The command line of a tiny full fine-tune into OUTPUT_DIR with checkpoints every 2 steps, in ${cmd[@]}
# (run directly, so that `&` gives the pid of mamba-ft itself).
train_cmd() {  # train_cmd OUTPUT_DIR [OVERRIDES...]
  local out=$1
  shift
  cmd=("$exe" --threads 1 train "$recipes/tiny-mamba-lora.yaml" "data.train_file=$qd/instruct.jsonl" "output.dir=$out"
       peft.method=full trainer.eval_every=0 trainer.log_every=1 trainer.save_every=2 trainer.keep_last=3
       data.val_fraction=0 output.overwrite=false "$@")
}
train_run() {  # train_run RC OUTPUT_DIR [OVERRIDES...]: run (cli_lib.sh) that command, expecting RC
  local want=$1
  shift
  train_cmd "$@"
  run "$want" "${cmd[@]:1}"
}

# ---- a full disk ------------------------------------------------------------------------------------------------
# A 256 KiB file system (tmpfs, where this test may mount one), else a 256 KiB file size limit for the
# commands run through `limited` (writes then fail with EFBIG instead of ENOSPC).
disk=$tmp/disk
mkdir -p "$disk"
if mount -t tmpfs -o size=256k tmpfs "$disk" 2>/dev/null; then
  mounts+=("$disk")
  limited() { "$@"; }
  full="No space left on device \(the disk is full"
  echo "full disk: a 256 KiB tmpfs"
else
  limited() { (trap '' XFSZ; ulimit -f 512; "$@"); }
  full="File too large"
  echo "full disk: a 256 KiB file size limit (no tmpfs mount here)"
fi
printf 'previous good archive' >"$disk/model.pt"
limited "$exe" export --model preset:mamba-130m --output "$disk/model.pt" >"$tmp/out" 2>"$tmp/err"
check "export on a full disk: exit 1" test $? -eq 1
check "export on a full disk: one clear line" one_error "export: cannot write $disk/model.pt: $full"
check "export on a full disk: the previous archive untouched" test "$(cat "$disk/model.pt")" = "previous good archive"
check "export on a full disk: no temporary file" no_temporaries "$disk"
rm -f "$disk/model.pt"
limited "$exe" make-data --out "$disk/data" >"$tmp/out" 2>"$tmp/err"
check "make-data on a full disk: exit 1" test $? -eq 1
check "make-data on a full disk: one clear line" one_error "make-data: cannot write $disk/data/.*: $full"
check "make-data on a full disk: no file cut short at its final name" python3 - "$disk/data" "$qd" <<'PY'
import os, sys
out, good = sys.argv[1:]
for root, _, files in os.walk(out):
    for f in files:
        if f == ".mamba-ft.lock":
            continue
        path = os.path.join(root, f)
        ref = os.path.join(good, os.path.relpath(path, out))
        assert open(path, "rb").read() == open(ref, "rb").read(), path
PY
check "make-data on a full disk: no temporary file, lock released" test -z "$(find "$disk" -name '*.tmp-*' -o -name '.mamba-ft.lock')"
rm -rf "${disk:?}"/*
for i in $(seq 1 20000); do echo '{"text": "hello world"}'; done >"$tmp/many.jsonl"
limited "$exe" score --model preset:mamba-tiny --requests "$tmp/many.jsonl" --batch-size 1024 \
  --output "$disk/scores.jsonl" >"$tmp/out" 2>"$tmp/err"
check "score --output on a full disk: exit 1" test $? -eq 1
check "score --output on a full disk: one clear line" one_error "score: cannot write $disk/scores.jsonl: $full"
check "score --output on a full disk: nothing left" test -z "$(ls -A "$disk")"
# Training: metrics fit, the checkpoint does not (a full fine-tune of mamba-130m's geometry is 1.5 GB).
limited "$exe" --threads 1 train "$recipes/tiny-mamba-lora.yaml" "data.train_file=$qd/instruct.jsonl" \
  "output.dir=$disk/run" peft.method=full trainer.max_steps=1 trainer.batch_size=1 data.max_length=256 \
  data.val_fraction=0 trainer.eval_every=0 model.path=preset:mamba-130m model.tokenizer=bytes >"$tmp/out" 2>"$tmp/err"
check "train on a full disk: exit 1" test $? -eq 1
check "train on a full disk: one clear line naming the checkpoint file" \
  one_error "cannot write $disk/run/checkpoints/step-00000001.tmp-.*/params.safetensors: $full"
check "train on a full disk: no half checkpoint, no temporaries, lock released" \
  test -z "$(find "$disk" -name 'step-*' -o -name '*.tmp-*' -o -name '.mamba-ft.lock')"
rm -rf "${disk:?}"/*
ro=$tmp/ro
mkdir -p "$ro"
if mount -t tmpfs -o size=1m,ro tmpfs "$ro" 2>/dev/null; then
  mounts+=("$ro")
  run 1 make-data --out "$ro/data"
  check "read-only file system: one clear line" one_error "read-only"
  run 1 export --model preset:mamba-tiny --output "$ro/model.pt"
  check "export to a read-only file system: one clear line" one_error "export: cannot write $ro/model.pt: Read-only file system"
else
  echo "skip: read-only file system (cannot mount here)"
fi

# ---- kill -9 inside training, then resume ------------------------------------------------------------------------
run_dir=$tmp/k9
train_cmd "$run_dir" trainer.max_steps=400
"${cmd[@]}" >"$tmp/k9.out" 2>"$tmp/k9.err" &
pid=$!
# Killed between checkpoints: at least two written and a step logged after the last one.
newest() { ls "$run_dir/checkpoints" 2>/dev/null | grep '^step-[0-9]*$' | tail -1; }
for _ in $(seq 1 600); do
  ck=$(newest)
  [ -n "$ck" ] && [ "$((10#${ck#step-}))" -ge 4 ] && [ "$(wc -l <"$run_dir/metrics.jsonl")" -gt "$((10#${ck#step-}))" ] && break
  sleep 0.05
done
kill -9 $pid
wait $pid 2>/dev/null
check "kill -9: the lock file stays behind" test -f "$run_dir/.mamba-ft.lock"
killed_at=$(wc -l <"$run_dir/metrics.jsonl")
last=$(newest)
last_step=$((10#${last#step-}))
check "kill -9: metrics ran past the last checkpoint ($killed_at steps logged, $last)" test "$killed_at" -gt "$last_step"
final=$((last_step + 6))
dead=$(python3 -c 'import os; pid = os.fork()
if pid == 0: os._exit(0)
os.waitpid(pid, 0); print(pid)')
host=$(hostname)
mkdir -p "$run_dir/checkpoints/step-00000099.tmp-$host-$dead"
printf x >"$run_dir/metrics.csv.tmp-$host-$dead"
train_run 0 "$run_dir" trainer.max_steps=$final output.resume=true
check "resume after kill -9: the dead run's lock taken over with a note" grep -q "took over the stale lock of mamba-ft train (pid $pid" "$tmp/err"
check "resume after kill -9: resumed from the last checkpoint" grep -q "resumed from .*$last" "$tmp/err"
check "resume after kill -9: metrics.jsonl holds each step once" test "$(steps_of "$run_dir/metrics.jsonl")" = "$(seq -s ' ' 1 $final)"
check "resume after kill -9: metrics.csv holds each step once" test "$(tail -n +2 "$run_dir/metrics.csv" | cut -d, -f1 | tr '\n' ' ')" = "$(seq -s ' ' 1 $final) "
check "resume after kill -9: stale temporaries of the dead run removed" no_temporaries "$run_dir"
check "resume after kill -9: final model written, lock released" test -s "$run_dir/final/model.safetensors" -a ! -e "$run_dir/.mamba-ft.lock"
check "checkpoints carry a manifest" test -s "$run_dir/checkpoints/$(newest)/manifest.json"

# ---- resuming a finished run changes nothing -----------------------------------------------------------------
cp "$run_dir/result.json" "$tmp/result.before"
cp "$run_dir/metrics.jsonl" "$tmp/metrics.before"
train_run 0 "$run_dir" trainer.max_steps=$final output.resume=true
check "resume a finished run: says so" grep -q "already finished ($final steps, loss" "$tmp/out"
check "resume a finished run: result.json unchanged" cmp -s "$run_dir/result.json" "$tmp/result.before"
check "resume a finished run: metrics unchanged" cmp -s "$run_dir/metrics.jsonl" "$tmp/metrics.before"

# ---- damaged checkpoints -------------------------------------------------------------------------------------
top=$(newest)
fx flip "$run_dir/checkpoints/$top/trainer_state.pt" 2000 64
train_run 0 "$run_dir" trainer.max_steps=$((final + 2)) output.resume=true
check "64 flipped bytes: found, named, an older checkpoint used" \
  grep -q "checkpoint .*$top is damaged (trainer_state.pt: CRC32C [0-9a-f]*, expected [0-9a-f]*); trying an older one" "$tmp/err"
check "64 flipped bytes: resumed from the one before" grep -q "resumed from .*at step $((final - 2))" "$tmp/err"
check "64 flipped bytes: the run finished with finite weights" python3 - "$run_dir/final/model.safetensors" <<'PY'
import json, math, struct, sys
data = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", data[:8])[0]
for name, e in json.loads(data[8:8 + n]).items():
    if name == "__metadata__":
        continue
    b, end = e["data_offsets"]
    vals = struct.unpack(f"<{(end - b) // 4}f", data[8 + n + b:8 + n + end])
    assert all(math.isfinite(v) for v in vals), name
PY
for c in "$run_dir"/checkpoints/step-*; do fx flip "$c/params.safetensors" -100 64; done
train_run 1 "$run_dir" trainer.max_steps=$((final + 8)) \
  output.resume=true
check "every checkpoint damaged: one clear failure" one_error "train: no intact checkpoint to resume from in $run_dir/checkpoints \(step-"
train_run 0 "$tmp/old" trainer.max_steps=2
rm -f "$tmp/old"/checkpoints/step-*/manifest.json "$tmp/old/result.json"
train_run 0 "$tmp/old" trainer.max_steps=4 output.resume=true
check "a checkpoint from before manifests: accepted with a warning" grep -q "step-00000002 is not verified: it has no manifest.json" "$tmp/err"

# ---- two runs, one output folder --------------------------------------------------------------------------------
train_cmd "$tmp/shared" trainer.max_steps=100000
"${cmd[@]}" >/dev/null 2>&1 &
first=$!
for _ in $(seq 1 200); do [ -s "$tmp/shared/metrics.jsonl" ] && break; sleep 0.1; done
train_run 1 "$tmp/shared" output.resume=true
check "second run on a live run's folder: fails at once naming the owner" \
  one_error "train: output folder $tmp/shared is in use by mamba-ft train \(pid $first on $host"
printf 'sweep:\n  output_dir: %s\n  axes: {trainer.seed: [0]}\nbase:\n  model: {path: "preset:mamba-tiny"}\n  data: {train_file: %s}\n' \
  "$tmp/shared" "$qd/instruct.jsonl" >"$tmp/shared.yaml"
run 1 sweep "$tmp/shared.yaml"
check "a sweep on a live run's folder: refused" one_error "sweep: output folder $tmp/shared is in use by mamba-ft train"
kill -INT $first
wait $first
check "the first run stopped cleanly with a checkpoint" test -n "$(ls "$tmp/shared/checkpoints" | grep '^step-')"
check "the first run's metrics are not interleaved with another's" python3 - "$tmp/shared/metrics.jsonl" <<'PY'
import json, sys
steps = [json.loads(l)["step"] for l in open(sys.argv[1])]
assert steps == list(range(1, len(steps) + 1)), steps
PY

# ---- every step non-finite ---------------------------------------------------------------------------------------
"$exe" --threads 1 train "$recipes/tiny-mamba-lora.yaml" "data.train_file=$qd/instruct.jsonl" "output.dir=$tmp/base" \
  peft.method=full trainer.max_steps=1 trainer.eval_every=0 data.val_fraction=0 >/dev/null 2>&1
fx fill "$tmp/base/final" "$tmp/inf" backbone.layers.0.mixer.in_proj.weight inf
run 1 --threads 1 train "$recipes/tiny-mamba-lora.yaml" "data.train_file=$qd/instruct.jsonl" "output.dir=$tmp/nan-run" \
  "model.path=$tmp/inf" model.tokenizer=bytes trainer.max_steps=3 trainer.eval_every=0 data.val_fraction=0
check "every step non-finite: fails" one_error "train: all 3 steps had non-finite gradients \(NaN or Inf\) and were skipped"
check "every step non-finite: no adapter written" test ! -e "$tmp/nan-run/adapter"

# ---- byte-vocabulary models in HF layout declare the byte tokenizer's specials ------------------------------------
check "tiny preset saved in HF layout: bos/eos 256, pad 257" python3 - "$tmp/base/final/config.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
assert (c["bos_token_id"], c["eos_token_id"], c["pad_token_id"]) == (256, 256, 257), c
PY

echo "$pass passed, $failures failed"
[ $failures -eq 0 ]
