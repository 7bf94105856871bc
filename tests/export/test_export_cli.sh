#!/usr/bin/env bash
# `mamba-ft export` end to end: archives of each family open with plain torch.jit.load and carry their extra
# files; a tuned model (the tiny LoRA recipe, a few steps) exported with --adapter gives the loglikelihoods
# `mamba-ft score` gives for the merged model (portable and with ops); bad inputs (unknown family, an adapter of
# another model, an unwritable output, a folder as output, a bad dtype) fail in one clear line.
# Usage: test_export_cli.sh BUILD/mamba-ft BUILD/libmft_ops.so VENV_PYTHON TESTS_DIR
set -uo pipefail
exe=$1
lib=$(realpath "$2")
python=$3
tests_dir=$4
# shellcheck source=../cli/cli_lib.sh
source "$tests_dir/cli/cli_lib.sh"

check "--help lists export" run 0 --help
check "--help lists export (text)" grep -q "export" "$tmp/out"
check "export --help" run 0 export --help
check "export --help names --with-ops" grep -q -- "--with-ops" "$tmp/out"

for family in mamba mamba2 pythia; do
  check "export $family-tiny" run 0 --threads 2 export --model "preset:$family-tiny" --output "$tmp/$family.pt"
  check "export $family-tiny: says what it needs" grep -q "plain torch.jit.load" "$tmp/out"
  check "export $family-tiny --with-ops --dtype bf16" run 0 --threads 2 export --model "preset:$family-tiny" \
    --output "$tmp/$family-ops.pt" --with-ops --dtype bf16
done
check "no temporary files left" test -z "$(ls "$tmp" | grep tmp-)"
check "archives: extra files, torch.jit.load, forward shapes" "$python" - "$tmp" "$lib" <<'PY'
import json, sys, zipfile, torch
d, lib = sys.argv[1], sys.argv[2]
for fam, mt in [("mamba", "mamba"), ("mamba2", "mamba2"), ("pythia", "gpt_neox")]:
    names = zipfile.ZipFile(f"{d}/{fam}.pt").namelist()
    assert not any(n.endswith("/extra/tokenizer.json") for n in names)  # presets have no tokenizer.json
    files = {"config.json": "", "mft_requires": ""}
    m = torch.jit.load(f"{d}/{fam}.pt", _extra_files=files)
    files = {k: v.decode() for k, v in files.items()}  # torch returns the contents as bytes
    c = json.loads(files["config.json"])
    assert c["model_type"] == mt and c["dtype"] == "float32" and files["mft_requires"] == "", (c, files)
    logits = m(torch.tensor([[1, 2, 3]]))
    assert logits.shape == (1, 3, c["vocab_size"]) and logits.dtype == torch.float32
    s = m.init_state(2)
    step, s = m.step(torch.tensor([1, 2]), s)
    assert step.shape == (2, c["vocab_size"])
torch.ops.load_library(lib)
for fam, req in [("mamba", "libmft_ops.so"), ("mamba2", "libmft_ops.so"), ("pythia", "")]:
    files = {"config.json": "", "mft_requires": ""}
    m = torch.jit.load(f"{d}/{fam}-ops.pt", _extra_files=files)
    files = {k: v.decode() for k, v in files.items()}
    c = json.loads(files["config.json"])
    assert files["mft_requires"] == req and c["dtype"] == "bfloat16", (fam, files["mft_requires"], c["dtype"])
    assert (m.embed_in_weight if fam == "pythia" else m.embeddings_weight).dtype == torch.bfloat16
    assert m(torch.tensor([[1, 2, 3]])).dtype == torch.float32
PY

# Bad inputs.
mkdir -p "$tmp/llama"
echo '{"model_type": "llama", "hidden_size": 8}' >"$tmp/llama/config.json"
check "unknown family fails" run 1 export --model "$tmp/llama" --output "$tmp/x.pt"
check "unknown family: one clear line" grep -q 'model_type "llama" is not supported' "$tmp/err"
check "unknown family: no stack dump" one_line_error
check "unwritable output fails" run 1 export --model preset:mamba-tiny --output /nonexistent/dir/m.pt
check "unwritable output: one clear line" grep -q "^mamba-ft: error: export: cannot write /nonexistent/dir/m.pt" "$tmp/err"
check "unwritable output: no stack dump" one_line_error
check "folder as output fails" run 1 export --model preset:mamba-tiny --output "$tmp"
check "folder as output: says so" grep -q "it is a folder" "$tmp/err"
check "bad dtype fails" run 1 export --model preset:mamba-tiny --output "$tmp/x.pt" --dtype fp8
check "bad dtype: one line" one_line_error
check "no partial output" test ! -e "$tmp/x.pt"

