"""Writes small synthetic ICL task files, schema-exact copies of the real ones, for the eval tests.

Usage: make_task_data.py OUT_DIR [--n N] [--train T]

Layout: OUT_DIR/<task>/<split>.jsonl, each written by `datasets.Dataset.to_json` with the hub datasets'
features in the hub's column order, so the files are what a user gets from
`load_dataset(...)[split].to_json(path)`: pandas' defaults force_ascii=True (non-ASCII as \\uXXXX, astral
characters as surrogate pairs) and "/" escaped as "\\/".

  lambada_openai/test.jsonl                     EleutherAI/lambada_openai (default): text
  hellaswag/{validation,train}.jsonl            Rowan/hellaswag: ind, activity_label, ctx_a, ctx_b, ctx, endings,
                                                source_id, split, split_type, label (a digit string)
  piqa/{validation,train}.jsonl                 baber/piqa: goal, sol1, sol2, label (ClassLabel -> int)
  arc_easy/{test,train}.jsonl                   allenai/ai2_arc ARC-Easy: id, question, choices{text,label}, answerKey
  arc_challenge/{test,train}.jsonl              allenai/ai2_arc ARC-Challenge: same fields
  winogrande/{validation,train}.jsonl           allenai/winogrande winogrande_xl: sentence, option1, option2, answer
  mmlu/{dev,test}.jsonl                         cais/mmlu `all`: question, subject, choices, answer (ClassLabel A-D ->
                                                int); rows sorted by subject as in `all`; 5 dev rows per subject

N (default 8) eval docs per task (mmlu: 2 or 3 test rows per subject, 5 subjects, one per MMLU category and two
STEM ones, so lm-eval's `mmlu` group and all four category groups are populated), T (default 10) train docs.
The texts are random words (a fixed seed per task and split: the files are byte-identical on every run) with
the noise the real data has: non-ASCII letters, curly quotes, an emoji, slashes, HellaSwag's [title]/[step]
markup, double and triple spaces, ARC items with 3 or 5 choices and with labels "1".."4".
"""
import argparse
import os
import random

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import datasets
from datasets import ClassLabel, Features, Sequence, Value

datasets.disable_progress_bars()
datasets.logging.set_verbosity_error()

WORDS = ("the a man woman dog cat table chair river house car road water light stone tree garden kitchen window "
         "door paper book letter music song game ball field city village market bread apple coffee tea glass "
         "small large red blue green old new quiet bright slow quick warm cold happy tired clean open "
         "walks runs takes puts finds holds opens closes cleans paints reads writes sings plays cooks washes "
         "slowly quickly carefully gently again then now later together outside inside near under over"
         ).split()
# Words the real datasets have too: accents, curly quotes, an emoji, slashes (escaped as \/ in the files).
SPECIAL = ["café", "naïve", "résumé", "“really”", "🙂", "and/or", "1/2", "http://example.com/a/b", "don't", "it's"]
MMLU_SUBJECTS = ["abstract_algebra", "anatomy", "global_facts", "high_school_geography", "philosophy"]
FEWSHOT_DEV_ROWS = 5  # cais/mmlu has exactly 5 dev rows per subject (MMLU's 5-shot prompts)


class Text:
    """Random words from a fixed seed: every text is reproducible, every few have a special word."""

    def __init__(self, seed):
        self.rnd = random.Random(seed)

    def words(self, n, special=0.15):
        out = []
        for _ in range(n):
            out.append(self.rnd.choice(SPECIAL) if self.rnd.random() < special else self.rnd.choice(WORDS))
        return out

    def phrase(self, lo, hi, special=0.15):
        return " ".join(self.words(self.rnd.randint(lo, hi), special))

    def sentence(self, lo=4, hi=9):
        text = self.phrase(lo, hi)
        return text[0].upper() + text[1:] + self.rnd.choice([".", ".", ".", "!", "?"])


def write(out_dir, task, split, rows, features):
    path = os.path.join(out_dir, task, f"{split}.jsonl")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    datasets.Dataset.from_list(rows, features=features).to_json(path)  # pandas defaults: force_ascii, "\/"


