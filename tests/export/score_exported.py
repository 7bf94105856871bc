"""Loglikelihoods of lm-eval requests computed with a mamba-ft TorchScript archive (plain torch.jit.load),
compared with `mamba-ft score`'s results for the same model.

Usage: score_exported.py ARCHIVE REQUESTS.jsonl SCORES.jsonl [--ops-library LIB] [--tolerance 1e-4]
Byte-tokenizer models only (the tiny presets): a token is a UTF-8 byte. Requests are
{"context", "continuation"} with a non-empty context; the split follows lm-eval's HF backend (trailing
spaces of the context move to the continuation; the continuation's tokens are those of context +
continuation after the context's). Prints the largest |difference|.
"""
import argparse
import json
import os
import sys
import zipfile

import torch


def requires(path):
    with zipfile.ZipFile(path) as z:
        for member in z.namelist():
            if member.endswith("/extra/mft_requires"):
                return z.read(member).decode()
    return ""


def encode(text):
    return list(text.encode("utf-8"))


def loglikelihood(m, context, continuation):
    n = len(context) - len(context.rstrip())
    if n > 0:
        context, continuation = context[:-n], context[-n:] + continuation
    context_enc = encode(context)
    continuation_enc = encode(context + continuation)[len(context_enc):]
    ids = torch.tensor([(context_enc + continuation_enc)[:-1]])
    with torch.no_grad():
        logp = torch.log_softmax(m(ids)[0].double(), -1)
    positions = range(len(context_enc) - 1, len(context_enc) - 1 + len(continuation_enc))
    return sum(logp[p, t].item() for p, t in zip(positions, continuation_enc))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("archive")
    p.add_argument("requests")
    p.add_argument("scores")
    p.add_argument("--ops-library", default="")
    p.add_argument("--tolerance", type=float, default=1e-4)
    a = p.parse_args()
    need = requires(a.archive)
    if need:
        assert os.path.basename(a.ops_library) == need, (a.ops_library, need)
        torch.ops.load_library(a.ops_library)
    m = torch.jit.load(a.archive)
    requests = [json.loads(line) for line in open(a.requests) if line.strip()]
    scores = [json.loads(line) for line in open(a.scores) if line.strip()]
    assert len(requests) == len(scores), (len(requests), len(scores))
    worst = 0.0
    for r, s in zip(requests, scores):
        worst = max(worst, abs(loglikelihood(m, r["context"], r["continuation"]) - s["loglikelihood"]))
    print(f"{os.path.basename(a.archive)}: {len(requests)} requests, max |loglikelihood - mamba-ft score| {worst:.2e}")
    sys.exit(0 if worst <= a.tolerance else 1)


if __name__ == "__main__":
    main()
