"""Writes the random-weight HF models scripts/bench-eval times: the two tiny scoring-test models and two at
published geometry, all with the test BPE tokenizer of tests/eval/make_scoring_model.py.

Usage: make_bench_models.py OUT_ROOT
  OUT_ROOT/tiny-mamba, OUT_ROOT/tiny-neox     make_scoring_model.py's models (hidden 32, 2 layers)
  OUT_ROOT/mamba-130m                         MambaForCausalLM: hidden 768, 24 layers, state 16, expand 2,
                                              conv 4, dt_rank 48 (mamba-130m's geometry)
  OUT_ROOT/pythia-160m                        GPTNeoXForCausalLM: hidden 768, 12 layers, 12 heads, intermediate
                                              3072, rotary_pct 0.25, untied embeddings (pythia-160m's geometry)
Each folder holds save_pretrained's config.json + model.safetensors and tokenizer.json + tokenizer_config.json,
so both lm-eval's `hf` model and `mamba-ft eval --model DIR` load it. The vocabulary is the test tokenizer's
size rounded up to a multiple of 16 (a few hundred rows, not the real 50280/50304: the output layer is a
small part of the work here). A folder whose config.json exists is kept as it is (the script is idempotent).
"""
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "eval"))

import torch  # noqa: E402
from transformers import (GPTNeoXConfig, GPTNeoXForCausalLM, MambaConfig, MambaForCausalLM,  # noqa: E402
                          PreTrainedTokenizerFast)

import make_scoring_model as msm  # noqa: E402  (tests/eval/make_scoring_model.py)

SPECIAL_IDS = dict(bos_token_id=0, eos_token_id=0, pad_token_id=1)  # <|endoftext|> = 0, <|padding|> = 1


def published_geometry(name, vocab):
    if name == "mamba-130m":
        return MambaForCausalLM(MambaConfig(vocab_size=vocab, hidden_size=768, num_hidden_layers=24, state_size=16,
                                            expand=2, conv_kernel=4, time_step_rank=48, use_bias=False,
                                            use_conv_bias=True, tie_word_embeddings=True, **SPECIAL_IDS))
    if name == "pythia-160m":
        return GPTNeoXForCausalLM(GPTNeoXConfig(vocab_size=vocab, hidden_size=768, num_hidden_layers=12,
                                                num_attention_heads=12, intermediate_size=3072, rotary_pct=0.25,
                                                rotary_emb_base=10000, max_position_embeddings=2048,
                                                use_parallel_residual=True, tie_word_embeddings=False,
                                                hidden_act="gelu", **SPECIAL_IDS))
    raise ValueError(name)


def main():
    out_root = sys.argv[1]
    tok = msm.train_tokenizer()
    vocab = -(-tok.get_vocab_size(with_added_tokens=True) // msm.VOCAB_MULTIPLE) * msm.VOCAB_MULTIPLE
    hf_tok = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|endoftext|>",
                                     pad_token="<|padding|>")
    builders = {"tiny-mamba": lambda: msm.make_model("mamba", vocab),
                "tiny-neox": lambda: msm.make_model("neox", vocab),
                "mamba-130m": lambda: published_geometry("mamba-130m", vocab),
                "pythia-160m": lambda: published_geometry("pythia-160m", vocab)}
    for name, build in builders.items():
        out_dir = os.path.join(out_root, name)
        if os.path.isfile(os.path.join(out_dir, "config.json")):
            continue
        torch.manual_seed(0)
        model = build().eval()
        model.save_pretrained(out_dir, safe_serialization=True)
        hf_tok.save_pretrained(out_dir)
        print(f"make_bench_models: {out_dir} ({sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters, "
              f"vocab {vocab})", file=sys.stderr)


if __name__ == "__main__":
    main()