def lambada_rows(n, seed):
    t = Text(seed)
    rows = []
    for i in range(n):
        text = " ".join(t.sentence(5, 10) for _ in range(t.rnd.randint(2, 3)))
        last = t.rnd.choice(WORDS + ["café", "résumé"])
        if i == 1:
            text = "she said , “what are you doing” and she looked at the 🙂 on the"  # quotes, emoji
        if i == 2:
            text = text.replace(" ", "  ", 1)  # a double space: split(' ') yields an empty word
        if i == 3:
            text = text + " and/or http://example.com/x"  # slashes
        rows.append({"text": f"{text} {last}"})
    return rows


HELLASWAG_FEATURES = Features({
    "ind": Value("int32"), "activity_label": Value("string"), "ctx_a": Value("string"), "ctx_b": Value("string"),
    "ctx": Value("string"), "endings": Sequence(Value("string")), "source_id": Value("string"),
    "split": Value("string"), "split_type": Value("string"), "label": Value("string")})


def hellaswag_rows(n, seed, split):
    t = Text(seed)
    rows = []
    for i in range(n):
        wikihow = i % 3 == 2
        if wikihow:  # WikiHow rows: [header]/[title]/[step] markup that preprocess() rewrites or removes
            activity = t.rnd.choice(["Home and Garden", "Food and Entertaining", "Health"])
            ctx_a = (f"[header] How to {t.phrase(2, 4)} [title] {t.sentence(3, 6)} [step] {t.sentence(3, 7)}")
            ctx_b = t.rnd.choice(["", "you", "then  you", "THE cat"])  # "" -> ctx_a + " " (preprocess strips)
            endings = [f"{t.sentence(4, 8)} [substeps] {t.phrase(2, 5)}" if k % 2 else
                       f"  {t.sentence(4, 9)}   {t.phrase(1, 3)}" for k in range(4)]
            source = f"wikihow~{1000 + 37 * i + seed % 100}"
        else:
            activity = t.rnd.choice(["Removing ice from car", "Making a sandwich", "Playing café music", "Painting"])
            ctx_a = t.sentence(5, 10)
            ctx_b = t.rnd.choice(["the man", "a woman", "The DOG", "she", "they  then", "the résumé"])
            endings = [t.phrase(4, 10) + "." for _ in range(4)]
            source = f"activitynet~v_{t.rnd.randrange(16 ** 8):08x}"
        ctx = f"{ctx_a} {ctx_b}" if ctx_b else ctx_a
        rows.append({"ind": 24 + 7 * i, "activity_label": activity, "ctx_a": ctx_a, "ctx_b": ctx_b, "ctx": ctx,
                     "endings": endings, "source_id": source, "split": split,
                     "split_type": t.rnd.choice(["indomain", "zeroshot"]), "label": str(t.rnd.randrange(4))})
    return rows


PIQA_FEATURES = Features({"goal": Value("string"), "sol1": Value("string"), "sol2": Value("string"),
                          "label": ClassLabel(names=["0", "1"])})


def piqa_rows(n, seed):
    t = Text(seed)
    rows = []
    for i in range(n):
        goal = f"How do I {t.phrase(3, 8)}?" if i % 2 == 0 else f"To {t.phrase(3, 8)}"
        if i == 3:
            goal = "How do I make café au lait 1/2 and/or “strong”?"
        rows.append({"goal": goal, "sol1": t.sentence(4, 12), "sol2": t.sentence(4, 12), "label": t.rnd.randrange(2)})
    return rows


ARC_FEATURES = Features({"id": Value("string"), "question": Value("string"),
                         "choices": {"text": Sequence(Value("string")), "label": Sequence(Value("string"))},
                         "answerKey": Value("string")})


def arc_rows(n, seed, prefix):
    t = Text(seed)
    rows = []
    for i in range(n):
        n_choices = {1: 3, 4: 5}.get(i % 6, 4)
        labels = ["1", "2", "3", "4"] if i % 5 == 3 else ["A", "B", "C", "D", "E"][:n_choices]
        question = t.sentence(5, 12)[:-1] + "?"
        if i == 2:
            question = "Which café sells water 1/2 price and/or “fresh” bread?"
        rows.append({"id": f"{prefix}_{7175875 + 13 * i}", "question": question,
                     "choices": {"text": [t.phrase(1, 4) for _ in labels], "label": labels},
                     "answerKey": t.rnd.choice(labels)})
    return rows


