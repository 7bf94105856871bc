"""Prefill and decode speed of a mamba-ft TorchScript archive run by plain torch.jit.load (Python), measured as
`mamba-ft bench-model` measures the native model: a random prompt into a fresh state (best of N), then batch-1
greedy decoding with step(). Prints one JSON object.

Usage: export_bench.py ARCHIVE --threads T [--ops-library LIB] [--prompt-tokens 512] [--decode-tokens 32] [--repeats 3]
"""
import argparse
import json
import os
import time
import zipfile

import torch


def requires(path):
    with zipfile.ZipFile(path) as z:
        for member in z.namelist():
            if member.endswith("/extra/mft_requires"):
                return z.read(member).decode()
    return ""


def main():
    p = argparse.ArgumentParser()
    p.add_argument("archive")
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--ops-library", default="")
    p.add_argument("--prompt-tokens", type=int, default=512)
    p.add_argument("--decode-tokens", type=int, default=32)
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    if requires(a.archive):
        torch.ops.load_library(a.ops_library)
    files = {"config.json": ""}
    m = torch.jit.load(a.archive, _extra_files=files)
    vocab = json.loads(files["config.json"])["vocab_size"]
    torch.manual_seed(0)
    prompt = torch.randint(0, vocab, (1, a.prompt_tokens))
    with torch.no_grad():
        # Warm-up at the timed shapes: TorchScript's profiling executor records and specialises each method on its
        # first two calls.
        for _ in range(2):
            m(prompt)
            logits, state = m.prefill(prompt, m.init_state(1))
            nxt = logits[:, -1].argmax(-1)
            for _ in range(3):
                step_logits, state = m.step(nxt, state)
                nxt = step_logits.argmax(-1)
        best = float("inf")
        for _ in range(a.repeats):
            t0 = time.perf_counter()
            logits, state = m.prefill(prompt, m.init_state(1))
            best = min(best, time.perf_counter() - t0)
        prefill_s = best
        best_fwd = float("inf")
        for _ in range(a.repeats):
            t0 = time.perf_counter()
            m(prompt)
            best_fwd = min(best_fwd, time.perf_counter() - t0)
        nxt = logits[:, -1].argmax(-1)
        for _ in range(2):
            step_logits, state = m.step(nxt, state)
            nxt = step_logits.argmax(-1)
        t0 = time.perf_counter()
        for _ in range(a.decode_tokens):
            step_logits, state = m.step(nxt, state)
            nxt = step_logits.argmax(-1)
        decode_s = (time.perf_counter() - t0) / a.decode_tokens
    print(json.dumps({"archive": os.path.basename(a.archive), "threads": torch.get_num_threads(),
                      "prefill_s": prefill_s, "prefill_tokens_per_s": a.prompt_tokens / prefill_s,
                      "forward_tokens_per_s": a.prompt_tokens / best_fwd,
                      "decode_s_per_token": decode_s, "decode_tokens_per_s": 1.0 / decode_s}))


if __name__ == "__main__":
    main()
