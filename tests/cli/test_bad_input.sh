#!/usr/bin/env bash
# Hostile input, case by case: every subcommand given bad arguments, files that are missing, folders, deeply
# nested JSON and YAML, sizes that would exhaust memory, configs out of range, NaN/Inf weights and results,
# occupied or existing output folders. Each case asserts the exit code, exactly one error line
# ("mamba-ft: error: ...", the last line on stderr) naming the file, key or argument and what was
# expected, no crash or stack dump, and no temporary file left behind.
# Usage: test_bad_input.sh BUILD/mamba-ft
set -uo pipefail
exe=$1
here=$(cd "$(dirname "$0")" && pwd)
recipes=$(cd "$here/../../recipes" && pwd)
fx() { python3 "$here/fixtures.py" "$@"; }
# shellcheck source=cli_lib.sh
source "$here/cli_lib.sh"

cases=0
# bad NAME RC PATTERN ARGS...: mamba-ft ARGS (stdin: $stdin_file, default /dev/null) exits RC with one error
# line matching the extended regex PATTERN.
bad() {
  local name=$1 want=$2 pattern=$3
  shift 3
  cases=$((cases + 1))
  "$exe" "$@" <"${stdin_file:-/dev/null}" >"$tmp/out" 2>"$tmp/err"
  local rc=$? why=""
  [ "$rc" -eq "$want" ] || why="exit $rc, expected $want"
  [ "$(grep -c '^mamba-ft: error: ' "$tmp/err")" -eq 1 ] || why="$why; not exactly one error line"
  tail -n 1 "$tmp/err" | grep -Eq "^mamba-ft: error: .*($pattern)" || why="$why; last line does not match /$pattern/"
  ! grep -Eq 'terminate called|Exception raised from|frame #[0-9]|Segmentation|Aborted' "$tmp/err" || why="$why; crash or stack dump"
  local left
  left=$(find "$tmp" -name '*.tmp-*' 2>/dev/null | head -3)
  [ -z "$left" ] || why="$why; temporary files left: $left"
  if [ -z "$why" ]; then
    pass=$((pass + 1))
  else
    failures=$((failures + 1))
    echo "FAIL: $name: $why"
    echo "  stderr: $(tail -n 3 "$tmp/err" | cut -c1-400)"
  fi
}

# ---- fixtures ------------------------------------------------------------------------------------------------
qd=$tmp/qd
"$exe" make-data --out "$qd" >/dev/null
for fam in mamba pythia; do
  r=$recipes/tiny-mamba-lora.yaml
  [ $fam = pythia ] && r=$recipes/tiny-pythia-full.yaml
  "$exe" --threads 1 train "$r" "data.train_file=$qd/instruct.jsonl" "output.dir=$tmp/run-$fam" peft.method=full \
    trainer.max_steps=1 trainer.eval_every=0 data.val_fraction=0 >/dev/null 2>&1
done
m=$tmp/run-mamba/final
p=$tmp/run-pythia/final
check "fixture: a tiny Mamba folder" test -s "$m/model.safetensors"
check "fixture: a tiny Pythia folder" test -s "$p/model.safetensors"
printf '{"context": "a", "continuation": " b"}\n' >"$tmp/req.jsonl"
printf 'model:\n  path: "preset:mamba-tiny"\ndata:\n  train_file: %s\noutput:\n  dir: %s\n' "$qd/instruct.jsonl" "$tmp/ok" \
  >"$tmp/ok.yaml"
deep() { fx deep "$@"; }

