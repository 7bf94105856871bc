"""HF peft side of the LoRA interop checks (tests/peft/test_lora.cpp), with the model folder that
tests/models/make_hf_model.py wrote and its golden ids.
Usage:
  peft_interop.py ours MODEL_DIR ADAPTER_DIR IDS.safetensors OUT.safetensors
      PeftModel.from_pretrained(HF model, ADAPTER_DIR) (an adapter mamba-ft wrote); writes its fp32 logits.
  peft_interop.py make MODEL_DIR ADAPTER_DIR IDS.safetensors OUT.safetensors TARGETS R ALPHA RSLORA
      get_peft_model with LoraConfig(target_modules=TARGETS (comma-separated), r=R, lora_alpha=ALPHA,
      use_rslora=RSLORA (0/1)), every LoRA tensor set to random non-zero values, saved to ADAPTER_DIR with
      save_pretrained; writes the adapted model's fp32 logits."""
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM
from transformers.utils import logging

logging.set_verbosity_error()
mode, model_dir, adapter_dir, ids_file, out_file = sys.argv[1:6]
model = AutoModelForCausalLM.from_pretrained(model_dir).float().eval()
ids = load_file(ids_file)["ids"].long()
if mode == "ours":
    model = PeftModel.from_pretrained(model, adapter_dir).eval()
elif mode == "make":
    targets, r, alpha, rslora = sys.argv[6].split(","), int(sys.argv[7]), float(sys.argv[8]), sys.argv[9] == "1"
    config = LoraConfig(r=r, lora_alpha=alpha, target_modules=targets, lora_dropout=0.0, use_rslora=rslora,
                        task_type="CAUSAL_LM")
    model = get_peft_model(model, config).eval()
    torch.manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_" in name:  # peft's init makes the update zero; make every factor matter
                p.copy_(torch.randn_like(p) * 0.2)
    model.save_pretrained(adapter_dir)
else:
    sys.exit(f"unknown mode {mode}")
with torch.no_grad():
    logits = model(input_ids=ids).logits.float()
save_file({"logits": logits.contiguous()}, out_file)
