#!/usr/bin/env python3
"""Golden cases for the C++ tokenizer, made with HF `tokenizers` (the peer it must match byte for byte).

Usage: make_tokenizer_cases.py OUT_DIR [--count N] [--seed S] [--extra NAME=tokenizer.json ...]

Trains two small byte-level BPE tokenizers on generated text and writes, under OUT_DIR:
  neox-pairs/tokenizer.json    GPT-NeoX-20B structure (NFC, ByteLevel, BPE, <|endoftext|> 0, <|padding|> 1,
                               23 whitespace-run added tokens); merges saved as pairs (tokenizers >= 0.20)
  neox-strings/tokenizer.json  the same with merges as "a b" strings and without the keys newer versions
                               add (use_regex, byte_fallback, ignore_merges), like the original 20B file
  gpt2/tokenizer.json          no normaliser, add_prefix_space true, added tokens with lstrip / rstrip /
                               single_word, a normalized one with a non-ASCII character, one in the vocab
  NAME.cases.jsonl             {"text", "ids", "decoded", "decoded_skip"} for N random strings
  NAME.decode.jsonl            {"ids", "decoded", "decoded_skip"} for random id sequences (split characters,
                               out-of-range ids)
  manifest.json                [{"name", "tokenizer", "vocab_size", "id_to_token", "added"}]
Random strings (fixed seed) mix whitespace runs, tabs, CRLF, NBSP and other Unicode spaces, CJK, Hangul jamo
(NFC composes them), emoji with modifiers and ZWJ, digits, contractions (also upper case), punctuation,
combining accents, special and added tokens, partial special tokens and long runs of spaces.
"""
import argparse
import json
import os
import random

from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

NEOX_SPECIALS = ["<|endoftext|>", "<|padding|>"]
GPT2_ADDED = ["<mask>", "[SEP]", "[WORD]", "café", "hello world", "the"]

SYLLABLES = ["th", "e", "an", "re", "on", "in", "er", "st", "ing", "ou", "ha", "ly", "al", "ch", "qu", "x", "z", "ion"]
CONTRACTIONS = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "n't", "'S", "'T", "'RE", "'VE", "'M", "'LL", "'D", "'"]
SPACES = ["\t", "\t\t", "\n", "\n\n", "\r\n", " \n", "\n ", "\u00a0", "\u3000", "\u2028", "\u2029", "\x85", "\x0b",
          "\x0c", "\u200b", "\ufeff", "\u180e", "\u2009", "\u202f", "\x1c", " \t ", "\r"]
PUNCT = list("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~") + ["…", "—", "«", "»", "¿", "¡", "“", "”", "·", "§", "€", "©"]
ACCENTED = ["é", "ñ", "ü", "å", "ç", "ø", "ß", "Å", "É", "ő", "ą", "ł", "ğ", "ș", "ά", "й", "ё", "ῷ"]
# Decomposed forms and stacked marks: NFC composes and reorders them.
COMBINING = ["e\u0301", "n\u0303", "u\u0308", "a\u030a", "o\u0323\u0302", "o\u0302\u0323", "и\u0306", "\u03b1\u0301",
             "A\u030a", "c\u0327", "\u0301", " \u0301", "q\u0307\u0323", "\u1e0b\u0323", "e\u0301\u0301"]
SCRIPTS = ["مرحبا", "שָׁלוֹם", "สวัสดี", "क्षत्रिय", "Привет", "Γειά", "ქართული", "ᎣᏏᏲ", "𝔘𝔫𝔦", "𐍈𐌰", "한국어"]
EMOJI = ["🙂", "😀", "🚀", "👍🏽", "👩\u200d💻", "❤️", "🇫🇷", "🧑🏿\u200d🤝\u200d🧑🏻", "🤖", "✨", "🫠"]
NUMERALS = ["١٢٣", "½", "²", "Ⅳ", "٣.١٤", "१२३", "①", "𝟙𝟚"]
CODE = ["def f(x):\n    return x\n", "if (a) {\n\tb();\n}", "    ", "        ", "x = [1, 2, 3]  # list", "a\\nb"]