# A tuned model: the tiny LoRA recipe for a few steps, exported with its adapter, scored both ways.
"$exe" make-data --out "$tmp/data" >/dev/null
check "train tiny LoRA" run 0 --threads 2 train "$tests_dir/../recipes/tiny-mamba-lora.yaml" \
  "data.train_file=$tmp/data/instruct.jsonl" "output.dir=$tmp/run" trainer.max_steps=4 trainer.eval_every=0 \
  trainer.batch_size=2
check "adapter written" test -f "$tmp/run/adapter/adapter_model.safetensors"
check "adapter of another model fails" run 1 export --model preset:pythia-tiny --adapter "$tmp/run/adapter" --output "$tmp/x.pt"
check "adapter of another model: one line" one_line_error
check "adapter of another model: names the mismatch" grep -q 'target module "dt_proj" matches no module of this gpt_neox model' "$tmp/err"
check "adapter of another model: no output" test ! -e "$tmp/x.pt"
check "merge" run 0 merge --model preset:mamba-tiny --adapter "$tmp/run/adapter" --output "$tmp/merged"
cat >"$tmp/requests.jsonl" <<'JSON'
{"context": "Below is an instruction", "continuation": " that describes a task."}
{"context": "### Response:", "continuation": " The capital of France is Paris."}
{"context": "Question: what is 2 + 2? Answer:", "continuation": " 4"}
{"context": "The quick brown fox ", "continuation": "jumps over the lazy dog."}
JSON
check "score the merged model" run 0 score --model "$tmp/merged" --tokenizer bytes --requests "$tmp/requests.jsonl" \
  --output "$tmp/scores.jsonl"
check "score the base model" run 0 score --model preset:mamba-tiny --requests "$tmp/requests.jsonl" --output "$tmp/base.jsonl"
check "the tuning changed the loglikelihoods (> 1e-3)" "$python" - "$tmp/base.jsonl" "$tmp/scores.jsonl" <<'PY'
import json, sys
base, tuned = ([json.loads(l)["loglikelihood"] for l in open(f)] for f in sys.argv[1:3])
assert max(abs(a - b) for a, b in zip(base, tuned)) > 1e-3, (base, tuned)
PY
check "export with the adapter (portable)" run 0 export --model preset:mamba-tiny --adapter "$tmp/run/adapter" \
  --output "$tmp/tuned.pt"
check "export: says the adapters were merged" grep -q "LoRA adapters (r=8, alpha=16) merged" "$tmp/out"
check "export with the adapter (with ops)" run 0 export --model preset:mamba-tiny --adapter "$tmp/run/adapter" \
  --output "$tmp/tuned-ops.pt" --with-ops
# A model folder with a tokenizer.json: the archive carries it (byte for byte).
printf '{"version": "1.0", "model": {"type": "BPE"}}\n' >"$tmp/merged/tokenizer.json"
check "export a folder with tokenizer.json" run 0 export --model "$tmp/merged" --output "$tmp/folder.pt"
check "export: says it stored the tokenizer" grep -q "with tokenizer.json" "$tmp/out"
check "archive holds tokenizer.json" "$python" - "$tmp/folder.pt" "$tmp/merged/tokenizer.json" <<'PY'
import sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
member = next(n for n in z.namelist() if n.endswith("/extra/tokenizer.json"))
assert z.read(member) == open(sys.argv[2], "rb").read()
PY
check "tuned, portable: same loglikelihoods as score" "$python" "$tests_dir/export/score_exported.py" "$tmp/tuned.pt" \
  "$tmp/requests.jsonl" "$tmp/scores.jsonl"
check "tuned, with ops: same loglikelihoods as score" "$python" "$tests_dir/export/score_exported.py" \
  "$tmp/tuned-ops.pt" "$tmp/requests.jsonl" "$tmp/scores.jsonl" --ops-library "$lib"

echo "$pass passed, $failures failed"
[ "$failures" -eq 0 ]
