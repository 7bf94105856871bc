"""DOCSTRING PLACEHOLDER"""
import argparse
import json
import os
import shutil
import sys
import tempfile
import time

# Offline before anything from Hugging Face is imported: every file read here is local.
for _var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ[_var] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# Tasks whose lm-eval YAML is used as is, with only the data source replaced, and the splits of each:
# (file name in DATA_DIR/<task>/, split name the YAML uses).
SIMPLE_TASKS = {
    "lambada_openai": ("lambada/lambada_openai.yaml", ["test"]),
    "hellaswag": ("hellaswag/hellaswag.yaml", ["validation", "train"]),
    "piqa": ("piqa/piqa.yaml", ["validation", "train"]),
    "arc_easy": ("arc/arc_easy.yaml", ["test", "train"]),
    "arc_challenge": ("arc/arc_challenge.yaml", ["test", "train"]),
    "winogrande": ("winogrande/default.yaml", ["validation", "train"]),
}
MMLU_SPLITS = ["dev", "test"]
MMLU_CATEGORIES = ["mmlu_stem", "mmlu_other", "mmlu_social_sciences", "mmlu_humanities"]
FILTER_MODULE = "mmlu_subject_filter"


def yaml_str(s):
    return json.dumps(s)  # a JSON string is a valid YAML double-quoted scalar


