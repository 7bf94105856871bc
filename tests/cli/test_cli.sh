#!/usr/bin/env bash
# CLI contract of mamba-ft: help, version, info (text and JSON, system and MODEL), --threads, one-line
# errors with a non-zero exit, a tiny benchmark run, tokenize (JSONL round trips, ids equal to HF's) and
# score (lm-eval loglikelihood requests, equal to lm-eval's HF backend).
# Usage: test_cli.sh BUILD/mamba-ft BUILD/libmft_ops.so [VENV_PYTHON TESTS_DIR]
set -uo pipefail
exe=$1
lib=$(realpath "$2")
python=${3:-}
tests_dir=${4:-}
# shellcheck source=cli_lib.sh
source "$(dirname "$0")/cli_lib.sh"

check "--version" run 0 --version
check "--version prints the version" grep -Eq '^mamba-ft [0-9]+\.[0-9]+\.[0-9]+' "$tmp/out"
check "--help" run 0 --help
check "--help lists info" grep -q "info" "$tmp/out"
check "--help lists bench" grep -q "bench" "$tmp/out"
check "--help lists tokenize" grep -q "tokenize" "$tmp/out"
check "--help lists score" grep -q "score" "$tmp/out"
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
check "bench prints the lora_linear row" grep -q "^lora_linear" "$tmp/out"
check "bench CSV has 3 rows + header" test "$(wc -l <"$tmp/bench.csv")" -eq 4

# tokenize with the byte tokenizer: one output line per input line; a bad line is named by its number.
printf '{"text": "h\u00e9"}\n{"text": "<|endoftext|>"}\n' >"$tmp/bytes.jsonl"
check "tokenize --tokenizer bytes" run_in "$tmp/bytes.jsonl" 0 tokenize --tokenizer bytes
check "tokenize bytes: ids" test "$(cat "$tmp/out")" = $'{"ids":[104,195,169]}\n{"ids":[256]}'
printf '{"ids": [104, 195, 169, 256]}\n' >"$tmp/bytes-ids.jsonl"
check "tokenize --decode" run_in "$tmp/bytes-ids.jsonl" 0 tokenize --tokenizer bytes --decode --skip-special
check "tokenize --decode --skip-special: text" test "$(cat "$tmp/out")" = '{"text":"hé"}'
printf '{"text": "a"}\nnot json\n{"text": "b"}\n' >"$tmp/bad.jsonl"
check "tokenize: bad line fails" run_in "$tmp/bad.jsonl" 1 tokenize --tokenizer bytes
check "tokenize: bad line named" grep -q "^mamba-ft: error: tokenize: line 2: not valid JSON" "$tmp/err"
check "tokenize: lines before it written" test "$(cat "$tmp/out")" = '{"ids":[97]}'
check "tokenize: bad line: one line" one_line_error
printf '{"text": 7}\n' >"$tmp/bad.jsonl"
check "tokenize: non-string text fails" run_in "$tmp/bad.jsonl" 1 tokenize --tokenizer bytes
check "tokenize: non-string text named" grep -q 'line 1: "text" must be a string; got 7' "$tmp/err"
check "tokenize: missing tokenizer fails" run_in "$tmp/bytes.jsonl" 1 tokenize --tokenizer "$tmp/none.json"
check "tokenize: missing tokenizer: one line" grep -q "none.json: no such file" "$tmp/err"

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

  # tokenize with a tokenizer made by HF tokenizers: ids and decoded text equal HF's, both ways.
  "$python" "$tests_dir/tokenizer/make_tokenizer_cases.py" "$tmp/tok" --count 300
  cases=$tmp/tok/neox-pairs.cases.jsonl
  same_as_hf() {  # same_as_hf OURS_JSONL OUR_KEY HF_KEY: each line's OUR_KEY equals HF's HF_KEY in $cases
    "$python" - "$1" "$2" "$cases" "$3" <<'PY'
import json, sys
ours = [json.loads(line)[sys.argv[2]] for line in open(sys.argv[1])]
hf = [json.loads(line)[sys.argv[4]] for line in open(sys.argv[3])]
assert ours == hf, f"{sum(a != b for a, b in zip(ours, hf))} of {len(hf)} lines differ ({len(ours)} lines)"
PY
  }
  "$python" -c "import json, sys; [print(json.dumps({'text': json.loads(l)['text']})) for l in open(sys.argv[1])]" \
    "$cases" >"$tmp/texts.jsonl"
  check "tokenize (folder)" run_in "$tmp/texts.jsonl" 0 tokenize --tokenizer "$tmp/tok/neox-pairs"
  cp "$tmp/out" "$tmp/ids.jsonl"
  check "tokenize: ids equal HF's" same_as_hf "$tmp/ids.jsonl" ids ids
  check "tokenize --decode (file)" run_in "$tmp/ids.jsonl" 0 tokenize --tokenizer "$tmp/tok/neox-pairs/tokenizer.json" --decode
  check "tokenize --decode: text equals HF's" same_as_hf "$tmp/out" text decoded
  check "tokenize --decode --skip-special" run_in "$tmp/ids.jsonl" 0 tokenize --tokenizer "$tmp/tok/neox-pairs" --decode --skip-special
  check "tokenize --skip-special: text equals HF's" same_as_hf "$tmp/out" text decoded_skip
  sed 's/"type": "BPE"/"type": "WordPiece"/' "$tmp/tok/neox-pairs/tokenizer.json" >"$tmp/wordpiece.json"
  check "tokenize: unsupported model fails" run_in "$tmp/texts.jsonl" 1 tokenize --tokenizer "$tmp/wordpiece.json"
  check "tokenize: unsupported model named" grep -q 'wordpiece.json: model.type "WordPiece" is not supported (expected "BPE")' "$tmp/err"