# ---- command line ---------------------------------------------------------------------------------------------
bad "no command" 2 "subcommand is required"
bad "unknown command" 2 "unknown command 'frobnicate'; commands are: info" frobnicate
bad "unknown option" 2 "--frob"  info --frob
bad "--threads 0" 2 "--threads: must be an integer from 1 to [0-9]+; got '0'" --threads 0 info
bad "--threads 100000 (no hang)" 2 "--threads: must be an integer from 1 to [0-9]+; got '100000'" --threads 100000 info
bad "--threads -1" 2 "--threads" --threads -1 info
bad "--threads abc" 2 "--threads: must be an integer" --threads abc info
bad "--threads after the command" 2 "--threads: must be an integer" info --threads 0
bad "generate --max-new-tokens -5" 2 "--max-new-tokens: must be an integer from 0 to 1048576; got '-5'" \
  generate --model preset:mamba-tiny --prompt x --max-new-tokens -5
bad "generate --max-new-tokens 10^12" 2 "--max-new-tokens: must be an integer from 0 to" \
  generate --model preset:mamba-tiny --prompt x --max-new-tokens 1000000000000
bad "generate --top-p 2" 2 "--top-p: must be a number from 0 to 1; got '2'" generate --model preset:mamba-tiny --prompt x --top-p 2
bad "generate --temperature nan" 2 "--temperature: must be a number from 0 to 100" generate --model preset:mamba-tiny --prompt x --temperature nan
bad "generate --temperature -1" 2 "--temperature" generate --model preset:mamba-tiny --prompt x --temperature -1
bad "generate --top-k -3" 2 "--top-k: must be an integer" generate --model preset:mamba-tiny --prompt x --top-k -3
bad "generate: empty prompt" 1 "generate: --prompt must not be empty" generate --model preset:mamba-tiny --prompt ""
bad "generate: empty --stop" 1 "--stop strings must not be empty" generate --model preset:mamba-tiny --prompt x --stop ""
bad "generate --dtype fp8" 1 "dtype \"fp8\" is not one of fp32, bf16, fp16" generate --model preset:mamba-tiny --prompt x --dtype fp8
bad "generate --device cuda" 1 "--device cuda: this build or machine has no CUDA device" generate --model preset:mamba-tiny --prompt x --device cuda
bad "generate: unknown preset" 1 "unknown preset \"mamba-7b\"; presets are" generate --model preset:mamba-7b --prompt x
bad "generate: --template folder without template.json" 1 "template.json" generate --model preset:mamba-tiny --prompt x --template "$qd"
bad "generate: missing --model" 2 "--model is required" generate --prompt x
bad "score --batch-size 0" 2 "--batch-size: must be an integer from 1 to" score --model preset:mamba-tiny --requests "$tmp/req.jsonl" --batch-size 0
bad "score --max-length 0" 2 "--max-length: must be an integer from 1 to" score --model preset:mamba-tiny --requests "$tmp/req.jsonl" --max-length 0
bad "score --max-length 2^40" 2 "--max-length: must be an integer from 1 to 1048576" score --model preset:mamba-tiny --requests "$tmp/req.jsonl" --max-length 1099511627776
bad "eval --batch-size 0" 2 "--batch-size" eval --model preset:mamba-tiny --tasks "$qd/icl/capitals.yaml" --batch-size 0
bad "eval --limit -3" 2 "--limit: must be an integer from 0 to" eval --model preset:mamba-tiny --tasks "$qd/icl/capitals.yaml" --limit -3
bad "eval --shots 0,x" 1 "shots must be integers" eval --model preset:mamba-tiny --tasks "$qd/icl/capitals.yaml" --shots 0,x
bad "eval --seeds x" 1 "seeds must be integers" eval --model preset:mamba-tiny --tasks "$qd/icl/capitals.yaml" --seeds x
bad "eval: unknown task" 1 "unknown task \"hellswag\"; did you mean \"hellaswag\"" eval --model preset:mamba-tiny --tasks hellswag
bad "eval: no tasks" 1 "give --tasks" eval --model preset:mamba-tiny
bad "bench --dim 0" 2 "--dim: must be an integer from 1 to 65536" bench --dim 0
bad "bench --dstate 4096" 2 "--dstate: must be an integer from 1 to 1024" bench --dstate 4096
bad "bench --dtype fp8" 2 "--dtype" bench --dtype fp8
bad "bench --seqlen 0" 2 "--seqlen: must be an integer" bench --seqlen 0
bad "bench --repeats 0" 2 "--repeats: must be an integer" bench --repeats 0
bad "bench-model --prompt-tokens 0" 2 "--prompt-tokens: must be an integer" bench-model --model preset:mamba-tiny --prompt-tokens 0
bad "bench-train --mode lora-fp8" 1 "--mode must be full-fp32, full-bf16, lora-fp32 or lora-bf16; got \"lora-fp8\"" bench-train --model preset:mamba-tiny --mode lora-fp8
bad "bench-train --seq 0" 2 "--seq: must be an integer" bench-train --model preset:mamba-tiny --seq 0
bad "bench-train --batch 10^9" 2 "--batch: must be an integer from 1 to 65536" bench-train --model preset:mamba-tiny --batch 1000000000
bad "bench-train --lora-rank 0" 2 "--lora-rank" bench-train --model preset:mamba-tiny --lora-rank 0
bad "stability lyapunov --tokens 0" 2 "--tokens: must be an integer from 1 to" stability lyapunov --model preset:mamba-tiny --tokens 0
bad "stability lyapunov --k -1" 2 "--k: must be an integer" stability lyapunov --model preset:mamba-tiny --k -1
bad "stability lyapunov --k beyond the state (no hang)" 1 "k = 100000 directions exceed the model's recurrent state size 8192" \
  stability lyapunov --model preset:mamba-tiny --tokens 8 --k 100000