def data_files_yaml(data_dir, task, splits):
    lines = ["dataset_path: json", "dataset_name: null", "dataset_kwargs:", "  data_files:"]
    for split in splits:
        path = os.path.abspath(os.path.join(data_dir, task, f"{split}.jsonl"))
        if not os.path.isfile(path):
            raise SystemExit(f"lm_eval_parity: {path} is missing (make it with tests/eval/make_task_data.py)")
        lines.append(f"    {split}: {yaml_str(path)}")
    return lines


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def write_overrides(tasks_root, data_dir, out_dir):
    """One YAML per task that `include:`s lm-eval's own config and replaces only where the data comes from.
    Returns ({mmlu subject: [row index in DATA_DIR/mmlu/test.jsonl, ...]}, MMLU categories without a subject)."""
    for task, (builtin, splits) in SIMPLE_TASKS.items():
        if not os.path.isdir(os.path.join(data_dir, task)):
            continue
        lines = [f"include: {yaml_str(os.path.join(tasks_root, builtin))}", f"task: {task}"]
        lines += data_files_yaml(data_dir, task, splits)
        with open(os.path.join(out_dir, f"{task}.yaml"), "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")

    if not os.path.isdir(os.path.join(data_dir, "mmlu")):
        return {}, []
    # cais/mmlu has one config per subject; ours is the `all` config, so each subject task reads the `all`
    # files and keeps its subject's rows, in file order (process_docs, which lm-eval also applies to the
    # few-shot split, config/task.py:158).
    test_rows = read_jsonl(os.path.join(data_dir, "mmlu", "test.jsonl"))
    rows_of = {}
    for i, row in enumerate(test_rows):
        rows_of.setdefault(row["subject"], []).append(i)
    with open(os.path.join(out_dir, f"{FILTER_MODULE}.py"), "w", encoding="utf-8") as f:
        f.write("def _subject(name):\n"
                "    def process_docs(dataset):\n"
                "        return dataset.filter(lambda doc: doc[\"subject\"] == name)\n"
                "    return process_docs\n\n")
        for subject in sorted(rows_of):
            f.write(f"{subject} = _subject({subject!r})\n")
    categories = set()
    for subject in sorted(rows_of):
        builtin = os.path.join(tasks_root, "mmlu", "default", f"mmlu_{subject}.yaml")
        if not os.path.isfile(builtin):
            raise SystemExit(f"lm_eval_parity: mmlu subject {subject!r} has no lm-eval config ({builtin})")
        with open(builtin, encoding="utf-8") as f:
            text = f.read()
        categories.update(c for c in MMLU_CATEGORIES if f'"{c}_tasks"' in text)
        lines = [f"include: {yaml_str(builtin)}", f"task: mmlu_{subject}"]
        lines += data_files_yaml(data_dir, "mmlu", MMLU_SPLITS)
        lines.append(f"process_docs: !function {FILTER_MODULE}.{subject}")
        with open(os.path.join(out_dir, f"mmlu_{subject}.yaml"), "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
    # lm-eval's groups as they are (include: of its own files): `mmlu` = the four categories, each category =
    # the tag its subjects carry, which now lists only the subject tasks written above.
    for group in ["mmlu"] + sorted(categories):
        builtin = os.path.join(tasks_root, "mmlu", "default", f"_{group}.yaml")
        with open(os.path.join(out_dir, f"_{group}.yaml"), "w", encoding="utf-8") as f:
            f.write(f"include: {yaml_str(builtin)}\n")
    missing = [c for c in MMLU_CATEGORIES if c not in categories]
    return rows_of, missing


def sample_record(sample, task, file_index):
    doc = sample["doc"]
    record = {"doc_id": sample["doc_id"], "file_index": file_index, "target": sample["target"]}
    if task.OUTPUT_TYPE == "multiple_choice":
        record["choices"] = task.doc_to_choice(doc)
        record["gold"] = task.doc_to_text(doc) if task.multiple_input else task.doc_to_target(doc)
    record["requests"] = [
        {"context": args[0], "continuation": args[1], "loglikelihood": float(resp[0]), "is_greedy": bool(resp[1])}
        for args, resp in zip(sample["arguments"], sample["filtered_resps"], strict=True)]
    record["metrics"] = {name: sample[name] for name in sample["metrics"]}
    record["doc"] = doc
    return record


def main():
    ap = argparse.ArgumentParser(description="Runs lm-eval itself on local task files and writes what it computed.")
    ap.add_argument("--model", required=True, help="HF model folder (config.json, safetensors, tokenizer)")
    ap.add_argument("--data-dir", required=True, help="DATA_DIR/<task>/<split>.jsonl (make_task_data.py)")
    ap.add_argument("--tasks", required=True, help="comma-separated lm-eval task or group names")
    ap.add_argument("--shots", default="0", help="comma-separated few-shot counts, one lm-eval run each")
    ap.add_argument("--limit", type=int, default=None, help="lm-eval's --limit: the first N eval docs per task")
    ap.add_argument("--seed", type=int, default=1234, help="lm-eval's fewshot seed (4th value of its --seed)")
    ap.add_argument("--bootstrap-iters", type=int, default=100000,
                    help="lm-eval's bootstrap_iters (perplexity stderr); its default is 100000")
    ap.add_argument("--out", required=True, help="output JSON file")
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="mft-lm-eval-")
    os.environ.setdefault("HF_DATASETS_CACHE", os.path.join(work, "datasets-cache"))  # nothing left behind
    try:
        run(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(args, work):
    import logging

    import lm_eval
    import lm_eval.evaluator
    from lm_eval.tasks import TaskManager
    from lm_eval.utils import handle_non_serializable

    logging.getLogger("lm_eval").setLevel(logging.ERROR)
    import datasets
    datasets.disable_progress_bars()
    import transformers
    transformers.logging.set_verbosity_error()

    tasks_root = os.path.join(os.path.dirname(lm_eval.__file__), "tasks")
    override_dir = os.path.join(work, "tasks")
    os.makedirs(override_dir)
    rows_of, missing = write_overrides(tasks_root, args.data_dir, override_dir)
    names = [t for t in args.tasks.split(",") if t]
    if missing and any(n == "mmlu" or n in missing for n in names):
        raise SystemExit(f"lm_eval_parity: the mmlu data has no subject in {missing}; lm-eval's `mmlu` group "
                         "needs at least one subject of each of its four categories")
    # Only our files are indexed (each one include:s lm-eval's own): indexing all ~14,000 built-in YAMLs
    # costs about 10 s and would change nothing, as every name asked for resolves to one of ours.
    task_manager = TaskManager(include_path=override_dir, include_defaults=False)
    # The Task objects simple_evaluate builds, kept for the gold index and choices of each logged doc.
    tasks = {}
    load = task_manager.load

    def load_and_keep(spec):
        loaded = load(spec)
        tasks.update(loaded["tasks"])
        return loaded

    task_manager.load = load_and_keep

    out = {"lm_eval_version": lm_eval.__version__ if hasattr(lm_eval, "__version__") else None,
           "model": os.path.abspath(args.model), "data_dir": os.path.abspath(args.data_dir), "tasks": names,
           "limit": args.limit, "fewshot_seed": args.seed, "bootstrap_iters": args.bootstrap_iters, "runs": {}}
    started = time.time()
    for shots in [int(s) for s in args.shots.split(",") if s != ""]:
        tasks.clear()
        res = lm_eval.evaluator.simple_evaluate(
            model="hf", model_args={"pretrained": args.model, "dtype": "float32"}, device="cpu", batch_size=1,
            tasks=names, num_fewshot=shots, limit=args.limit, log_samples=True, task_manager=task_manager,
            fewshot_random_seed=args.seed, bootstrap_iters=args.bootstrap_iters)
        samples = {}
        for name, logged in res["samples"].items():
            task = tasks[name]
            subject = name[len("mmlu_"):] if name.startswith("mmlu_") else None
            samples[name] = [sample_record(s, task, rows_of[subject][s["doc_id"]] if subject else s["doc_id"])
                             for s in logged]
        out["runs"][str(shots)] = {
            "results": res["results"], "groups": res.get("groups", {}), "group_subtasks": res["group_subtasks"],
            "n-shot": res["n-shot"], "n-samples": res["n-samples"], "versions": res["versions"],
            "higher_is_better": res["higher_is_better"], "samples": samples}
    out["seconds"] = round(time.time() - started, 2)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(out, f, indent=1, ensure_ascii=False, default=handle_non_serializable)
        f.write("\n")


if __name__ == "__main__":
    main()
