"""Writes small random-weight HF models that come with a real tokenizer, for loglikelihood scoring tests.

Usage: make_scoring_model.py OUT_ROOT FAMILY [FAMILY ...]     FAMILY: mamba | mamba2 | neox
Each OUT_ROOT/FAMILY/ gets save_pretrained's config.json + model.safetensors and the tokenizer's
tokenizer.json + tokenizer_config.json (bos = eos = <|endoftext|>, as GPT-NeoX-20B, the tokenizer of Mamba,
Mamba-2 and Pythia). The tokenizer is a byte-level BPE (GPT-NeoX structure: NFC, ByteLevel pre-tokenizer
and post-processor, <|endoftext|> = 0, <|padding|> = 1) trained here on a fixed text, so every UTF-8 string
is encodable; the models' vocabularies are the tokenizer's size rounded up to a multiple of 16, as real
checkpoints pad theirs (the extra rows still take part in the log-softmax).
"""
import json
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing is downloaded: everything is built here

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import (GPTNeoXConfig, GPTNeoXForCausalLM, Mamba2Config, Mamba2ForCausalLM, MambaConfig,
                          MambaForCausalLM, PreTrainedTokenizerFast)
from transformers.utils import logging

logging.set_verbosity_error()  # no "falling back to the reference implementation" notes
logging.disable_progress_bar()

SPECIALS = ["<|endoftext|>", "<|padding|>"]
BPE_VOCAB = 360  # 256 bytes + 2 specials + about 100 merges: multi-byte tokens, still a tiny output layer
VOCAB_MULTIPLE = 16
GREEDY_TOKENS = 3
TEXT = ("The cat sat on the mat. The dog sat on the log. Hello, world! How are you doing today? "
        "Question: what is the answer?\nAnswer: the answer is forty two.\n\n"
        "café naïve résumé 日本語 🙂 don't I'm we'll they've   indented  text 12345 3.14159 ")


def train_tokenizer():
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)
    tok.post_processor = processors.ByteLevel(trim_offsets=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=BPE_VOCAB, min_frequency=2, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator([TEXT] * 20, trainer)
    return tok


def make_model(family, vocab):
    if family == "mamba":
        config = MambaConfig(vocab_size=vocab, hidden_size=32, state_size=8, num_hidden_layers=2, expand=2,
                             conv_kernel=4, time_step_rank="auto", use_bias=False, use_conv_bias=True,
                             tie_word_embeddings=True, bos_token_id=0, eos_token_id=0, pad_token_id=1)
        return MambaForCausalLM(config)
    if family == "mamba2":
        config = Mamba2Config(vocab_size=vocab, hidden_size=32, num_heads=4, head_dim=16, state_size=8, n_groups=1,
                              num_hidden_layers=2, expand=2, conv_kernel=4, chunk_size=8, use_bias=False,
                              use_conv_bias=True, tie_word_embeddings=True, bos_token_id=0, eos_token_id=0,
                              pad_token_id=1)
        return Mamba2ForCausalLM(config)
    if family == "neox":
        config = GPTNeoXConfig(vocab_size=vocab, hidden_size=32, num_attention_heads=4, num_hidden_layers=2,
                               intermediate_size=64, rotary_pct=0.25, rotary_emb_base=10000,
                               max_position_embeddings=2048, use_parallel_residual=True, tie_word_embeddings=False,
                               hidden_act="gelu", bos_token_id=0, eos_token_id=0)
        return GPTNeoXForCausalLM(config)
    raise SystemExit(f"unknown family {family} (expected mamba, mamba2 or neox)")


def greedy_request(model, tok):
    """A (context, continuation) pair whose continuation is the model's greedy one and survives re-tokenisation
    (enc(context + continuation) = enc(context) + greedy ids), so that is_greedy is true for it."""
    for context in ["The cat sat on the", "Hello", "Question: what is", "The dog", "café", "How are you"]:
        ctx = tok.encode(context)
        with torch.no_grad():
            ids = model.generate(torch.tensor([ctx]), max_new_tokens=GREEDY_TOKENS, do_sample=False,
                                 eos_token_id=None, pad_token_id=1)[0, len(ctx):].tolist()
        continuation = tok.decode(ids)
        if tok.encode(context + continuation) == ctx + ids:
            return {"context": context, "continuation": continuation}
    raise SystemExit("no greedy continuation survives re-tokenisation; change the candidate contexts")


def main():
    out_root, families = sys.argv[1], sys.argv[2:]
    tok = train_tokenizer()
    vocab = -(-tok.get_vocab_size(with_added_tokens=True) // VOCAB_MULTIPLE) * VOCAB_MULTIPLE
    for family in families:
        out_dir = os.path.join(out_root, family)
        torch.manual_seed(0)
        model = make_model(family, vocab).eval()
        with torch.no_grad():
            # Away from the init (D = 1, zero biases) so every parameter matters; a larger spread on the output
            # layer gives peaked, varied next-token distributions (some greedy matches, log-probs far from uniform).
            for name, p in model.named_parameters():
                p.add_(torch.randn_like(p) * (0.2 if "embed" in name else 0.05))
        model.save_pretrained(out_dir, safe_serialization=True)
        hf_tok = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|endoftext|>",
                                         pad_token="<|padding|>")
        hf_tok.save_pretrained(out_dir)
        with open(os.path.join(out_dir, "greedy.json"), "w", encoding="utf-8") as f:
            json.dump(greedy_request(model, hf_tok), f, ensure_ascii=False)


if __name__ == "__main__":
    main()