bad "stability lyapunov --warmup >= --tokens" 1 "warmup" stability lyapunov --model preset:mamba-tiny --tokens 8 --warmup 8 --k 0
bad "stability lyapunov on a Transformer" 1 "no diagonal recurrence" stability lyapunov --model preset:pythia-tiny --tokens 8
bad "stability perturb --steps 2" 2 "--steps: must be an integer from 3 to 100000" stability perturb --steps 2
bad "stability perturb --eps x" 1 "--eps must be numbers separated by commas" stability perturb --eps 1e-3,x
bad "stability perturb --blocks 0" 2 "--blocks" stability perturb --blocks 0
bad "stability perturb: unknown preset" 1 "preset" stability perturb --preset nope --blocks 1 --steps 3

# ---- files and folders ------------------------------------------------------------------------------------
bad "info on a missing folder" 1 "$tmp/nope" info "$tmp/nope"
bad "info on a file" 1 "req.jsonl is not a model folder" info "$tmp/req.jsonl"
bad "info on a folder without config.json" 1 "config.json" info "$qd"
bad "score --requests missing" 1 "score: cannot read $tmp/none.jsonl" score --model preset:mamba-tiny --requests "$tmp/none.jsonl"
bad "score --requests a folder" 1 "score: --requests $tmp is a folder \(expected a JSONL file\)" score --model preset:mamba-tiny --requests "$tmp"
: >"$tmp/empty.jsonl"
bad "score: no requests" 1 "holds no requests" score --model preset:mamba-tiny --requests "$tmp/empty.jsonl"
bad "score --output in a missing folder" 1 "score: cannot write /nonexistent/dir/x.jsonl: folder /nonexistent/dir does not exist" \
  score --model preset:mamba-tiny --requests "$tmp/req.jsonl" --output /nonexistent/dir/x.jsonl
bad "score --output a folder" 1 "it is a folder" score --model preset:mamba-tiny --requests "$tmp/req.jsonl" --output "$tmp"
bad "eval --output in a missing folder (not created)" 1 "eval: cannot write $tmp/a/b/r.json: folder $tmp/a/b does not exist" \
  eval --model preset:mamba-tiny --tasks "$qd/icl/capitals.yaml" --limit 1 --output "$tmp/a/b/r.json"