WINOGRANDE_FEATURES = Features({"sentence": Value("string"), "option1": Value("string"),
                                "option2": Value("string"), "answer": Value("string")})
NAMES = ["Sarah", "Maria", "José", "Zoë", "Kevin", "Adam", "the café", "the river"]


def winogrande_rows(n, seed):
    t = Text(seed)
    rows = []
    for i in range(n):
        a, b = t.rnd.sample(NAMES, 2)
        head, tail = t.phrase(2, 5), t.phrase(3, 7)
        if i % 4 == 3:  # the blank at the end of the sentence: the continuation is " ."
            sentence = f"{a} {head} {b} because {tail} more than _."
        else:
            sentence = f"{a} {head} than {b} so _ {tail}."
        rows.append({"sentence": sentence, "option1": a, "option2": b, "answer": t.rnd.choice(["1", "2"])})
    return rows


MMLU_FEATURES = Features({"question": Value("string"), "subject": Value("string"),
                          "choices": Sequence(Value("string")), "answer": ClassLabel(names=["A", "B", "C", "D"])})


def mmlu_rows(per_subject, seed):
    t = Text(seed)
    rows = []
    for s, subject in enumerate(MMLU_SUBJECTS):  # `all` holds the subjects in alphabetical order
        for i in range(per_subject(s)):
            question = t.sentence(5, 12)[:-1] + "?"
            if i == 1:
                question = f"  {question}\n"  # doc_to_text strips the question (not the choices)
            if i == 2:
                question = "Which of these is 1/2 of “one”, and/or a café?"
            rows.append({"question": question, "subject": subject,
                         "choices": [t.phrase(1, 4) for _ in range(4)], "answer": t.rnd.randrange(4)})
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out_dir")
    ap.add_argument("--n", type=int, default=8, help="eval docs per task (default 8)")
    ap.add_argument("--train", type=int, default=10, help="few-shot (train) docs per task (default 10)")
    args = ap.parse_args()
    n, n_train, out = args.n, args.train, args.out_dir
    assert sorted(MMLU_SUBJECTS) == MMLU_SUBJECTS

    write(out, "lambada_openai", "test", lambada_rows(n, 11), Features({"text": Value("string")}))
    write(out, "hellaswag", "validation", hellaswag_rows(n, 21, "val"), HELLASWAG_FEATURES)
    write(out, "hellaswag", "train", hellaswag_rows(n_train, 22, "train"), HELLASWAG_FEATURES)
    write(out, "piqa", "validation", piqa_rows(n, 31), PIQA_FEATURES)
    write(out, "piqa", "train", piqa_rows(n_train, 32), PIQA_FEATURES)
    write(out, "arc_easy", "test", arc_rows(n, 41, "Mercury_SC"), ARC_FEATURES)
    write(out, "arc_easy", "train", arc_rows(n_train, 42, "MCAS_2000_4"), ARC_FEATURES)
    write(out, "arc_challenge", "test", arc_rows(n, 51, "Mercury"), ARC_FEATURES)
    write(out, "arc_challenge", "train", arc_rows(n_train, 52, "NYSEDREGENTS_2015_8"), ARC_FEATURES)
    write(out, "winogrande", "validation", winogrande_rows(n, 61), WINOGRANDE_FEATURES)
    write(out, "winogrande", "train", winogrande_rows(n_train, 62), WINOGRANDE_FEATURES)
    # Unequal subject sizes (n // 4 and one more, at least 2 each: a one-doc subject has stderr "N/A", which
    # would make the group stderr "N/A") so that the size-weighted group mean differs from the plain mean.
    test_rows = max(2, n // 4)
    write(out, "mmlu", "dev", mmlu_rows(lambda s: FEWSHOT_DEV_ROWS, 71), MMLU_FEATURES)
    write(out, "mmlu", "test", mmlu_rows(lambda s: test_rows + s % 2, 72), MMLU_FEATURES)


if __name__ == "__main__":
    main()
