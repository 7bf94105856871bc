#!/usr/bin/env python3
"""Writes the folders `mamba-ft report` is tested on, deterministically:

  OUT/sweep  a `mamba-ft sweep` folder (summary.json format mamba-ft-sweep/1): 3 families x 2 precisions x
             2 PEFT methods x 2 seeds, one failed point; points/<id>/metrics.jsonl and eval.json; the summary
             tables computed from those files; stability/<family>/*.json written by the real
             `mamba-ft stability perturb|lyapunov|precision` (so the report reads exactly what they write).
  OUT/run    a `mamba-ft train` folder: metrics.jsonl, recipe.yaml, eval.json, stability/*.json.
  OUT/empty  a folder without results (the report must refuse it).

Usage: make_report_fixture.py BUILD/mamba-ft OUT
Training metrics and accuracies are synthetic (seeded) but shaped like real ones
(outputs/quickstart/*/metrics.jsonl, `mamba-ft eval` results).
"""
import json
import math
import os
import random
import subprocess
import sys

FAMILIES = ["mamba", "mamba2", "pythia"]
PRECISIONS = ["fp32", "bf16"]
METHODS = ["full", "lora"]
SEEDS = ["0", "1"]
TASKS = ["capitals", "arithmetic", "reverse"]
SHOTS = [0, 1, 3, 5]
STEPS, LOG_EVERY, EVAL_EVERY = 60, 10, 30
FAILED = ("mamba2", "bf16", "full", "1")  # the point whose training "failed"
PRESET = {"mamba": "mamba-tiny", "mamba2": "mamba2-tiny", "pythia": "pythia-tiny"}
Z95 = 1.96  # normal 95% half-width factor (the fixture's CIs only need the right shape)


def write_json(path, obj):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


def metrics_lines(rng, base, steps):
    lines = []
    for step in range(LOG_EVERY, steps + 1, LOG_EVERY):
        loss = base * math.exp(-step / 40) + 0.6 + rng.uniform(-0.05, 0.05)
        lines.append({"step": step, "loss": loss, "lr": 2e-3 * (1 - step / (STEPS + 10)),
                      "grad_norm": rng.uniform(3, 9), "loss_scale": 1.0, "skipped": False,
                      "tokens_per_s": rng.uniform(9000, 13000) * (1.6 if base < 2 else 1.0),
                      "peak_rss_mb": 474.0 + rng.uniform(0, 2), "memory_per_token_kb": rng.uniform(30, 36),
                      "eval_loss": loss + 0.05 if step % EVAL_EVERY == 0 else -1, "elapsed_s": step * 0.16})
    return lines


def eval_results(rng, family, precision, method):
    """lm-eval-shaped results: accuracy rises with shots, Mamba learns in context a bit less than Pythia."""
    slope = {"mamba": 1.6, "mamba2": 1.8, "pythia": 2.2}[family]
    shift = (0.8 if precision == "bf16" else 0) + (1.5 if method == "lora" else 0)
    shots = {}
    for k in SHOTS:
        results = {}
        for t, task in enumerate(TASKS):
            acc = (24 + 3 * t + slope * k - shift + rng.uniform(-1.5, 1.5)) / 100
            se = math.sqrt(acc * (1 - acc) / 60)
            results[task] = {"acc,none": acc, "acc_stderr,none": se, "acc_norm,none": acc,
                             "acc_norm_stderr,none": se, "alias": task}
        shots[str(k)] = {"results": results, "n-shot": {t: k for t in TASKS}}
    return {"shots": shots, "config": {"model": f"points/{family}/final", "shots": SHOTS, "seeds": [1234]}}


def mean_ci(values):
    n = len(values)
    m = sum(values) / n
    if n < 2:
        return {"mean": m, "ci": None, "n": n}
    sd = math.sqrt(sum((v - m) ** 2 for v in values) / (n - 1))
    return {"mean": m, "ci": Z95 * sd / math.sqrt(n), "n": n}


def acc(ev, k, task):
    if task == "all":
        return sum(acc(ev, k, t) for t in TASKS) / len(TASKS)
    return 100 * ev["shots"][str(k)]["results"][task]["acc,none"]


