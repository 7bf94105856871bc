"""HF transformers peer for `mamba-ft bench-model`: the same geometry with random weights, the same
threads; prefill = one forward over the prompt with use_cache (what generate does first), decode =
(time of generate(N+1 new tokens) - time of generate(1 new token)) / N, greedy, each the best of 2.
Prints one JSON object.
Usage: hf_model_bench.py FAMILY PRESET DTYPE THREADS PROMPT_TOKENS DECODE_TOKENS"""
import json
import os
import resource
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
import torch
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM, MambaConfig, MambaForCausalLM
from transformers.utils import logging

logging.set_verbosity_error()
family, preset, dtype, threads, prompt_tokens, decode_tokens = sys.argv[1:7]
threads, prompt_tokens, decode_tokens = int(threads), int(prompt_tokens), int(decode_tokens)
torch.set_num_threads(threads)
torch.manual_seed(0)
GEOMETRY = {  # the published sizes mamba-ft's presets use
    "mamba-130m": dict(hidden_size=768, num_hidden_layers=24),
    "pythia-160m": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12),
}
if family == "mamba":
    model = MambaForCausalLM(MambaConfig(vocab_size=50280, state_size=16, expand=2, conv_kernel=4,
                                         tie_word_embeddings=True, **GEOMETRY[preset]))
else:
    g = GEOMETRY[preset]
    model = GPTNeoXForCausalLM(GPTNeoXConfig(vocab_size=50304, intermediate_size=4 * g["hidden_size"],
                                             rotary_pct=0.25, tie_word_embeddings=False, **g))
model = model.to({"fp32": torch.float32, "bf16": torch.bfloat16}[dtype]).eval()
rss_load = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
ids = torch.randint(0, 50000, (1, prompt_tokens))


def best(f, n):
    times = []
    for _ in range(n):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return min(times)


with torch.no_grad():
    model(ids[:, :8], use_cache=True)
    prefill = best(lambda: model(ids, use_cache=True), 2)
    gen = lambda n: model.generate(ids, max_new_tokens=n, min_new_tokens=n, do_sample=False, pad_token_id=0)
    gen(2)
    one = best(lambda: gen(1), 2)
    total = best(lambda: gen(decode_tokens + 1), 2)
print(json.dumps({"prefill_s": prefill, "prefill_tokens_per_s": prompt_tokens / prefill,
                  "decode_s_per_token": (total - one) / decode_tokens,
                  "decode_tokens_per_s": decode_tokens / (total - one),
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "rss_load_mb": rss_load}))