fi

# generate on tiny presets (byte tokenizer): deterministic per seed, streams, honours --stop, clear errors.
check "generate (greedy)" run 0 --threads 1 generate --model preset:mamba2-tiny --prompt "Hello" --max-new-tokens 12
cp "$tmp/out" "$tmp/gen1"
check "generate reports speed on stderr" grep -q "tokens/s decoding" "$tmp/err"
check "generate again: same text" run 0 --threads 1 generate --model preset:mamba2-tiny --prompt "Hello" --max-new-tokens 12
check "greedy generation is deterministic" cmp -s "$tmp/out" "$tmp/gen1"
check "generate (sampling)" run 0 generate --model preset:pythia-tiny --prompt "ab" --max-new-tokens 40 --temperature 1.5 --top-k 50 --top-p 0.9 --seed 7 --ignore-eos
cp "$tmp/out" "$tmp/gen2"
check "generate (same seed)" run 0 generate --model preset:pythia-tiny --prompt "ab" --max-new-tokens 40 --temperature 1.5 --top-k 50 --top-p 0.9 --seed 7 --ignore-eos
check "sampling with a seed is reproducible" cmp -s "$tmp/out" "$tmp/gen2"
first_char=$(head -c 1 "$tmp/gen2")
if [ -n "$first_char" ] && [ "$first_char" != " " ]; then
  check "generate --stop" run 0 generate --model preset:pythia-tiny --prompt "ab" --max-new-tokens 40 --temperature 1.5 --top-k 50 --top-p 0.9 --seed 7 --ignore-eos --stop "$first_char"
  check "--stop cuts before the stop string" test "$(cat "$tmp/out")" = ""