check "eval --output: no folder was created" test ! -e "$tmp/a"
bad "eval: missing task YAML" 1 "no such task file|unknown task" eval --model preset:mamba-tiny --tasks "$tmp/none.yaml"
bad "eval: missing data split" 1 "is missing; export it with" eval --model preset:mamba-tiny --tasks piqa --data-dir "$tmp/nodata"
bad "tokenize: missing tokenizer" 1 "none.json: no such file" tokenize --tokenizer "$tmp/none.json"
bad "tokenize: folder without tokenizer.json" 1 "tokenizer.json" tokenize --tokenizer "$qd"
bad "export --output a folder" 1 "export: cannot write $tmp: it is a folder" export --model preset:mamba-tiny --output "$tmp"
bad "export --output in a missing folder" 1 "export: cannot write /nonexistent/x.pt: folder /nonexistent does not exist" \
  export --model preset:mamba-tiny --output /nonexistent/x.pt
bad "merge: missing adapter" 1 "adapter_config.json not found" merge --model preset:mamba-tiny --adapter "$tmp/none" --output "$tmp/merged"
bad "compare: not a results file" 1 "not a \`mamba-ft eval\` results file" compare "$tmp/req.jsonl"
bad "report: missing folder" 1 "report" report "$tmp/none"
bad "train: missing recipe" 2 "RECIPE" train "$tmp/none.yaml"
bad "train: recipe is a folder" 2 "RECIPE" train "$tmp"
bad "train: missing data file" 1 "$tmp/none.jsonl" train "$recipes/tiny-mamba-lora.yaml" "data.train_file=$tmp/none.jsonl" "output.dir=$tmp/r1"
bad "sweep: missing file" 2 "SWEEP" sweep "$tmp/none.yaml"

# ---- deeply nested JSON (70,000 levels crashed before; the limit is 512) ----------------------------------
deep 70000 '[' ']' '{"text": ' '}' >"$tmp/deep.jsonl"
stdin_file=$tmp/deep.jsonl bad "tokenize: deep JSON line" 1 "tokenize: line 1: JSON nested deeper than 512 levels"  tokenize --tokenizer bytes
deep 70000 '{"a":' '}' >"$tmp/deep-obj.jsonl"
stdin_file=$tmp/deep-obj.jsonl bad "tokenize: deep JSON objects" 1 "nested deeper than 512" tokenize --tokenizer bytes
deep 513 '[' ']' '{"text": ' '}' >"$tmp/deep513.jsonl"
stdin_file=$tmp/deep513.jsonl bad "tokenize: 513 levels" 1 "nested deeper than 512" tokenize --tokenizer bytes
deep 70000 '[' ']' '{"context": "a", "continuation": ' '}' >"$tmp/deep-req.jsonl"
bad "score: deep request" 1 "deep-req.jsonl line 1: JSON nested deeper than 512" score --model preset:mamba-tiny --requests "$tmp/deep-req.jsonl"
deep 70000 '[' ']' '{"instruction": "a", "input": "", "output": ' '}' >"$tmp/deep-data.jsonl"
bad "train: deep data record" 1 "deep-data.jsonl.*nested deeper than 512" train "$recipes/tiny-mamba-lora.yaml" \
  "data.train_file=$tmp/deep-data.jsonl" "output.dir=$tmp/r2" data.val_fraction=0