def random_word(rng):
    w = "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(1, 4)))
    r = rng.random()
    return w.upper() if r < 0.1 else w.capitalize() if r < 0.3 else w


def random_cjk(rng):
    kind = rng.random()
    if kind < 0.4:
        return "".join(chr(rng.randint(0x4E00, 0x9FA5)) for _ in range(rng.randint(1, 6)))
    if kind < 0.6:
        return "".join(chr(rng.randint(0x3041, 0x3096)) for _ in range(rng.randint(1, 6)))
    if kind < 0.8:
        return "".join(chr(rng.randint(0xAC00, 0xD7A3)) for _ in range(rng.randint(1, 4)))
    # Conjoining jamo L V (T): NFC turns them into precomposed syllables.
    s = chr(rng.randint(0x1100, 0x1112)) + chr(rng.randint(0x1161, 0x1175))
    return s + (chr(rng.randint(0x11A8, 0x11C2)) if rng.random() < 0.5 else "")


def fragment(rng, specials):
    r = rng.random()
    if r < 0.30:
        return random_word(rng)
    if r < 0.40:
        return " " * rng.choice([1, 1, 1, 2, 2, 3, 4, 5, 7, 8, 12, 16, 23, 24, 25, 30, 31, 48, 49, 100])
    if r < 0.47:
        return rng.choice(SPACES)
    if r < 0.52:
        return rng.choice(CONTRACTIONS)
    if r < 0.58:
        return "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 12))) + rng.choice(["", ".", ",", "5"])
    if r < 0.64:
        return "".join(rng.choice(PUNCT) for _ in range(rng.randint(1, 4)))
    if r < 0.69:
        return rng.choice(ACCENTED + COMBINING)
    if r < 0.74:
        return random_cjk(rng)
    if r < 0.78:
        return rng.choice(EMOJI)
    if r < 0.81:
        return rng.choice(SCRIPTS + NUMERALS)
    if r < 0.85:
        s = rng.choice(specials)
        return s[: rng.randint(1, len(s))] if rng.random() < 0.25 else s  # sometimes only a prefix of it
    if r < 0.87:
        return rng.choice(CODE)
    if r < 0.88:
        return rng.choice(["\x00", "\x01", "\x7f", "\ufffd", "\ue000", "\uffff", "\U0010fffd"])
    return " " + random_word(rng)


def random_text(rng, specials):
    if rng.random() < 0.02:
        return rng.choice(["", " ", "  ", "\n", "a", "<|endoftext|>", " " * 200])
    parts = []
    for _ in range(rng.randint(1, 25)):
        parts.append(fragment(rng, specials))
        if rng.random() < 0.5:
            parts.append(" ")
    return "".join(parts)