fi
check "generate: unknown preset fails" run 1 generate --model preset:mamba-7b --prompt x
check "generate: unknown preset: presets listed" grep -q "unknown preset \"mamba-7b\"; presets are: mamba-130m" "$tmp/err"
check "generate: bad dtype fails" run 1 generate --model preset:mamba-tiny --prompt x --dtype fp8
check "generate: bad dtype: one line" one_line_error
check "generate: published preset without tokenizer fails" run 1 generate --model preset:mamba-130m --prompt x
check "generate: asks for --tokenizer" grep -q -- "--tokenizer PATH" "$tmp/err"
check "generate --dtype bf16" run 0 generate --model preset:mamba-tiny --prompt "Hi" --max-new-tokens 4 --dtype bf16
check "info preset:mamba2-tiny" run 0 info preset:mamba2-tiny --json
check "info preset: family and sizes" python3 - "$tmp/out" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
assert j["family"] == "mamba2" and j["sizes"]["num_heads"] == 8 and j["parameters"] > 100000, j
PY
check "bench-model on a tiny preset" run 0 bench-model --model preset:mamba-tiny --prompt-tokens 16 --decode-tokens 4 --repeats 1 --json
check "bench-model: JSON with floors" python3 -c "import json,sys; j=json.load(open(sys.argv[1])); assert j['prefill_gemm_floor_s']>0 and j['decode_floor_s_per_token']>0 and j['read_gb_per_s']>0, j" "$tmp/out"
check "bench-train: unknown --mode fails" run 1 bench-train --model preset:mamba-tiny --mode lora-fp8
check "bench-train: unknown --mode: one line" one_line_error
check "bench-train: unknown --mode named" grep -q '^mamba-ft: error: bench-train: --mode must be full-fp32, full-bf16, lora-fp32 or lora-bf16; got "lora-fp8"' "$tmp/err"
check "bench-train on a tiny preset" run 0 bench-train --model preset:mamba-tiny --mode lora-bf16 --seq 16 --steps 2 --warmup 0 --gemm-repeats 1 --json
check "bench-train: JSON keys" python3 - "$tmp/out" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
keys = ["tokens_per_s", "step_s", "forward_s", "backward_s", "optimizer_s", "roofline_s", "roofline_pct", "gemm_gflop",
        "gemm_gflops", "rss_after_load_mb", "peak_rss_over_load_mb", "memory_per_token_kb", "lora_targets", "threads"]
assert all(k in j for k in keys), [k for k in keys if k not in j]
assert j["mode"] == "lora-bf16" and j["seq"] == 16 and j["tokens_per_s"] > 0 and j["roofline_s"] > 0, j
assert set(j["gemm_gflops"]) == {"bf16", "fp32"} and "in_proj" in j["lora_targets"], j
# One floor per timed step, each step against its own floor; the reported value is their median.
per = j["roofline_pct_per_step"]
assert len(per) == 2 and all(p > 0 for p in per) and min(per) <= j["roofline_pct"] <= max(per), j
assert j["peak_rss_over_load_mb"] > 0, j
# A Mamba model's scans are timed too; the bound is roofline / (roofline + scans).
assert j["scan_s"] > 0 and abs(j["roofline_pct_max"] - 100 * j["roofline_s"] / (j["roofline_s"] + j["scan_s"])) < 1e-6, j
PY

# score: lm-eval loglikelihood requests (JSONL) on a tiny preset with the byte tokenizer: results in input
# order on stdout (or --output), blank lines skipped, a bad line named by its number with a non-zero exit.
printf '{"context": "The cat", "continuation": " sat"}\n\n{"text": "hello world"}\n{"context": "", "continuation": "Hi"}\n' >"$tmp/req.jsonl"
check "score (preset)" run 0 --threads 1 score --model preset:mamba-tiny --requests "$tmp/req.jsonl" --batch-size 2
check "score: one line per request, fields by kind" python3 - "$tmp/out" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
assert [sorted(r) for r in rows] == [["is_greedy", "loglikelihood", "num_tokens"], ["loglikelihood", "num_tokens"],
                                     ["is_greedy", "loglikelihood", "num_tokens"]], rows
