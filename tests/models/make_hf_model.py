"""Writes a random-weight HF model (transformers, in .venv) to OUT_DIR with save_pretrained, plus
OUT_DIR/golden.safetensors holding input ids (as float32), HF's fp32 logits for them, HF's greedy
continuation ("greedy", 12 new tokens after the first 10 ids of row 0) and HF's logits with the model in
bfloat16 ("logits_bf16").
Usage: make_hf_model.py OUT_DIR CONFIG_NAME [LAYOUT]   (configs below: small and odd sizes, tied and untied)
  LAYOUT: hf (default: save_pretrained, one model.safetensors), sharded (model.safetensors.index.json and
  several shards), original (Mamba only: state-spaces config.json and an OrderedDict pytorch_model.bin
  named backbone.embedding.*), bin (HF config.json with pytorch_model.bin)."""
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing is downloaded: the model is built here

import torch
from safetensors.torch import load_file, save_file
import collections
import json

from transformers import (GPTNeoXConfig, GPTNeoXForCausalLM, Mamba2Config, Mamba2ForCausalLM, MambaConfig,
                          MambaForCausalLM)
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
    "mamba2-tied": (Mamba2Config, Mamba2ForCausalLM, dict(
        vocab_size=96, hidden_size=64, num_heads=8, head_dim=16, state_size=16, n_groups=2, num_hidden_layers=2,
        expand=2, conv_kernel=4, chunk_size=16, use_bias=False, use_conv_bias=True, tie_word_embeddings=True,
        pad_token_id=0, bos_token_id=0, eos_token_id=0)),
    "mamba2-untied-odd": (Mamba2Config, Mamba2ForCausalLM, dict(
        vocab_size=83, hidden_size=36, num_heads=6, head_dim=12, state_size=8, n_groups=3, num_hidden_layers=3,
        expand=2, conv_kernel=3, chunk_size=8, use_bias=True, use_conv_bias=True, tie_word_embeddings=False,
        time_step_limit=(0.0, 0.6), pad_token_id=0, bos_token_id=0, eos_token_id=0)),
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
layout = sys.argv[3] if len(sys.argv) > 3 else "hf"
torch.manual_seed(0)
config_cls, model_cls, kwargs = CONFIGS[name]
config = config_cls(**kwargs)
model = model_cls(config).eval()
with torch.no_grad():  # move every parameter away from its init (D = 1, zero biases) so all of it matters
    for p in model.parameters():
        p.add_(torch.randn_like(p) * 0.05)
if layout == "sharded":
    model.save_pretrained(out_dir, safe_serialization=True, max_shard_size="40KB")
elif layout == "hf":
    model.save_pretrained(out_dir, safe_serialization=True)
elif layout == "bin":
    model.save_pretrained(out_dir, safe_serialization=True)  # the names HF files carry, then as a .bin
    sd = collections.OrderedDict(load_file(f"{out_dir}/model.safetensors"))
    os.remove(f"{out_dir}/model.safetensors")
    torch.save(sd, f"{out_dir}/pytorch_model.bin")
elif layout == "original":  # what mamba-ssm's save_pretrained writes
    assert config_cls is MambaConfig
    os.makedirs(out_dir, exist_ok=True)
    sd = collections.OrderedDict()
    for k, v in model.state_dict().items():
        sd[k.replace("backbone.embeddings.", "backbone.embedding.")] = v
    if "lm_head.weight" not in sd:
        sd["lm_head.weight"] = sd["backbone.embedding.weight"]  # tied: same storage, as mamba-ssm saves it
    torch.save(sd, f"{out_dir}/pytorch_model.bin")
    original = {"d_model": config.hidden_size, "n_layer": config.num_hidden_layers, "vocab_size": config.vocab_size,
                "ssm_cfg": {"d_state": config.state_size, "d_conv": config.conv_kernel, "expand": config.expand,
                            "dt_rank": config.time_step_rank, "conv_bias": config.use_conv_bias,
                            "bias": config.use_bias},
                "rms_norm": True, "residual_in_fp32": True, "fused_add_norm": True, "pad_vocab_size_multiple": 1,
                "tie_embeddings": config.tie_word_embeddings}
    with open(f"{out_dir}/config.json", "w") as f:
        json.dump(original, f)
else:
    raise SystemExit(f"unknown layout {layout}")
ids = torch.randint(1, config.vocab_size, (2, 37))
with torch.no_grad():
    logits = model(ids).logits.float()
    greedy = model.generate(ids[:1, :10], max_new_tokens=12, do_sample=False, eos_token_id=None,
                            pad_token_id=0)[:, 10:]
    logits_bf16 = model.to(torch.bfloat16)(ids).logits.float()  # HF's own bf16 error, the bound's yardstick
save_file({"ids": ids.float(), "logits": logits, "greedy": greedy.float(), "logits_bf16": logits_bf16},
          f"{out_dir}/golden.safetensors")
