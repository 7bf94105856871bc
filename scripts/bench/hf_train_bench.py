"""HF transformers + peft peer for `mamba-ft bench-train`: the same training step at mamba-130m geometry
(random weights, the preset's config) and the same threads: zero_grad, forward (bf16 autocast for
lora-bf16) + cross-entropy summed over every token / tokens, backward, grad-norm clipping at 1.0, AdamW
(lr 2e-4, weight decay 0: the recipe defaults). full-fp32 trains every weight; lora-bf16 attaches peft
LoRA (same rank/alpha) to the targets of mamba-ft's Mamba defaults that peft accepts and HF's forward
uses. Memory: peak RSS minus RSS after loading (the peak reset there, as mamba-ft does), so run each
config in its own process. Prints one JSON object; notes about targets go to stderr.
Usage: hf_train_bench.py MODE THREADS SEQ BATCH STEPS WARMUP [RANK ALPHA]"""
import json
import os
import statistics
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
import torch
import torch.nn.functional as F
from transformers import MambaConfig, MambaForCausalLM
from transformers.utils import logging

logging.set_verbosity_error()
mode, threads, seq, batch, steps, warmup = sys.argv[1], *map(int, sys.argv[2:7])
rank, alpha = (int(sys.argv[7]), float(sys.argv[8])) if len(sys.argv) > 8 else (8, 16.0)
assert mode in ("full-fp32", "lora-bf16"), f"mode must be full-fp32 or lora-bf16; got {mode}"
torch.set_num_threads(threads)
torch.manual_seed(0)
# mamba-ft's preset:mamba-130m (csrc/models/registry.cpp).
GEOMETRY = dict(vocab_size=50280, hidden_size=768, num_hidden_layers=24, state_size=16, expand=2, conv_kernel=4,
                intermediate_size=1536, time_step_rank=48, tie_word_embeddings=True, use_conv_bias=True, use_bias=False)
# mamba-ft's default Mamba LoRA targets (csrc/peft/lora.h default_lora_targets).
MFT_TARGETS = ["embeddings", "in_proj", "x_proj", "dt_proj", "out_proj"]


def status_mb(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return float(line.split()[1]) / 1024
    return 0.0


def reset_peak_rss():
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def usable_targets():
    """Targets peft accepts on HF Mamba and whose adapters get gradients, probed on a tiny model."""
    from peft import LoraConfig, get_peft_model
    ok, refused, unused = [], [], []
    for t in MFT_TARGETS:
        tiny = MambaForCausalLM(MambaConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1, state_size=4))
        try:
            m = get_peft_model(tiny, LoraConfig(r=2, lora_alpha=4, target_modules=[t], init_lora_weights=False))
        except ValueError:
            refused.append(t)
            continue
        m.train()
        out = m(torch.randint(0, 64, (1, 8))).logits.sum()
        if out.requires_grad:  # False when the forward reads no adapter at all
            out.backward()
        grads = [p.grad for n, p in m.named_parameters() if "lora_" in n]
        (ok if grads and all(g is not None for g in grads) else unused).append(t)
    return ok, refused, unused


result = {"mode": mode, "threads": threads, "batch": batch, "seq": seq, "steps": steps, "warmup": warmup}
if mode == "lora-bf16":
    targets, refused, unused = usable_targets()
    result.update(lora_rank=rank, lora_alpha=alpha, lora_targets=targets, lora_refused=refused, lora_no_grad=unused)
    print(f"hf peft LoRA targets: {', '.join(targets)} (refused by peft for Mamba: {', '.join(refused) or 'none'}; "
          f"accepted but bypassed by HF's forward, no gradient: {', '.join(unused) or 'none'})", file=sys.stderr)

model = MambaForCausalLM(MambaConfig(**GEOMETRY))
if mode == "lora-bf16":
    from peft import LoraConfig, get_peft_model
    model = get_peft_model(model, LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=0.0, target_modules=targets))
model.train()
params = [p for p in model.parameters() if p.requires_grad]
result["parameters"] = sum(p.numel() for p in model.parameters())
result["trained_parameters"] = sum(p.numel() for p in params)
opt = torch.optim.AdamW(params, lr=2e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
V, tokens = GEOMETRY["vocab_size"], batch * seq
ids = torch.randint(0, V, (batch, seq))
labels = torch.randint(0, V, (batch * seq,))
autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=mode == "lora-bf16")

result["rss_after_load_mb"] = status_mb("VmRSS")
reset_peak_rss()
fwd, bwd, optim, step_times, losses = [], [], [], [], []
for step in range(warmup + steps):
    t0 = time.perf_counter()
    opt.zero_grad(set_to_none=True)
    with autocast:
        logits = model(input_ids=ids, use_cache=False).logits
        loss = F.cross_entropy(logits.view(-1, V).float(), labels, reduction="sum")
    losses.append(loss.item() / tokens)
    t1 = time.perf_counter()
    (loss / tokens).backward()
    t2 = time.perf_counter()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    t3 = time.perf_counter()
    if step >= warmup:
        fwd.append(t1 - t0)
        bwd.append(t2 - t1)
        optim.append(t3 - t2)
        step_times.append(t3 - t0)
result["peak_rss_over_load_mb"] = status_mb("VmHWM") - result["rss_after_load_mb"]
result["memory_per_token_kb"] = result["peak_rss_over_load_mb"] * 1024 / tokens
result.update(step_times_s=step_times, step_s=statistics.median(step_times),
              forward_s=statistics.median(fwd), backward_s=statistics.median(bwd),
              optimizer_s=statistics.median(optim), loss_first=losses[0], loss_last=losses[-1])
result["tokens_per_s"] = tokens / result["step_s"]
result["transformers_version"] = __import__("transformers").__version__
result["peft_version"] = __import__("peft").__version__ if mode == "lora-bf16" else None
print(json.dumps(result))