fx config "$m" "$tmp/m-deepcfg" 'vocab_size=272'
deep 70000 '[' ']' '{"model_type": "mamba", "x": ' '}' >"$tmp/m-deepcfg/config.json"
bad "info: deep config.json" 1 "config.json.*nested deeper than 512" info "$tmp/m-deepcfg"
mkdir -p "$tmp/tok-deep"
deep 70000 '[' ']' '{"version": "1.0", "x": ' '}' >"$tmp/tok-deep/tokenizer.json"
bad "tokenize: deep tokenizer.json" 1 "tokenizer.json: JSON nested deeper than 512" tokenize --tokenizer "$tmp/tok-deep"
mkdir -p "$tmp/task"
deep 70000 '[' ']' '{"country": "a", "choices": ' ', "label": 0}' >"$tmp/task/test.jsonl"
cp "$tmp/task/test.jsonl" "$tmp/task/train.jsonl"
sed "s|capitals/|$tmp/task/|g" "$qd/icl/capitals.yaml" >"$tmp/task/deep.yaml"
bad "eval: deep task docs" 1 "test.jsonl:1: JSON nested deeper than 512" eval --model preset:mamba-tiny --tasks "$tmp/task/deep.yaml" --limit 1
deep 513 '[' ']' '[' ']' >"$tmp/deep-results.json"
bad "compare: deep results file" 1 "nested deeper than 512" compare "$tmp/deep-results.json"
fx header-depth "$m" "$tmp/m-deephdr" 70000
bad "info: deep safetensors header" 1 "header is not valid JSON \(JSON nested deeper than 512" info "$tmp/m-deephdr"
mkdir -p "$tmp/adapter-deep"
deep 70000 '[' ']' '{"r": ' '}' >"$tmp/adapter-deep/adapter_config.json"
: >"$tmp/adapter-deep/adapter_model.safetensors"
bad "merge: deep adapter_config.json" 1 "adapter_config.json: JSON nested deeper than 512" merge --model preset:mamba-tiny \
  --adapter "$tmp/adapter-deep" --output "$tmp/merged"

# ---- deeply nested and aliased YAML ------------------------------------------------------------------------
deep 5000 '[' ']' 'model: {path: "preset:mamba-tiny"}
x: ' >"$tmp/deep.yaml"
bad "train: deep YAML recipe" 1 "deep.yaml: YAML nested deeper than 256 levels" train "$tmp/deep.yaml" --print-config
deep 300 '[' ']' 'model: {path: "preset:mamba-tiny"}
x: ' >"$tmp/deep300.yaml"
bad "train: 300-level YAML" 1 "YAML nested deeper than 256" train "$tmp/deep300.yaml" --print-config
{
  echo 'a0: &a0 [x, x]'
  for i in $(seq 1 30); do echo "a$i: &a$i [*a$((i - 1)), *a$((i - 1))]"; done
} >"$tmp/laughs.yaml"
bad "train: billion-laughs aliases" 1 "laughs.yaml: YAML document has more than 1000000 nodes" train "$tmp/laughs.yaml" --print-config
deep 5000 '[' ']' 'sweep: ' >"$tmp/deep-sweep.yaml"
bad "sweep: deep YAML" 1 "YAML nested deeper than 256" sweep "$tmp/deep-sweep.yaml" --dry-run
deep 5000 '[' ']' 'task: x
doc_to_text: ' >"$tmp/deep-task.yaml"
bad "eval: deep task YAML" 1 "deep-task.yaml: YAML nested deeper than 256" eval --model preset:mamba-tiny --tasks "$tmp/deep-task.yaml"
printf 'model: [unclosed\n' >"$tmp/malformed.yaml"
bad "train: malformed YAML" 1 "malformed.yaml: malformed YAML at line" train "$tmp/malformed.yaml" --print-config

