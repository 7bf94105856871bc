r"""Runs the real lm-evaluation-harness (pinned: lm_eval 0.4.13) offline on local task files and writes what it
computed, for the C++ ICL evaluation (`mamba-ft eval`) to be checked against.

Usage:
  lm_eval_parity.py --model DIR --data-dir DIR --tasks t1,t2 [--shots 0,1,3] [--limit N] [--seed 1234]
                    [--bootstrap-iters 100000] [--threads 1] --out FILE.json
  DATA_DIR is tests/eval/make_task_data.py's layout (DATA_DIR/<task>/<split>.jsonl); DIR a HF model folder
  (tests/eval/make_scoring_model.py). Tasks: lambada_openai, hellaswag, piqa, arc_easy, arc_challenge,
  winogrande, mmlu (the group), mmlu_stem / mmlu_other / mmlu_social_sciences / mmlu_humanities, mmlu_<subject>.

What runs: `lm_eval.evaluator.simple_evaluate(model="hf", model_args={pretrained: DIR, dtype: float32},
device="cpu", batch_size=1, num_fewshot=K, limit=N, fewshot_random_seed=SEED, log_samples=True)` once per K
(torch.set_num_threads(--threads, default 1): the tiny models run faster so, and ctest runs tests side by side),
i.e. `lm_eval --model hf --model_args pretrained=DIR,dtype=float32 --device cpu --batch_size 1 --num_fewshot K
--seed 0,1234,1234,SEED --log_samples`, with lm-eval's own task configs. Only the data source is replaced:
each task gets a YAML that `include:`s the installed lm_eval/tasks/<task>/<task>.yaml and sets
`dataset_path: json`, `dataset_name: null`, `dataset_kwargs: {data_files: {split: DATA_DIR/...}}` (same task
name). MMLU: cais/mmlu has one config per subject (lm-eval's mmlu_<subject>.yaml sets dataset_name: <subject>);
ours is the `all` config (one dev and one test file, rows carrying `subject`). Each subject present in the data
gets mmlu_<subject> = include: of lm-eval's mmlu_<subject>.yaml (description, tag, template, first_n sampler
unchanged) + the `all` files + `process_docs` keeping the rows whose subject matches, in file order.
process_docs is inherited by the few-shot split too (lm_eval/config/task.py:154-165, field process_docs ->
FewshotConfig.process_docs; used at api/task.py:906-910), so dev rows are filtered the same way. This is
faithful as long as a subject config of cais/mmlu holds the `all` rows of that subject in the same order,
which we take to be so (`all` being the subject configs concatenated, subjects in alphabetical order; not
checkable offline here). The groups are lm-eval's own _mmlu.yaml and _mmlu_<category>.yaml (include:d
unchanged); a category lists its subjects through a tag (`mmlu_stem_tasks`, ...), and as only our files are
indexed (TaskManager(include_defaults=False), which only saves the ~10 s of indexing 14,000 built-in YAMLs),
each tag holds just the subjects present. The `mmlu` group therefore needs at least one subject of each of
the four categories (make_task_data.py writes two STEM subjects and one of each other category); it is then
exactly lm-eval's group over those subjects.

Output (FILE.json): {"lm_eval_version", "model", "data_dir", "tasks", "limit", "fewshot_seed",
"bootstrap_iters", "seconds", "runs": {"K": run}} with run = lm-eval's own "results" (per task and group:
"acc,none", "acc_stderr,none", "acc_norm,none", "acc_norm_stderr,none", "perplexity,none",
"perplexity_stderr,none", "alias", "name", "sample_len", groups also "sample_count"; values exactly as
lm-eval returns them, stderr "N/A" where it gives that), "groups", "group_subtasks", "n-shot", "n-samples",
"versions", "higher_is_better", and "samples": {task: [{"doc_id" (index in lm-eval's eval docs), "file_index"
(row in DATA_DIR/<task>/<split>.jsonl; for mmlu the row in test.jsonl), "target" (doc_to_target), "choices"
and "gold" (multiple-choice tasks: the choice strings acc_norm divides by, and the gold index; winogrande's
gold comes from doc_to_text), "requests": [{"context", "continuation", "loglikelihood", "is_greedy"}] in
request order (choice order), "metrics": {per-doc metric values}, "doc": the processed doc}]}.

lm-eval 0.4.13's behaviour: the spec `mamba-ft eval` follows. Paths are in the installed package
(.venv/lib/python3.11/site-packages/lm_eval/); random.py is CPython 3.11.7's. Every claim about contexts,
metrics, stderrs and groups below was checked: an independent re-implementation from the data files and
these rules reproduces lm-eval's contexts and numbers bit for bit on make_task_data.py's data (both tiny
models, K = 0, 1, 2, 3, with and without --limit, seeds 1234 and 42).

1. Seeds and few-shot RNG.
 - The few-shot seed defaults to 1234: simple_evaluate(fewshot_random_seed=DEFAULT_OTHER_SEED)
   (evaluator.py:84, defaults.py:8); the CLI's --seed default is "0,1234,1234,1234" (_cli/run.py:310), the
   4th value being the few-shot seed (_cli/run.py:427). (python random.seed(0), numpy and torch seeds,
   evaluator.py:196-208, play no part in prompts.)
 - One RNG per task object: simple_evaluate builds fresh Task objects from the TaskManager
   (evaluator.py:302) and calls task_obj.set_fewshot_seed(seed=fewshot_random_seed) on each
   (evaluator.py:347) -> self.sampler.set_rnd(seed) (api/task.py:560-563) -> self.rnd = random.Random(seed)
   (api/samplers.py:77-79). So every task (hellaswag, arc_easy, arc_challenge, each mmlu subject, ...)
   starts its own random.Random(1234); tasks do not share a stream, and separate runs (one per num_fewshot:
   a run has a single num_fewshot) start afresh, so K=1 and K=3 do not share a stream.
 - The stream is consumed once per eval doc, in doc order, while contexts are built:
   build_all_requests loops over doc_iterator (api/task.py:324-347), which is
   islice(enumerate(eval_docs), rank=0, limit, world_size=1) (api/task.py:598-605, utils.py:627-633);
   for each doc fewshot_context calls self.sampler.sample(n=K, eval_doc=...) only when K > 0
   (api/task.py:981-987). K = 0 draws nothing.
 - sample() (api/samplers.py:31-75): if eval_doc is falsy, rnd.sample(pool, K); else
   [x for x in rnd.sample(pool, K + 1) if x != eval_doc][:K] (rm_eval_doc, api/samplers.py:95-101: whole-doc
   dict equality, so it removes every drawn row equal to the eval doc); if that leaves fewer than K (the pool
   held copies of the eval doc) it draws again: rnd.sample([x for x in pool if x != eval_doc], K)
   (api/samplers.py:64-71). pool = the few-shot docs as a list in split order (api/samplers.py:86-93; built
   once per task from fewshot_docs(), api/task.py:786-800, and never limited by --limit).
 - eval_doc is passed iff fewshot_config.split == config.test_split (api/task.py:985), where
   fewshot_config.split is the task's fewshot_split (config/task.py:154-165). Consequences for our tasks:
   . hellaswag, piqa, winogrande: no test_split and no fewshot_split (hellaswag.yaml:7-9, piqa.yaml:5-7,
     winogrande/default.yaml:5-6): None == None, so eval_doc = the doc, and each doc draws
     rnd.sample(train_docs, K + 1) and keeps the first K that differ from the eval doc (in practice the first
     K: a train row never equals a validation row). The pool is the train split (api/task.py:930 ->
     Task.fewshot_docs, api/task.py:204-219: training, else validation, else test), processed by the task's
     process_docs (hellaswag: the same utils.process_docs as the eval docs, api/task.py:884-890).
   . arc_easy, arc_challenge: test_split test, no fewshot_split (arc_easy.yaml:7-9): None != "test", so
     rnd.sample(train_docs, K) per doc.
   . lambada_openai: test_split test only (lambada_openai.yaml:7): the pool falls back to the test docs
     themselves (Task.fewshot_docs, api/task.py:213-219, with a warning), and as None != "test" no eval doc is
     excluded: rnd.sample(test_docs, K) per doc, and a doc CAN be its own shot, answer included (in our data
     at K=2, docs 0 and 7 are). The pool is the whole test split even with --limit.
   . mmlu_<subject>: fewshot_split dev, sampler first_n (mmlu/default/_default_template_yaml:2-5): "dev" !=
     "test" so no eval doc; FirstNSampler returns pool[:K], the subject's first K dev rows in file order, no
     randomness (api/samplers.py:104-114); K > 5 fails its assertion (5 dev rows per subject).
 - random.Random (CPython 3.11): Random(1234) seeds MT19937 with init_by_array([1234]) (|seed| split into
   32-bit words, least significant first; random.py:119-125, 128-163 -> C random_seed). sample(population, k)
   (random.py:385-478): n = len; setsize = 21, plus 4 ** ceil(log(3k, 4)) if k > 5 (random.py:458-460);
   if n <= setsize: pool = copy, for i in 0..k-1: j = randbelow(n - i); take pool[j]; pool[j] = pool[n-i-1]
   (random.py:461-468); else: j = randbelow(n) redrawn while already chosen (random.py:469-477) (real
   HellaSwag/PIQA/ARC/WinoGrande train splits take this branch). randbelow(n): k = n.bit_length();
   r = getrandbits(k) until r < n (random.py:235-243); getrandbits(k <= 32) = next 32-bit MT output >> (32-k).
   random() = ((a >> 5) * 67108864 + (b >> 6)) / 2**53 from two outputs a, b. choices(xs, k) =
   [xs[floor(random() * n)] for each of k] (random.py:491-493).
 - --limit N (int; a float < 1 means ceil(len * N) docs, evaluator_utils.py:49-54, evaluator.py:538-541):
   only the first N eval docs are built and scored (api/task.py:598-605), so their contexts and draws are
   exactly those of the full run's first N docs; the few-shot pool is not limited.

2. Prompt. fewshot_context (api/task.py:932-1042), plain text (no chat template):
   context = description + sum over shots of [q(shot) + target_delimiter + answer(shot) + fewshot_delimiter]
             + q(doc)
   with target_delimiter " " and fewshot_delimiter "\n\n" (config/task.py:112-113; build_qa_turn,
   api/task.py:1044-1107: a shot is Message(user, q, delimiter " ") + Message(assistant, answer, "\n\n"); the
   eval doc is Message(user, q, "") (api/task.py:1025-1031), so no trailing space). answer(shot) =
   choices[target] if the task has choices and the target is an int, else the target string
   (api/task.py:1092-1099). q and targets come from the YAML Jinja templates, rendered with
   keep_trailing_newline=True (utils.py:616-624); a rendered target/text that is all digits becomes an int
   when the task has choices (api/task.py:1218-1219, 1254-1255).
 - Description: resolve_field(doc, config.description) (api/task.py:974: the doc's field of that name, else
   the string rendered as a Jinja template), then maybe_delimit(system_instruction=None, description) returns
   it unchanged (api/utils.py:7-17), emitted first as a message with an empty delimiter (api/task.py:975-979,
   api/utils.py:55-57): verbatim, nothing added, at every K including 0. Only mmlu has one:
   "The following are multiple choice questions (with answers) about <subject with _ as space>.\n\n"
   (mmlu/default/mmlu_<subject>.yaml; it ends in "\n\n" itself).
 - Continuations: multiple_choice -> one request (context, " " + choice) per choice, in choice order
   (api/task.py:1388-1390); winogrande (doc_to_text returns an int = "multiple inputs", api/task.py:819-823)
   -> one context per choice, description + shots + choice_i, with the shared continuation " " + target
   (api/task.py:1016-1024, 1109-1158, 1384-1387); its shots are q = choices[gold] (sentence up to "_" + the
   right option) + " " + target (the rest of the sentence) (api/task.py:998-1000). lambada_openai
   (loglikelihood) -> one request (context, doc_to_target) (api/task.py:1370-1371), where doc_to_target is
   " " + last word (lambada_openai.yaml:8-9); so its shots read q + " " + " word" + "\n\n": TWO spaces
   before each shot's last word. Words are text.split(' ') pieces, so a double space in the text gives an
   empty word and a context ending in a space (moved into the continuation when tokenising,
   api/model.py:415-418).
 - Per-task q: hellaswag "{{query}}" after process_docs (hellaswag/utils.py:6-25: ctx_a + " " +
   ctx_b.capitalize(), preprocess = strip, " [title]" -> ". ", remove "\\[.*?\\]", one pass of "  " -> " ";
   choices = preprocessed endings; gold = int(label)); piqa "Question: {{goal}}\nAnswer:" choices
   [sol1, sol2] gold label; arc "Question: {{question}}\nAnswer:" choices choices.text gold
   choices.label.index(answerKey); mmlu "{{question.strip()}}\nA. {{choices[0]}}\nB. ...\nD. {{choices[3]}}
   \nAnswer:" choices A B C D gold answer (_default_template_yaml:7-9).

3. Docs and order. Eval docs = test split if the config has one, else validation (api/task.py:565-574), in
   file order (process_docs map/filter keep it); doc_id = position in that list (after mmlu's subject
   filter). Requests are sent to the model sorted by length, but results are put back by doc_id and request
   index (evaluator.py:621-641), so order does not affect any number.

4. Metrics per doc. multiple_choice (api/task.py:1489-1549): pred = np.argmax(lls) (first maximum on ties),
   acc = pred == gold; acc_norm = argmax(lls / len(choice)) == gold with len in Unicode code points (Python
   len) of the choice without the leading delimiter; winogrande and mmlu list only acc (their metric_list),
   hellaswag/piqa/arc acc and acc_norm. lambada (api/task.py:1461-1467): perplexity item = the loglikelihood,
   acc = int(is_greedy). lls are the sums of continuation-token log-probs.

5. Aggregation and stderr per task (evaluator_utils.py:193-225): key "<metric>,none" = aggregation(items),
   "<metric>_stderr,none" = stderr_for_metric(aggregation)(items) if n > 1 else "N/A".
 - mean = sum(items) / len(items) (api/metrics.py:34-36; Python 3.11 sum: plain left-to-right double adds).
 - mean's stderr = mean_stderr = sample_stddev / sqrt(n), sample_stddev = sqrt(sum((x - mean)^2) / (n - 1))
   (api/metrics.py:337-343, 620): acc, acc_norm, lambada acc.
 - perplexity = exp(-mean(lls)) (api/metrics.py:46-48). Its stderr is a bootstrap (perplexity is in the
   bootstrappable list, api/metrics.py:605-618) with bootstrap_iters = 100000 (simple_evaluate's default,
   evaluator.py:69; the CLI passes none): chunks i = 0 .. iters/1000 - 1 of 1000 replicates, chunk i with
   its own random.Random(i), each replicate perplexity(rnd.choices(lls, k=n)); stderr = sample_stddev of
   all replicates in chunk order (api/metrics.py:508-547 and 550-586; the multiprocessing and single-process
   paths give the same numbers, Pool.imap keeps the order).

6. Groups (api/group.py:183-294). A group aggregates over its LEAF tasks (get_all_tasks(), recursive, in
   child order), not over its subgroups: for each aggregate_metric_list entry (mmlu and its categories: acc,
   weight_by_size True; _mmlu.yaml, _mmlu_<category>.yaml) value = sum(v_i * n_i) / sum(n_i) with
   n_i = the leaf's sample_len (api/metrics.py:686-695), stderr = pooled_sample_stderr =
   sqrt( sum((n_i - 1) * se_i^2 * n_i) / (sum(n_i) - #leaves) / sum(n_i) ) (api/metrics.py:625-640), "N/A"
   if any leaf stderr is "N/A" (e.g. a one-doc subject) (api/group.py:277-289); sample_len = sum of the
   leaves' (api/group.py:215-219); sample_count {"acc,none": sum}. Leaf order: mmlu -> stem, other,
   social_sciences, humanities (_mmlu.yaml), each category's subjects sorted by name (tag expansion,
   tasks/_factory.py:205-217). So mmlu = micro-average over all test questions of the subjects present.

7. Rounding: none. The results dict holds Python floats / numpy float64 as computed, and lm-eval's JSON
   output is json.dumps (_cli/run.py:437-439; loggers/evaluation_tracker.py:262-267), i.e. shortest
   round-trip repr; only the printed table rounds, "%.4f" for value and stderr (utils.py:547-551). This file
   is written the same way (ensure_ascii=False).

Not covered here (lm-eval's HF scoring itself: _encode_pair, prefix token, truncation): see
tests/eval/lm_eval_oracle.py, which gives the same log-likelihoods as this run.
"""
import argparse
import json
import os
import shutil
import tempfile
import time

# Offline before anything from Hugging Face is imported: every file read here is local.
for _var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ[_var] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# Tasks whose lm-eval YAML is used as is, with only the data source replaced: task -> (its YAML under
# lm_eval/tasks/, the splits it reads, each from DATA_DIR/<task>/<split>.jsonl).
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
    ap.add_argument("--threads", type=int, default=1,
                    help="torch CPU threads (default 1: tiny models, and ctest runs tests side by side)")
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

    import torch
    torch.set_num_threads(args.threads)
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