def make_sweep(exe, out):
    rng = random.Random(1234)
    axes = [{"name": "family", "values": FAMILIES}, {"name": "precision.dtype", "values": PRECISIONS},
            {"name": "peft.method", "values": METHODS}, {"name": "trainer.seed", "values": SEEDS}]
    points, evals, trains = [], {}, {}
    for fam in FAMILIES:
        for prec in PRECISIONS:
            for meth in METHODS:
                for seed in SEEDS:
                    pid = f"family-{fam}.precision.dtype-{prec}.peft.method-{meth}.trainer.seed-{seed}"
                    pdir = f"points/{pid}"
                    failed = (fam, prec, meth, seed) == FAILED
                    base = {"mamba": 1.6, "mamba2": 1.8, "pythia": 2.0}[fam] + (0.1 if meth == "lora" else 0)
                    lines = metrics_lines(rng, base, 20 if failed else STEPS)
                    os.makedirs(os.path.join(out, pdir), exist_ok=True)
                    with open(os.path.join(out, pdir, "metrics.jsonl"), "w") as f:
                        f.writelines(json.dumps(l) + "\n" for l in lines)
                    config = f"{fam} {prec} {meth}"
                    point = {"id": pid, "dir": pdir,
                             "axes": {"family": fam, "precision.dtype": prec, "peft.method": meth, "trainer.seed": seed},
                             "config": config, "status": "failed" if failed else "ok",
                             "error": "train: loss is not finite at step 21 (fp16 overflow?); see points/" + pid
                                      if failed else "",
                             "seconds": round(rng.uniform(25, 40), 1), "train": None, "eval": None}
                    if not failed:
                        last = lines[-1]
                        point["train"] = {"steps": STEPS, "last_loss": last["loss"], "last_eval_loss": last["eval_loss"],
                                          "tokens_per_s": last["tokens_per_s"], "peak_rss_over_load_mb": rng.uniform(90, 140),
                                          "memory_per_token_kb": last["memory_per_token_kb"]}
                        ev = eval_results(rng, fam, prec, meth)
                        write_json(os.path.join(out, pdir, "eval.json"), ev)
                        point["eval"] = pdir + "/eval.json"
                        evals.setdefault(config, []).append((seed, ev))
                        trains.setdefault(config, []).append(point["train"])
                    points.append(point)

    def axes_of(config):
        fam, prec, meth = config.split()
        return {"family": fam, "precision.dtype": prec, "peft.method": meth}

    pairs = {"mamba": "pythia", "mamba2": "pythia"}
    divergence, icl, throughput, spread = [], [], [], []
    for config, runs in evals.items():
        fam, prec, meth = config.split()
        ref = dict(evals[f"{fam} fp32 full"])
        for task in TASKS + ["all"]:
            per_seed = [sum(abs(acc(ev, k, task) - acc(ref[s], k, task)) for k in SHOTS) / len(SHOTS)
                        for s, ev in runs if s in ref]
            spikes = sum(1 for s, ev in runs if s in ref for k in SHOTS if abs(acc(ev, k, task) - acc(ref[s], k, task)) > 1)
            if (prec, meth) != ("fp32", "full"):
                divergence.append({"config": config, "axes": axes_of(config), "task": task, "metric": "acc",
                                   **mean_ci(per_seed), "spikes": spikes, "spike": spikes > len(runs)})
            improvement = [sum(acc(ev, k, task) - acc(ev, 0, task) for k in SHOTS[1:]) / 3 for _, ev in runs]
            row = {"config": config, "axes": axes_of(config), "task": task, "metric": "acc",
                   "shots": {str(k): mean_ci([acc(ev, k, task) for _, ev in runs]) for k in SHOTS},
                   "improvement": mean_ci(improvement), "ratio": None, "paired_config": None}
            paired = f"{pairs[fam]} {prec} {meth}" if fam in pairs else None
            if paired in evals:
                theirs = mean_ci([sum(acc(ev, k, task) - acc(ev, 0, task) for k in SHOTS[1:]) / 3
                                  for _, ev in evals[paired]])["mean"]
                row["ratio"] = mean_ci([100 * v / theirs for v in improvement])
                row["paired_config"] = paired
            icl.append(row)
        tr = trains[config]
        throughput.append({"config": config, "axes": axes_of(config),
                           **{key: mean_ci([t[key] for t in tr])
                              for key in ("tokens_per_s", "memory_per_token_kb", "peak_rss_over_load_mb")},
                           "speedup_vs_reference": None, "memory_per_token_change_pct": None})
    ref_tp = {r["axes"]["family"]: r for r in throughput if r["config"].endswith("fp32 full")}
    for r in throughput:
        if not r["config"].endswith("fp32 full"):
            ref = ref_tp[r["axes"]["family"]]
            r["speedup_vs_reference"] = r["tokens_per_s"]["mean"] / ref["tokens_per_s"]["mean"]
            r["memory_per_token_change_pct"] = 100 * (r["memory_per_token_kb"]["mean"] /
                                                      ref["memory_per_token_kb"]["mean"] - 1)
    for fam in FAMILIES:
        means = [r["shots"]["0"]["mean"] for r in icl if r["task"] == "all" and r["axes"]["family"] == fam
                 and r["axes"]["peft.method"] == "lora"]
        m = sum(means) / len(means)
        spread.append({"family": fam, "task": "all", "configs": len(means), "min": min(means), "max": max(means),
                       "range": max(means) - min(means),
                       "std": math.sqrt(sum((v - m) ** 2 for v in means) / max(1, len(means) - 1))})

    stability = {}
    for fam in FAMILIES:
        d = f"stability/{fam}"
        os.makedirs(os.path.join(out, d), exist_ok=True)
        entry = {"perturbation": f"{d}/perturb.json", "precision": f"{d}/precision.json"}
        run_stability(exe, ["perturb", "--preset", PRESET[fam], "--blocks", "5", "--steps", "32"], out, entry["perturbation"])
        run_stability(exe, ["precision", "--model", "preset:" + PRESET[fam], "--tokens", "32"], out, entry["precision"])
        if fam != "pythia":  # a Transformer has no recurrent state, hence no Lyapunov exponents
            entry["lyapunov"] = f"{d}/lyapunov.json"
            run_stability(exe, ["lyapunov", "--model", "preset:" + PRESET[fam], "--tokens", "64", "--k", "4"], out,
                          entry["lyapunov"])
        stability[fam] = entry

    write_json(os.path.join(out, "summary.json"), {
        "format": "mamba-ft-sweep/1", "name": "report-fixture", "sweep_file": "recipes/paper-mini.yaml",
        "axes": axes, "family_axis": "family", "seed_axis": "trainer.seed",
        "reference": {"precision.dtype": "fp32", "peft.method": "full"}, "pairs": pairs, "points": points,
        "tables": {"divergence": divergence, "icl": icl, "lora_spread": spread, "throughput": throughput},
        "stability": stability, "elapsed_s": 1234.5})


