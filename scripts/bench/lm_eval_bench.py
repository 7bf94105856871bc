"""lm-evaluation-harness peer for `mamba-ft eval` in scripts/bench-eval: lm-eval 0.4.13's own `hf` model (HFLM,
dtype float32, device cpu, the given batch size) on a local HF folder, with lm-eval's task configs reading our
task files (tests/eval/lm_eval_parity.py's overrides: only the data source is replaced), one simple_evaluate per
few-shot count, the model loaded once for all of them (what `lm_eval --num_fewshot K` would load once per K).
Prints one JSON object:
  n_requests   loglikelihood requests sent to the model, all shots together (counted at HFLM.loglikelihood)
  elapsed_s    model load + every simple_evaluate (task building, scoring, metrics): what `mamba-ft eval`'s
               config.elapsed_s covers (it too loads the model and the tasks)
  load_s       HFLM construction (model + tokenizer)
  score_s      time inside HFLM.loglikelihood (tokenising, batching, forward passes, log-softmax)
  import_s     importing torch, transformers and lm_eval (not in elapsed_s)
Usage: lm_eval_bench.py MODEL_DIR DATA_DIR TASKS SHOTS THREADS BATCH_SIZE [LIMIT]"""
import json
import os
import shutil
import sys
import tempfile
import time

t_import = time.perf_counter()
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "eval"))
import lm_eval_parity  # noqa: E402  (sets the offline variables before anything from Hugging Face loads)


def main():
    model_dir, data_dir, tasks, shots, threads, batch_size = sys.argv[1:7]
    limit = int(sys.argv[7]) if len(sys.argv) > 7 and sys.argv[7] != "" else None
    work = tempfile.mkdtemp(prefix="mft-bench-eval-")
    os.environ.setdefault("HF_DATASETS_CACHE", os.path.join(work, "datasets-cache"))
    try:
        print(json.dumps(run(model_dir, data_dir, tasks.split(","), [int(s) for s in shots.split(",")],
                             int(threads), int(batch_size), limit, work)))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(model_dir, data_dir, names, shots, threads, batch_size, limit, work):
    import logging

    import datasets
    import lm_eval
    import lm_eval.evaluator
    import torch
    import transformers
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    import_s = time.perf_counter() - t_import
    torch.set_num_threads(threads)
    logging.getLogger("lm_eval").setLevel(logging.ERROR)
    datasets.disable_progress_bars()
    transformers.logging.set_verbosity_error()

    tasks_dir = os.path.join(work, "tasks")
    os.makedirs(tasks_dir)
    lm_eval_parity.write_overrides(os.path.join(os.path.dirname(lm_eval.__file__), "tasks"), data_dir, tasks_dir)

    start = time.perf_counter()
    lm = HFLM(pretrained=model_dir, dtype="float32", device="cpu", batch_size=batch_size)
    load_s = time.perf_counter() - start
    counted = {"n": 0, "s": 0.0}
    loglikelihood = lm.loglikelihood

    def timed_loglikelihood(requests, *args, **kwargs):
        t = time.perf_counter()
        out = loglikelihood(requests, *args, **kwargs)
        counted["s"] += time.perf_counter() - t
        counted["n"] += len(requests)
        return out

    lm.loglikelihood = timed_loglikelihood
    task_manager = TaskManager(include_path=tasks_dir, include_defaults=False)
    for k in shots:
        lm_eval.evaluator.simple_evaluate(model=lm, tasks=names, num_fewshot=k, limit=limit, task_manager=task_manager,
                                          fewshot_random_seed=1234, log_samples=False)
    return {"n_requests": counted["n"], "elapsed_s": time.perf_counter() - start, "load_s": load_s,
            "score_s": counted["s"], "import_s": import_s, "threads": torch.get_num_threads(), "batch_size": batch_size,
            "lm_eval_version": getattr(lm_eval, "__version__", None)}


if __name__ == "__main__":
    main()
