"""Loads OUT of mamba-ft's save_hf_model with HF transformers' from_pretrained and writes its fp32 logits
for the ids in IDS.safetensors ("ids", float32) to OUT_FILE ("logits").
Usage: hf_logits.py MODEL_DIR IDS.safetensors OUT_FILE"""
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM
from transformers.utils import logging

logging.set_verbosity_error()
model = AutoModelForCausalLM.from_pretrained(sys.argv[1]).float().eval()
ids = load_file(sys.argv[2])["ids"].long()
with torch.no_grad():
    save_file({"logits": model(ids).logits.float()}, sys.argv[3])