assert [r["num_tokens"] for r in rows] == [4, 11, 2], rows
assert all(r["loglikelihood"] < 0 for r in rows), rows
PY
check "score: summary on stderr" grep -q "^score: 3 requests in" "$tmp/err"
cp "$tmp/out" "$tmp/scores-stdout.jsonl"
check "score --output" run 0 --threads 1 score --model preset:mamba-tiny --requests "$tmp/req.jsonl" --output "$tmp/scores.jsonl"
check "score --output: nothing on stdout" test ! -s "$tmp/out"
check "score --output: same results as stdout" cmp -s "$tmp/scores.jsonl" "$tmp/scores-stdout.jsonl"
check "score --output: no temporary file left" test -z "$(find "$tmp" -name 'scores.jsonl.tmp*')"
printf '{"context": "a", "continuation": "b"}\n{"context": "a"}\n' >"$tmp/bad.jsonl"
check "score: bad line fails" run 1 score --model preset:mamba-tiny --requests "$tmp/bad.jsonl"
check "score: bad line named" grep -q "^mamba-ft: error: score: $tmp/bad.jsonl line 2: \"continuation\" is missing" "$tmp/err"
check "score: bad line: one line" one_line_error
check "score: bad line: nothing on stdout" test ! -s "$tmp/out"
printf '{"context": "a", "continuation": "b"}\n{"context": "a", "continuation": "b"\n' >"$tmp/bad.jsonl"
check "score: bad JSON fails" run 1 score --model preset:mamba-tiny --requests "$tmp/bad.jsonl"
check "score: bad JSON named" grep -q "bad.jsonl line 2: not valid JSON" "$tmp/err"
printf '{"text": "a"}\n{"context": "a", "continuation": ""}\n' >"$tmp/bad.jsonl"
check "score: empty continuation fails" run 1 score --model preset:mamba-tiny --requests "$tmp/bad.jsonl"
check "score: empty continuation named" grep -q "bad.jsonl line 2: the continuation has no tokens" "$tmp/err"
check "score: missing requests file fails" run 1 score --model preset:mamba-tiny --requests "$tmp/none.jsonl"
check "score: unwritable --output fails" run 1 score --model preset:mamba-tiny --requests "$tmp/req.jsonl" --output /nonexistent/dir/x.jsonl
check "score: unwritable --output: one line" one_line_error
check "score --batch-size 0 fails" run nonzero score --model preset:mamba-tiny --requests "$tmp/req.jsonl" --batch-size 0

if [ -n "$python" ]; then
  # score on a random HF Mamba with a BPE tokenizer equals lm-eval's HF backend (tests/eval/lm_eval_oracle.py).
  "$python" "$tests_dir/eval/make_scoring_model.py" "$tmp/score" mamba
  cat >"$tmp/score/mamba/requests.jsonl" <<'JSONL'
{"context": "The cat sat on the", "continuation": " mat."}
{"context": "Question: what is the answer?\nAnswer: ", "continuation": "the answer"}
{"text": "The dog sat on the log. Hello, world! How are you doing today?"}
{"context": "", "continuation": "caf\u00e9 \ud83d\ude42"}
JSONL
  "$python" "$tests_dir/eval/lm_eval_oracle.py" --max-length 16 "$tmp/score/mamba"
  check "score (HF model)" run 0 score --model "$tmp/score/mamba" --requests "$tmp/score/mamba/requests.jsonl" --max-length 16 --batch-size 4
  check "score equals lm-eval's HF backend" "$python" - "$tmp/out" "$tmp/score/mamba/oracle-16.jsonl" <<'PY'
import json, sys
ours = [json.loads(line) for line in open(sys.argv[1])]
want = [json.loads(line) for line in open(sys.argv[2])]
assert len(ours) == len(want) == 4, (ours, want)
for o, w in zip(ours, want):
    assert o.keys() == w.keys() and o["num_tokens"] == w["num_tokens"] and o.get("is_greedy") == w.get("is_greedy"), (o, w)
    # The bound of tests/eval/test_loglikelihood.cpp (derived there).
    assert abs(o["loglikelihood"] - w["loglikelihood"]) <= 1e-4 * max(1, abs(w["loglikelihood"])), (o, w)
PY
fi

# train: a tiny LoRA recipe for a few steps, --print-config, refusals, and Ctrl-C saving a checkpoint.
recipes=$(dirname "$(realpath "$exe")")/../recipes
[ -d "$recipes" ] || recipes=$(cd "$(dirname "$0")/../../recipes" && pwd)
check "make-data" run 0 make-data --out "$tmp/qd"
check "make-data wrote the corpus" test -s "$tmp/qd/corpus.txt"
check "train (tiny LoRA, 3 steps)" run 0 --threads 1 train "$recipes/tiny-mamba-lora.yaml" \
  "data.train_file=$tmp/qd/instruct.jsonl" "output.dir=$tmp/run" trainer.max_steps=3 trainer.eval_every=0 \
  trainer.log_every=1
check "train wrote a PEFT adapter" test -s "$tmp/run/adapter/adapter_model.safetensors"
check "train wrote metrics" test "$(wc -l <"$tmp/run/metrics.jsonl")" -eq 3
check "train into an existing folder fails" run 1 train "$recipes/tiny-mamba-lora.yaml" \
  "data.train_file=$tmp/qd/instruct.jsonl" "output.dir=$tmp/run" trainer.max_steps=3 output.overwrite=false