# ---- recipe values and sizes ----------------------------------------------------------------------------------
bad "trainer.batch_size=10^9" 1 "trainer.batch_size: must be <= 65536, got 1000000000" train "$tmp/ok.yaml" trainer.batch_size=1000000000 --print-config
bad "peft.rank=10^7" 1 "peft.rank: must be <= 65536, got 10000000" train "$tmp/ok.yaml" peft.rank=10000000 --print-config
bad "data.max_length=10^12" 1 "data.max_length: must be <= 1048576, got 1000000000000" train "$tmp/ok.yaml" data.max_length=1000000000000 --print-config
bad "data.max_length=2^70" 1 "data.max_length" train "$tmp/ok.yaml" data.max_length=1180591620717411303424 --print-config
bad "trainer.grad_accum=0" 1 "trainer.grad_accum: must be > 0" train "$tmp/ok.yaml" trainer.grad_accum=0 --print-config
bad "optimizer.lr=abc" 1 "optimizer.lr" train "$tmp/ok.yaml" optimizer.lr=abc --print-config
bad "unknown key" 1 "did you mean 'optimizer.lr'" train "$tmp/ok.yaml" optimizer.lrr=1 --print-config
bad "eval.max_length=10^9" 1 "eval.max_length: must be <= 1048576" train "$tmp/ok.yaml" eval.max_length=1000000000 --print-config
bad "override without =" 1 "override" train "$tmp/ok.yaml" trainer.max_steps --print-config
bad "train: batch that cannot fit in memory" 1 "train: this run needs about .* GiB.*but this process may use .*; lower trainer.batch_size or data.max_length" \
  train "$recipes/tiny-mamba-lora.yaml" "data.train_file=$qd/instruct.jsonl" "output.dir=$tmp/r3" model.path=preset:mamba-130m \
  peft.method=full trainer.batch_size=65536 data.max_length=1048576
check "refused run: nothing trained, folder left only with its recipe" test ! -e "$tmp/r3/final"
bad "bench-train: too large for memory" 1 "bench-train needs about .*; lower --seq or --batch" \
  bench-train --model preset:mamba-130m --seq 1048576 --batch 64
bad "bench-model: too large for memory" 1 "bench-model needs about" bench-model --model preset:mamba-130m --prompt-tokens 1048576
bad "generate: too long for memory" 1 "model preset:mamba-130m needs about .*; shorten --prompt or lower --max-new-tokens" \
  generate --model preset:mamba-130m --prompt x --max-new-tokens 1048576 --tokenizer bytes
cat >"$tmp/huge-sweep.yaml" <<YAML
sweep:
  output_dir: $tmp/sw
  axes:
    trainer.seed: [$(seq -s, 0 399)]
    optimizer.lr: [$(seq -s, 1 400 | sed 's/[0-9]*/0.&/g')]
    trainer.max_steps: [$(seq -s, 1 400)]
base:
  model: {path: "preset:mamba-tiny"}
  data: {train_file: $qd/instruct.jsonl}
YAML
bad "sweep: 64M points (--dry-run)" 1 "sweep.axes: the axes make 400 x 400 x 400 = 64000000 points; at most 10000" sweep "$tmp/huge-sweep.yaml" --dry-run