def run_stability(exe, args, out, rel):
    subprocess.run([exe, "--threads", "1", "stability", *args, "--output", os.path.join(out, rel)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def make_run(exe, out):
    rng = random.Random(99)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "metrics.jsonl"), "w") as f:
        f.writelines(json.dumps(l) + "\n" for l in metrics_lines(rng, 1.6, STEPS))
    with open(os.path.join(out, "recipe.yaml"), "w") as f:
        f.write("model: preset:mamba-tiny\npeft:\n  method: lora\nprecision:\n  dtype: bf16\n"
                "trainer:\n  max_steps: 60\n  seed: 0\n")
    write_json(os.path.join(out, "eval.json"), eval_results(rng, "mamba", "bf16", "lora"))
    os.makedirs(os.path.join(out, "stability"), exist_ok=True)
    run_stability(exe, ["perturb", "--preset", "mamba-tiny", "--blocks", "5", "--steps", "32"], out,
                  "stability/perturb.json")
    run_stability(exe, ["lyapunov", "--model", "preset:mamba-tiny", "--tokens", "64", "--k", "4"], out,
                  "stability/lyapunov.json")


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    exe, out = sys.argv[1], sys.argv[2]
    make_sweep(exe, os.path.join(out, "sweep"))
    make_run(exe, os.path.join(out, "run"))
    os.makedirs(os.path.join(out, "empty"), exist_ok=True)
    with open(os.path.join(out, "empty", "notes.txt"), "w") as f:
        f.write("no results here\n")


if __name__ == "__main__":
    main()