check "existing folder: says how to go on" grep -q "set output.resume=true" "$tmp/err"
check "train --print-config" run 0 train "$recipes/tiny-mamba-lora.yaml" optimizer.lr=0.01 --print-config
check "--print-config shows the override" grep -Eq "^  lr: 0.01" "$tmp/out"
check "train --print-reference" run 0 train --print-reference
check "recipes/REFERENCE.md is the generated reference" cmp -s "$tmp/out" "$recipes/REFERENCE.md"
check "unknown key fails" run 1 train "$recipes/tiny-mamba-lora.yaml" optimizer.lrr=1 --print-config
check "unknown key: closest key named" grep -q "did you mean 'optimizer.lr'" "$tmp/err"
check "unknown key: one line" one_line_error
"$exe" --threads 1 train "$recipes/tiny-mamba-lora.yaml" "data.train_file=$tmp/qd/instruct.jsonl" \
  "output.dir=$tmp/intr" trainer.max_steps=100000 trainer.eval_every=0 trainer.save_every=0 >"$tmp/out" 2>"$tmp/err" &
pid=$!
for _ in $(seq 1 100); do [ -s "$tmp/intr/metrics.jsonl" ] && break; sleep 0.2; done
kill -INT $pid
wait $pid
check "Ctrl-C exits with 130" test $? -eq 130
check "Ctrl-C saved a checkpoint" test -n "$(ls "$tmp/intr/checkpoints" 2>/dev/null | grep '^step-')"
check "Ctrl-C says how to resume" grep -q "output.resume=true" "$tmp/err"

# eval / compare: lm-eval tasks from a recipe or flags, the quickstart's few-shot tasks, results JSON in
# lm-eval's shape per shot count, one-line errors; compare's divergence and ICL tables.
qd="$tmp/qd"
[ -f "$qd/icl/capitals.yaml" ] || "$exe" make-data --out "$qd" >/dev/null
check "eval on synthetic ICL tasks" run 0 --threads 1 eval --model preset:mamba-tiny --tasks "$qd/icl/capitals.yaml,$qd/icl/recall.yaml" \
  --shots 0,1 --limit 6 --output "$tmp/eval.json" --log-samples
check "eval: markdown table on stdout" grep -q "^|capitals|" "$tmp/out"
check "eval: results JSON in lm-eval's shape" python3 - "$tmp/eval.json" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
for k in ("0", "1"):
    r = j["shots"][k]["results"]
    assert set(r["capitals"]) >= {"acc,none", "acc_stderr,none", "acc_norm,none", "alias"}, r
    assert set(r["recall"]) >= {"perplexity,none", "acc,none"}, r
    assert j["shots"][k]["n-samples"]["capitals"] == {"original": 60, "effective": 6}
    assert len(j["shots"][k]["samples"]["capitals"]) == 6
assert j["config"]["shots"] == [0, 1] and j["config"]["model"] == "preset:mamba-tiny", j["config"]
PY
check "eval: no temporary file left" test -z "$(find "$tmp" -name 'eval.json.tmp*')"
check "eval: several seeds" run 0 --threads 1 eval --model preset:mamba-tiny --tasks "$qd/icl/capitals.yaml" --shots 0,1 \
  --seeds 1234,7 --limit 4 --output "$tmp/eval2.json"
