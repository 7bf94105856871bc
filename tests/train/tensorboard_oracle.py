"""Oracle for mamba-ft's TensorBoard event files: TensorBoard's own EventAccumulator reads the folder
(every event file in it, records CRC-checked by its reader) and every scalar must equal metrics.jsonl.

usage: tensorboard_oracle.py EVENT_DIR METRICS_JSONL LOGGED_STEPS EVAL_STEPS
  LOGGED_STEPS, EVAL_STEPS: comma-separated steps expected in metrics.jsonl (so an empty log fails).
Exits 0 when everything matches, 1 with the differences otherwise. Run by tests/train/test_tensorboard.cpp.
"""
import json
import sys

from tensorboard.backend.event_processing import event_accumulator

# Tag -> metrics.jsonl key (the trainer's tensorboard_scalars()).
TAGS = {
    "train/loss": "loss",
    "train/lr": "lr",
    "train/grad_norm": "grad_norm",
    "train/loss_scale": "loss_scale",
    "train/tokens_per_s": "tokens_per_s",
    "train/peak_rss_mb": "peak_rss_mb",
    "train/memory_per_token_kb": "memory_per_token_kb",
    "eval/loss": "eval_loss",
}
# simple_value is a float32: round-to-nearest of the logged double is within the unit roundoff 2^-24
# (relative); values below float32's normal range (none here) would need an absolute term.
FLOAT32_UNIT_ROUNDOFF = 2.0**-24


def main(event_dir, metrics_path, logged, evaluated):
    errors = []
    rows = [json.loads(line) for line in open(metrics_path)]
    steps = [r["step"] for r in rows]
    if steps != logged:
        errors.append(f"metrics.jsonl steps {steps}, expected {logged}")
    eval_steps = [r["step"] for r in rows if "eval_loss" in r]
    if eval_steps != evaluated:
        errors.append(f"metrics.jsonl eval steps {eval_steps}, expected {evaluated}")

    acc = event_accumulator.EventAccumulator(event_dir, size_guidance={event_accumulator.SCALARS: 0})
    acc.Reload()
    if acc.file_version != 2.0:
        errors.append(f"file_version {acc.file_version!r}, expected 2.0 (brain.Event:2)")
    tags = sorted(acc.Tags()["scalars"])
    if tags != sorted(TAGS):
        errors.append(f"tags {tags}, expected {sorted(TAGS)}")
    checked = 0
    for tag, key in TAGS.items():
        if tag not in tags:
            continue
        want = [(r["step"], r[key]) for r in rows if key in r]
        got = [(e.step, e.value) for e in acc.Scalars(tag)]
        if [s for s, _ in got] != [s for s, _ in want]:
            errors.append(f"{tag}: steps {[s for s, _ in got]}, metrics.jsonl has {[s for s, _ in want]}")
            continue
        for (step, value), (_, expected) in zip(got, want):
            checked += 1
            if not abs(value - expected) <= FLOAT32_UNIT_ROUNDOFF * abs(expected):
                errors.append(f"{tag} at step {step}: {value!r}, metrics.jsonl has {expected!r}")
        times = [e.wall_time for e in acc.Scalars(tag)]
        if times != sorted(times):
            errors.append(f"{tag}: wall times go backwards: {times}")
    if errors:
        print("tensorboard_oracle: " + "\n  ".join(errors), file=sys.stderr)
        return 1
    print(f"tensorboard_oracle: {checked} scalars over {len(TAGS)} tags equal metrics.jsonl")
    return 0


def steps_arg(s):
    return [int(x) for x in s.split(",") if x]


if __name__ == "__main__":
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1], sys.argv[2], steps_arg(sys.argv[3]), steps_arg(sys.argv[4])))