# ---- model configs out of range -------------------------------------------------------------------------------
fx config "$m" "$tmp/c1" 'num_hidden_layers=1000000'
bad "config num_hidden_layers 10^6" 1 "num_hidden_layers\" must be an integer from 1 to 1024; got 1000000" info "$tmp/c1"
fx config "$m" "$tmp/c2" 'hidden_size=5000000'
bad "config hidden_size 5e6" 1 "hidden_size\" must be an integer from 1 to 65536; got 5000000" info "$tmp/c2"
fx config "$m" "$tmp/c3" 'hidden_size=1000000000'
bad "config hidden_size 1e9 (no raw alloc error)" 1 "c3/config.json: \"hidden_size\" must be an integer" info "$tmp/c3"
fx config "$m" "$tmp/c4" 'vocab_size=0'
bad "config vocab_size 0" 1 "vocab_size\" must be an integer from 1" info "$tmp/c4"
fx config "$m" "$tmp/c5" 'layer_norm_epsilon=-1'
bad "config layer_norm_epsilon -1" 1 "layer_norm_epsilon\" must be a number in \(0, 1\]; got -1" info "$tmp/c5"
fx config "$m" "$tmp/c6" 'state_size="x"'
bad "config state_size not a number" 1 "state_size\" must be an integer" info "$tmp/c6"
fx config "$m" "$tmp/c7" 'intermediate_size=300000'
bad "config intermediate_size too large" 1 "intermediate_size\" must be an integer from 1 to 262144" info "$tmp/c7"
fx config "$m" "$tmp/c8" 'expand=-2' 'intermediate_size=null'
bad "config expand -2" 1 "expand\" must be a number in \(0, 16\]" info "$tmp/c8"
fx config "$m" "$tmp/c9" 'layer_norm_epsilon={"__float__": "abc"}'
bad "config {\"__float__\": \"abc\"}" 1 "\\{\"__float__\": \"abc\"\\} must hold \"Infinity\", \"-Infinity\", \"NaN\" or a number" info "$tmp/c9"
fx config "$m" "$tmp/c10" 'layer_norm_epsilon={"__float__": "NaN"}'
bad "config layer_norm_epsilon NaN" 1 "layer_norm_epsilon\" must be a number in \(0, 1\]; got null" info "$tmp/c10"
fx config "$m" "$tmp/c11" 'num_hidden_layers=1024' 'hidden_size=65536' 'intermediate_size=131072'
bad "config within bounds but too large for memory" 1 "model $tmp/c11 needs about .* GiB = .*weights \(fp32\) .*but this process may use" info "$tmp/c11"
fx config "$p" "$tmp/n1" 'rotary_pct=2.0'
bad "gpt_neox rotary_pct 2.0" 1 "rotary_pct\" must be a number in \[0, 1\]; got 2" info "$tmp/n1"
fx config "$p" "$tmp/n2" 'rotary_pct=0.5' 'partial_rotary_factor=0.25'
bad "gpt_neox rotary spellings disagree" 1 "partial_rotary_factor\" = 0.25 disagrees with \"rotary_pct\"" info "$tmp/n2"
fx config "$p" "$tmp/n3" 'num_attention_heads=5'
bad "gpt_neox heads do not divide" 1 "must be divisible by num_attention_heads 5" info "$tmp/n3"
fx config "$p" "$tmp/n4" 'layer_norm_eps=0'
bad "gpt_neox layer_norm_eps 0" 1 "layer_norm_eps\" must be a number in \(0, 1\]" info "$tmp/n4"
fx config "$p" "$tmp/n5" 'rope_theta=-5'
bad "gpt_neox rope_theta -5" 1 "rope_theta\" must be a number in \(0, 1e\+12\]" info "$tmp/n5"
fx config "$m" "$tmp/c12" 'model_type="llama"'
bad "config model_type unsupported" 1 "model_type \"llama\" is not supported" info "$tmp/c12"