check "eval: seeds under \"seeds\", the first at the top" python3 - "$tmp/eval2.json" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
assert set(j["seeds"]) == {"1234", "7"} and j["shots"] == j["seeds"]["1234"]["shots"]
PY
printf 'model:\n  path: "preset:mamba-tiny"\neval:\n  tasks: [%s]\n  shots: [0]\n  limit: 3\n' "$qd/icl/arithmetic.yaml" >"$tmp/eval.yaml"
check "eval RECIPE.yaml with an override" run 0 --threads 1 eval "$tmp/eval.yaml" eval.limit=2 --output "$tmp/eval3.json"
check "eval: recipe override applied" python3 -c "import json,sys; j=json.load(open(sys.argv[1])); assert j['config']['limit']==2 and j['shots']['0']['n-samples']['arithmetic']['effective']==2" "$tmp/eval3.json"
check "eval: unknown task fails" run 1 eval --model preset:mamba-tiny --tasks hellswag --data-dir "$tmp"
check "eval: unknown task: closest name" grep -q 'unknown task "hellswag"; did you mean "hellaswag"?' "$tmp/err"
check "eval: unknown task: one line" one_line_error
check "eval: missing split fails" run 1 eval --model preset:mamba-tiny --tasks piqa --data-dir "$tmp/nodata"
check "eval: missing split: says how to export it" grep -q 'nodata/piqa/validation.jsonl is missing; export it with' "$tmp/err"
check "eval: missing split: one line" one_line_error
check "eval: bad --shots fails" run 1 eval --model preset:mamba-tiny --tasks "$qd/icl/capitals.yaml" --shots 0,x
check "eval: bad --shots named" grep -q 'shots must be integers' "$tmp/err"
check "eval: recipe without tasks fails" run 1 eval "$tmp/eval.yaml" 'eval.tasks=[]'
check "eval: recipe without tasks named" grep -q "eval.tasks" "$tmp/err"
if [ -f "$tmp/run/adapter/adapter_config.json" ]; then
  check "eval with an adapter in bf16" run 0 --threads 1 eval --model preset:mamba-tiny --adapter "$tmp/run/adapter" \
    --dtype bf16 --tasks "$qd/icl/capitals.yaml" --limit 3 --output "$tmp/eval4.json"
  check "eval: adapter and dtype recorded" python3 -c "import json,sys; c=json.load(open(sys.argv[1]))['config']; assert c['dtype']=='bf16' and c['adapter'].endswith('adapter'), c" "$tmp/eval4.json"
else
  check "the train test left an adapter for eval" false
fi
check "compare" run 0 compare "$tmp/eval.json" --reference "$tmp/eval.json" --pair "$tmp/eval.json=$tmp/eval.json" --csv-dir "$tmp/cmp"
check "compare: zero divergence from itself" grep -q '|eval|capitals|acc|0.00||' "$tmp/out"
check "compare: ICL ratio 100 % against itself" python3 -c "import csv,sys; rows=list(csv.DictReader(open(sys.argv[1]))); r=[x for x in rows if x['task']=='capitals'][0]; assert r['icl_ratio_percent']=='' or abs(float(r['icl_ratio_percent'])-100)<1e-9, r" "$tmp/cmp/icl.csv"
check "compare: divergence CSV" grep -q '^run,task,metric,divergence_points' "$tmp/cmp/divergence.csv"
check "compare: not a results file fails" run 1 compare "$tmp/eval.yaml"
check "compare: one line" one_line_error

# stability: perturbation experiment, Lyapunov exponents and precision divergence on tiny presets.
check "stability perturb" run 0 --threads 1 stability perturb --blocks 3 --steps 12 --eps 1e-3 --output "$tmp/st.json"
check "stability perturb: all blocks decay" grep -q '|0.001|.*|100%|' "$tmp/out"
check "stability perturb: JSON" python3 -c "import json,sys; j=json.load(open(sys.argv[1])); c=j['result']['curves'][0]; assert j['kind']=='perturbation' and len(c['rates'])==3 and len(c['median_state_deviation'])==12" "$tmp/st.json"
check "stability lyapunov" run 0 --threads 1 stability lyapunov --model preset:mamba2-tiny --tokens 32 --k 2 --output "$tmp/ly.json"
check "stability lyapunov: λ̂ <= 0 per layer" python3 -c "import json,sys; j=json.load(open(sys.argv[1])); assert len(j['layers'])==4 and all(l['exact']<=0 for l in j['layers'])" "$tmp/ly.json"
check "stability lyapunov on a Transformer fails" run 1 stability lyapunov --model preset:pythia-tiny --tokens 8
check "stability lyapunov on a Transformer: named" grep -q "no diagonal recurrence" "$tmp/err"
check "stability lyapunov on a Transformer: one line" one_line_error
check "stability precision" run 0 --threads 1 stability precision --model preset:pythia-tiny --tokens 16
check "stability precision: four modes" test "$(grep -c '^|\(bf16\|fp16\)' "$tmp/out")" -eq 4
check "stability: bad --eps fails" run 1 stability perturb --eps 1e-3,x
check "stability: bad --eps: one line" one_line_error

echo "$pass passed, $failures failed"
[ $failures -eq 0 ]