def training_texts(rng, specials, n):
    english = ("The cat sat on the mat. Hello, world! Hey how are you doing? don't I'm we'll they've she'd "
               "line one\n  indented code 12345 678 3.14159 café naïve 日本語 🙂 ok").split(" ")
    texts = [random_text(rng, specials) for _ in range(n)]
    texts += [" ".join(rng.choice(english) for _ in range(20)) for _ in range(n // 2)]
    return texts


def train(texts, vocab_size, specials, add_prefix_space, nfc):
    tok = Tokenizer(models.BPE())
    if nfc:
        tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=add_prefix_space, trim_offsets=True, use_regex=True)
    tok.post_processor = processors.ByteLevel(trim_offsets=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer)
    return tok


def make_neox(rng):
    tok = train(training_texts(rng, NEOX_SPECIALS, 4000), 1500, NEOX_SPECIALS, add_prefix_space=False, nfc=True)
    # GPT-NeoX-20B: runs of 24 down to 2 spaces, non-special, normalized (ids after the BPE vocab).
    tok.add_tokens([AddedToken(" " * n, single_word=False, lstrip=False, rstrip=False, normalized=True, special=False)
                    for n in range(24, 1, -1)])
    return tok


def make_gpt2(rng):
    tok = train(training_texts(rng, ["<|endoftext|>"] + GPT2_ADDED, 3000), 1200, ["<|endoftext|>"],
                add_prefix_space=True, nfc=False)
    tok.add_special_tokens([AddedToken("<mask>", lstrip=True, normalized=False, special=True),
                            AddedToken("[SEP]", rstrip=True, normalized=False, special=True)])
    tok.add_tokens([AddedToken("[WORD]", single_word=True, normalized=False, special=False),
                    AddedToken("café", normalized=True, special=False),
                    AddedToken("hello world", normalized=True, special=False),
                    AddedToken("the", normalized=True, special=False)])
    return tok


def rewrite_as_strings(src, dst):
    """The file as older tokenizers versions wrote it (and as the real 20B file is)."""
    with open(src, encoding="utf-8") as f:
        j = json.load(f)
    j["model"]["merges"] = [a + " " + b for a, b in j["model"]["merges"]]
    for key in ["byte_fallback", "ignore_merges"]:
        j["model"].pop(key, None)
    for part in ["pre_tokenizer", "post_processor", "decoder"]:
        j[part].pop("use_regex", None)
    with open(dst, "w", encoding="utf-8") as f:
        json.dump(j, f, ensure_ascii=False, indent=2)


def write_cases(out_dir, name, tok, texts, rng):
    with open(os.path.join(out_dir, name + ".cases.jsonl"), "w") as f:
        for text in texts:
            ids = tok.encode(text).ids
            f.write(json.dumps({"text": text, "ids": ids, "decoded": tok.decode(ids, skip_special_tokens=False),
                                "decoded_skip": tok.decode(ids, skip_special_tokens=True)}) + "\n")
    n = tok.get_vocab_size(True)
    with open(os.path.join(out_dir, name + ".decode.jsonl"), "w") as f:
        for _ in range(2000):
            ids = [rng.randrange(n + 3) if rng.random() < 0.05 else rng.randrange(n) for _ in range(rng.randint(1, 12))]
            f.write(json.dumps({"ids": ids, "decoded": tok.decode(ids, skip_special_tokens=False),
                                "decoded_skip": tok.decode(ids, skip_special_tokens=True)}) + "\n")
    return {"name": name, "vocab_size": n, "id_to_token": [tok.id_to_token(i) for i in range(n)],
            "added": {t.content: i for i, t in tok.get_added_tokens_decoder().items()}}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out_dir")
    ap.add_argument("--count", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--extra", action="append", default=[], help="NAME=path/to/tokenizer.json to check as well")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    os.makedirs(args.out_dir, exist_ok=True)

    files = {}
    neox = make_neox(rng)
    for name in ["neox-pairs", "neox-strings", "gpt2"]:
        os.makedirs(os.path.join(args.out_dir, name), exist_ok=True)
        files[name] = os.path.join(args.out_dir, name, "tokenizer.json")
    neox.save(files["neox-pairs"])
    rewrite_as_strings(files["neox-pairs"], files["neox-strings"])
    make_gpt2(rng).save(files["gpt2"])
    for extra in args.extra:
        name, path = extra.split("=", 1)
        files[name] = path

    neox_texts = [random_text(rng, NEOX_SPECIALS) for _ in range(args.count)]
    gpt2_texts = [random_text(rng, ["<|endoftext|>"] + GPT2_ADDED) for _ in range(args.count)]
    manifest = []
    for name, path in files.items():
        tok = Tokenizer.from_file(path)  # what HF reads back, not the in-memory object
        entry = write_cases(args.out_dir, name, tok, gpt2_texts if name == "gpt2" else neox_texts, rng)
        entry["tokenizer"] = path
        manifest.append(entry)
    with open(os.path.join(args.out_dir, "manifest.json"), "w") as f:
        json.dump(manifest, f)


if __name__ == "__main__":
    main()
