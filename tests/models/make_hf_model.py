"""Writes a random-weight HF model (transformers, in .venv) to OUT_DIR with save_pretrained, plus
OUT_DIR/golden.safetensors holding input ids (as float32) and HF's fp32 logits for them.
Usage: make_hf_model.py OUT_DIR CONFIG_NAME   (configs below: small and odd sizes, tied and untied)."""
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing is downloaded: the model is built here

import torch
from safetensors.torch import save_file
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM, MambaConfig, MambaForCausalLM
from transformers.utils import logging

logging.set_verbosity_error()  # no "falling back to the reference implementation" notes
logging.disable_progress_bar()

CONFIGS = {
    "mamba-tied": (MambaConfig, MambaForCausalLM, dict(
        vocab_size=101, hidden_size=48, state_size=8, num_hidden_layers=2, expand=2, conv_kernel=4,
        time_step_rank="auto", use_bias=False, use_conv_bias=True, tie_word_embeddings=True)),
    "mamba-untied-odd": (MambaConfig, MambaForCausalLM, dict(
        vocab_size=77, hidden_size=40, state_size=5, num_hidden_layers=3, expand=2, conv_kernel=3,
        time_step_rank=7, use_bias=True, use_conv_bias=True, tie_word_embeddings=False)),
    "neox-parallel": (GPTNeoXConfig, GPTNeoXForCausalLM, dict(
        vocab_size=97, hidden_size=64, num_attention_heads=4, num_hidden_layers=2, intermediate_size=128,
        rotary_pct=0.25, rotary_emb_base=10000, use_parallel_residual=True, tie_word_embeddings=False,
        hidden_act="gelu")),
    "neox-sequential-tied": (GPTNeoXConfig, GPTNeoXForCausalLM, dict(
        vocab_size=61, hidden_size=24, num_attention_heads=2, num_hidden_layers=3, intermediate_size=40,
        rotary_pct=0.5, rotary_emb_base=500, use_parallel_residual=False, tie_word_embeddings=True,
        hidden_act="gelu")),
}

out_dir, name = sys.argv[1], sys.argv[2]
torch.manual_seed(0)
config_cls, model_cls, kwargs = CONFIGS[name]
config = config_cls(**kwargs)
model = model_cls(config).eval()
with torch.no_grad():  # move every parameter away from its init (D = 1, zero biases) so all of it matters
    for p in model.parameters():
        p.add_(torch.randn_like(p) * 0.05)
model.save_pretrained(out_dir, safe_serialization=True)
ids = torch.randint(0, config.vocab_size, (2, 37))
with torch.no_grad():
    logits = model(ids).logits.float()
save_file({"ids": ids.float(), "logits": logits}, f"{out_dir}/golden.safetensors")