# ---- NaN / Inf never pass silently ------------------------------------------------------------------------------
fx fill "$m" "$tmp/m-inf" backbone.embeddings.weight inf
bad "score: inf weights" 1 "req.jsonl line 1: the loglikelihood is (NaN|[+-]Inf).*--allow-nonfinite" score --model "$tmp/m-inf" --tokenizer bytes --requests "$tmp/req.jsonl"
check "score --allow-nonfinite reports null" run 0 score --model "$tmp/m-inf" --tokenizer bytes --requests "$tmp/req.jsonl" --allow-nonfinite
check "score --allow-nonfinite: loglikelihood null" grep -q '"loglikelihood":null' "$tmp/out"
bad "eval: inf weights" 1 "the loglikelihood is (NaN|[+-]Inf)" eval --model "$tmp/m-inf" --tokenizer bytes --tasks "$qd/icl/capitals.yaml" --limit 2
bad "generate: inf weights" 1 "generate: the model's logits hold NaN or Inf at new token 1" generate --model "$tmp/m-inf" --tokenizer bytes --prompt hi --max-new-tokens 3
bad "stability lyapunov: inf weights" 1 "stability: the result holds NaN or Inf \(at /" stability lyapunov --model "$tmp/m-inf" --tokenizer bytes --tokens 8 --k 0
bad "stability precision: inf weights" 1 "stability: the result holds NaN or Inf" stability precision --model "$tmp/m-inf" --tokenizer bytes --tokens 8
check "stability --allow-nonfinite writes the result" run 0 stability lyapunov --model "$tmp/m-inf" --tokenizer bytes --tokens 8 --k 0 --allow-nonfinite --output "$tmp/ly.json"
printf '{"text": "abc"}\n{"ids": [1, -3]}\n' >"$tmp/neg.jsonl"
printf '{"ids": [104, -3, 105]}\n' >"$tmp/neg.jsonl"
stdin_file=$tmp/neg.jsonl bad "tokenize --decode: negative id" 1 "line 1: \"ids\" must be token ids \(>= 0\); found -3" tokenize --tokenizer bytes --decode
printf '{"ids": [104, 1.5]}\n' >"$tmp/frac.jsonl"
stdin_file=$tmp/frac.jsonl bad "tokenize --decode: fractional id" 1 "must be an array of integers; found 1.5" tokenize --tokenizer bytes --decode
printf '{"ids": [18446744073709551615]}\n' >"$tmp/big.jsonl"
stdin_file=$tmp/big.jsonl bad "tokenize --decode: id beyond int64" 1 "must be token ids \(>= 0\)" tokenize --tokenizer bytes --decode
printf '{"text": 7}\n' >"$tmp/t7.jsonl"
stdin_file=$tmp/t7.jsonl bad "tokenize: text not a string" 1 "\"text\" must be a string; got 7" tokenize --tokenizer bytes
printf '[1, 2]\n' >"$tmp/arr.jsonl"
stdin_file=$tmp/arr.jsonl bad "tokenize: line not an object" 1 "expected a JSON object with \"text\"" tokenize --tokenizer bytes
printf '{"context": "a", "continuation": 5}\n' >"$tmp/r5.jsonl"
bad "score: continuation not a string" 1 "\"continuation\" must be a string; got 5" score --model preset:mamba-tiny --requests "$tmp/r5.jsonl"
printf '{"context": "a", "continuation": "\xff"}\n' >"$tmp/utf.jsonl"
bad "score: invalid UTF-8" 1 "utf.jsonl line 1: not valid JSON|not valid UTF-8" score --model preset:mamba-tiny --requests "$tmp/utf.jsonl"

# ---- output folders and runs ------------------------------------------------------------------------------------
bad "train into an existing folder" 1 "output folder $tmp/run-mamba already exists; set output.resume=true" \
  train "$recipes/tiny-mamba-lora.yaml" "data.train_file=$qd/instruct.jsonl" "output.dir=$tmp/run-mamba" output.overwrite=false
bad "train: resume without a checkpoint" 1 "has no checkpoint to resume from|already exists" \
  train "$recipes/tiny-mamba-lora.yaml" "data.train_file=$qd/instruct.jsonl" "output.dir=$qd" output.resume=true output.overwrite=false
bad "merge --output into an existing model folder" 1 "merge: --output $p already exists; pass --overwrite to replace it whole" \
  merge --model "$m" --adapter "$tmp/none" --output "$p"
mkdir -p "$tmp/held"
python3 - "$tmp/held" <<'PY'
import json, os, socket, sys, time
json.dump({"host": socket.gethostname(), "pid": os.getppid(), "started": int(time.time()), "command": "train"},
          open(os.path.join(sys.argv[1], ".mamba-ft.lock"), "w"))
PY
bad "train: folder locked by a live run" 1 "output folder $tmp/held is in use by mamba-ft train \(pid [0-9]+ on" \
  train "$recipes/tiny-mamba-lora.yaml" "data.train_file=$qd/instruct.jsonl" "output.dir=$tmp/held"
bad "make-data: folder locked by a live run" 1 "make-data: output folder $tmp/held is in use" make-data --out "$tmp/held"
rm -f "$tmp/held/.mamba-ft.lock"

echo "$cases hostile cases"
check "at least 100 hostile cases" test "$cases" -ge 100
echo "$pass passed, $failures failed"
[ $failures -eq 0 ]
