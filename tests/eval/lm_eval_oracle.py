"""Oracle for loglikelihood scoring: the semantics of lm-evaluation-harness's HF backend (HFLM:
`loglikelihood`, `_encode_pair`, `_loglikelihood_tokens`, `loglikelihood_rolling` with
`get_rolling_token_windows(context_len=1)` + `make_disjoint_window`), written here from lm-eval's source with
transformers + tokenizers (lm-eval itself is not installed). One request at a time, no batching, no sorting,
no logits cache: the C++ code does all of those, so agreement also checks that they change nothing.

Usage: lm_eval_oracle.py --max-length N[,N...] MODEL_DIR [MODEL_DIR ...]
  reads MODEL_DIR/requests.jsonl, lines {"context": s, "continuation": s} or {"text": s}, and
  writes MODEL_DIR/oracle-N.jsonl per max length: {"loglikelihood", "is_greedy", "num_tokens"} for pairs,
  {"loglikelihood", "num_tokens"} for rolling texts, in input order.
"""
import argparse
import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM, AutoTokenizer
from transformers.utils import logging

logging.set_verbosity_error()
logging.disable_progress_bar()


class HfBackend:
    def __init__(self, model_dir, max_length):
        self.tok = AutoTokenizer.from_pretrained(model_dir)
        self.model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
        self.max_length = max_length
        # HFLM.prefix_token_id: BOS if the tokenizer has one, else EOS.
        self.prefix = self.tok.bos_token_id if self.tok.bos_token_id is not None else self.tok.eos_token_id

    def encode(self, text, add_special_tokens=None):
        # HFLM.tok_encode: a string that already starts with the prefix token's text gets no special tokens.
        kwargs = {} if add_special_tokens is None else {"add_special_tokens": add_special_tokens}
        if add_special_tokens is None and text.startswith(self.tok.decode(self.prefix)):
            kwargs = {"add_special_tokens": False}
        return self.tok.encode(text, **kwargs)

    def encode_pair(self, context, continuation):
        if context == "":
            cont = self.encode(continuation, add_special_tokens=False)
            # A continuation that starts with the prefix token conditions on that token instead.
            return ([self.prefix], cont) if self.prefix != cont[0] else (cont[:1], cont[1:])
        n_spaces = len(context) - len(context.rstrip())
        if n_spaces > 0:
            continuation = context[-n_spaces:] + continuation
            context = context[:-n_spaces]
        whole = self.encode(context + continuation)
        ctx = self.encode(context)
        return ctx, whole[len(ctx):]

    @torch.no_grad()
    def score(self, ctx, cont):
        assert len(ctx) > 0 and 0 < len(cont) <= self.max_length
        inp = (ctx + cont)[-(self.max_length + 1):][:-1]
        logits = self.model(input_ids=torch.tensor([inp]), use_cache=False).logits[0]  # (len(inp), V)
        logprobs = F.log_softmax(logits.float(), dim=-1)[len(inp) - len(cont):]       # (len(cont), V)
        target = torch.tensor(cont)
        is_greedy = bool((logprobs.argmax(dim=-1) == target).all())
        return float(logprobs.gather(1, target[:, None]).sum()), is_greedy

    def rolling_windows(self, tokens):
        # get_rolling_token_windows(prefix_token, max_seq_len=max_length, context_len=1), then
        # make_disjoint_window: the first window predicts up to max_length tokens after the prefix token; each
        # later one predicts the next max_length tokens, conditioned on the max_length tokens before its last.
        n, m, windows, done = len(tokens), self.max_length, [], 0
        while done < n:
            pred = min(n - done, m)
            end = done + pred
            inp = [self.prefix] + tokens[:pred - 1] if done == 0 else tokens[max(0, end - m - 1):end - 1]
            windows.append((inp[:len(inp) - (pred - 1)], tokens[end - pred:end]))
            done = end
        return windows

    def answer(self, request):
        if "text" in request:
            tokens = self.encode(request["text"])
            total = sum(self.score(ctx, cont)[0] for ctx, cont in self.rolling_windows(tokens))
            return {"loglikelihood": total, "num_tokens": len(tokens)}
        ctx, cont = self.encode_pair(request["context"], request["continuation"])
        ll, greedy = self.score(ctx, cont)
        return {"loglikelihood": ll, "is_greedy": greedy, "num_tokens": len(cont)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--max-length", required=True, help="comma-separated: one oracle file each")
    ap.add_argument("models", nargs="+")
    args = ap.parse_args()
    torch.set_num_threads(1)  # tiny models: threads cost more than they save, and ctest runs tests side by side
    for model_dir in args.models:
        with open(os.path.join(model_dir, "requests.jsonl"), encoding="utf-8") as f:
            requests = [json.loads(line) for line in f if line.strip()]
        for max_length in [int(m) for m in args.max_length.split(",")]:
            backend = HfBackend(model_dir, max_length)
            with open(os.path.join(model_dir, f"oracle-{max_length}.jsonl"), "w", encoding="utf-8") as out:
                for r in requests:
                    out.write(json.dumps(backend.answer(r)) + "\n")


if __name__ == "__main__":
    main()
