#!/usr/bin/env python3
"""Trains the normalizer / Metaspace / byte-fallback fixture tokenizers and
records their goldens with Hugging Face `tokenizers` (the Python binding of
the Rust core). Not part of the build or CI: the outputs are committed under
tests/data/tokenizers/. To regenerate (needs `pip install tokenizers`):

  python3 tests/tokenizer/make_reference_golden.py --out /tmp/golden
  cp -r /tmp/golden/* tests/data/tokenizers/

Three files mimic published layouts (trained on golden_corpus.txt, small
vocabularies so that byte fallback is exercised):
  bpe600-neox-nfc       GPT-NeoX (state-spaces/mamba2-*): NFC normalizer,
                        ByteLevel pre-tokenizer/decoder, <|endoftext|>,
                        <|padding|> and whitespace-run added tokens.
  bpe700-spm-legacy     SentencePiece BPE converted like Llama-2 / Mistral
                        (Mamba-Codestral): Prepend + Replace normalizer, no
                        pre-tokenizer, Replace/ByteFallback/Fuse/Strip
                        decoder, byte_fallback, <s> template.
  bpe700-spm-metaspace  the newer layout: Metaspace pre-tokenizer
                        (prepend_scheme first, split) and Metaspace decoder.
and one crafted file mixes the other components (NFKC, Strip, regex
Replace, Lowercase, Split before Metaspace, normalized added tokens):
  bpe700-spm-mixed
Each gets tokenizer.json, golden_shared.json (the handwritten cases) and
golden_reference.json (plus random texts and decodes of random ids).
components/golden_components.json records single normalizers,
pre-tokenizers and decoders applied to edge-case inputs ("error" where
tokenizers panics, "load_error" where it refuses the component).
The committed files were made with tokenizers 0.23.2 (Python 3.12). The
SentencePiece vocabulary's training is not bit-for-bit reproducible across
runs (ties between merges), so regenerate the three bpe700-spm-* folders
together, never one alone.
"""
import argparse
import json
import os
import random
import sys
import traceback

import tokenizers
from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

HERE = os.path.dirname(os.path.abspath(__file__))
META = "\u2581"  # ▁

# The handwritten cases: every file gets all of them.
SHARED_TEXTS = [
    "",
    " ",
    "   ",
    "\n",
    "Hello world",
    " Hello world",
    "Hello world ",
    "Hello  world   again",
    "   leading spaces",
    "trailing spaces   ",
    "The state space model passes states between workers.",
    "e\u0301",
    "\u00e9",
    "caf\u00e9 vs cafe\u0301",
    "A\u030angstro\u0308m and \u00c5str\u00f6m and \u212bngstr\u00f6m",
    "x\u0301\u0327 q\u0307\u0323",
    "\u1100\u1161\u11a8 \u1112\u1161\u11ab\u1100\u1173\u11af vs \uac01 \ud55c\uae00",
    "\uff21\uff22\uff23 \uff44\uff45\uff46 \uff11\uff12\uff13\uff01 \uff76\uff80\uff76\uff85",
    "\ufb01 \u2460\u2461 x\u00b2 \u00bd \u2126 K",
    "\U0001f469\u200d\U0001f4bb and \U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466",
    "\U0001f1eb\U0001f1f7\U0001f1ef\U0001f1f5 \U0001f44d\U0001f3fd \u2764\ufe0f",
    "\u6570\u5b57 12345 and 3.14159",
    "\u72b6\u6001\u7a7a\u95f4\u6a21\u578b\u3002",
    "\u3053\u3093\u306b\u3061\u306f\u4e16\u754c",
    "\u0395\u03bb\u03bb\u03b7\u03bd\u03b9\u03ba\u03ac \u041f\u0440\u0438\u0432\u0435\u0442",
    "line1\nline2\n\nline4",
    "\ttab\tand\r\nCRLF\r\n",
    "<|endoftext|>",
    "Hello<|endoftext|>world <|padding|><|padding|>",
    "<s>Hello</s>",
    "<s> Hello </s> <unk>",
    "a<s>b</s>c",
    "\u2581 already metaspace \u2581\u2581x",
    "zero\u200bwidth\u00a0nbsp\u3000ideographic",
    "\u0000nul\u0001",
    "1,000,000.50 -17 +23 50%",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "def f(x):\n    return x ** 2\n",
    "\u0130stanbul \u0049\u0307 HELLO World MAMBA \uff2d\uff41\uff4d\uff42\uff41",
    "hello world HELLO   WORLD",
    "\U0001d518\U0001d52b\U0001d526 \U00010348",
]

POOL = [
    "a", "e", "the", " ", " ", " ", "state", "space", "model", "Hello", "WORLD", "x", "ing",
    "0", "7", "12", "345", "3.14", "\u0663", "\u00b2", "\u216b", "\u00bd",
    "'s", "'t", "'re", "\u2019s", "'",
    "\t", "\n", "\r\n", "\n\n", "  ", "   ", "\u0085", "\u00a0", "\u1680", "\u2003", "\u200b",
    "\u2028", "\u3000", "\ufeff", "\u000b", "\u000c",
    "\u6570\u5b57", "\u72b6\u6001\u7a7a\u95f4", "\u7684", "\u3002", "\uff0c", "\u3053\u3093\u306b\u3061\u306f",
    "\ud55c\uad6d\uc5b4", "\u1100\u1161\u11a8", "\u041f\u0440\u0438\u0432\u0435\u0442", "\u05e2\u05d1\u05e8\u05d9\u05ea",
    "\u0627\u0644\u0639\u0631\u0628\u064a\u0629", "\u0939\u093f\u0928\u094d\u0926\u0940",
    "\u00e9", "e\u0301", "\u00f1", "n\u0303", "\u00c5", "A\u030a", "\u212b", "\u00df", "\u017f", "\u212a",
    "\u0130", "\u0131", "\u01c5", "\u0300", "\u0327", "\u200d", "\u0000", "\u007f", "\ufb01", "\u2460",
    "\uff21", "\uff4d", "\uff11", "\uff76", "\u3300",
    "\U0001f642", "\U0001f680", "\U0001f469\u200d\U0001f4bb", "\U0001f1eb\U0001f1f7", "\U0001f44d\U0001f3fd",
    "\U0001d518", "\U00010348",
    "(", ")", "{", "}", ";", ".", ",", "!", "?", "-", "_", "==", "=>", "#", "$", "%", "\\", "\"", "`",
    "<|endoftext|>", "<|padding|>", "<s>", "</s>", "<unk>", "<s", "s>", "<0x41>", "\u2581", "\u2581\u2581",
    "hello world", "HELLO WORLD", "Mamba", "\uff2d\uff41\uff4d\uff42\uff41",
]


def random_text(rng, max_pieces):
    return "".join(rng.choice(POOL) for _ in range(rng.randrange(max_pieces)))


def encode_case(tok, text):
    ids = tok.encode(text, add_special_tokens=True).ids
    return {
        "text": text,
        "ids": ids,
        "ids_no_special": tok.encode(text, add_special_tokens=False).ids,
        "decoded": tok.decode(ids, skip_special_tokens=True),
        "decoded_with_special": tok.decode(ids, skip_special_tokens=False),
    }


def decode_case(tok, ids):
    return {
        "ids": ids,
        "skip_special": tok.decode(ids, skip_special_tokens=True),
        "keep_special": tok.decode(ids, skip_special_tokens=False),
    }


def crafted_decode_ids(tok):
    """Id lists that stress the decoders: byte runs (valid, cut, invalid),
    metaspace-only tokens, special tokens first."""
    def tid(token):
        return tok.token_to_id(token)

    def byte_ids(data):
        out = [tid("<0x%02X>" % b) for b in data]
        return out if all(i is not None for i in out) else None

    lists = []
    words = [w for w in [META + "Hello", META + "the", META, META + META, "s", "e", META + "state"] if tid(w) is not None]
    specials = [i for i in (tid("<s>"), tid("</s>"), tid("<unk>"), tid("<|endoftext|>"), tid("<|padding|>")) if i is not None]
    for data in [b"\xe6\x95\xb0", b"\xe6\x95", b"\xf0\x9f\x99\x82", b"\xe6\x95\xb0\xff", b"\xff", b"\xc3\xa9\xc3",
                 b"\x80\x80", b"\xe2\x96\x81", b"A", b" ", b"\xe2\x96\x81\xe2\x96\x81x"]:
        ids = byte_ids(data)
        if ids is None:
            continue
        lists.append(ids)
        for w in words[:3]:
            lists.append([tid(w)] + ids + [tid(w)])
            lists.append(ids + [tid(w)] + ids)
        for s in specials[:2]:
            lists.append([s] + ids)
    for w in words:
        lists.append([tid(w)])
        lists.append([tid(w), tid(w)])
        for s in specials:
            lists.append([s, tid(w)])
            lists.append([tid(w), s, tid(w)])
    lists.append([])
    lists.append(specials)
    return lists


def golden_for(tok, seed, random_count=300, random_decodes=160):
    rng = random.Random(seed)
    texts = list(SHARED_TEXTS)
    for i in range(random_count):
        texts.append(random_text(rng, 8 if i < random_count // 2 else 40))
    encode = [encode_case(tok, t) for t in texts]
    vocab_size = tok.get_vocab_size(with_added_tokens=True)
    decode = [decode_case(tok, ids) for ids in crafted_decode_ids(tok)]
    for _ in range(random_decodes):
        n = rng.randrange(14)
        ids = []
        while len(ids) < n:
            if rng.random() < 0.3:  # runs of byte-fallback ids (3..258 in the SentencePiece layouts)
                start = rng.randrange(3, 259)
                ids.extend(range(start, min(start + rng.randrange(1, 5), 259)))
            else:
                ids.append(rng.randrange(vocab_size))
        decode.append(decode_case(tok, ids[:n]))
    shared = [{k: c[k] for k in ("text", "ids", "ids_no_special", "decoded")} for c in encode[: len(SHARED_TEXTS)]]
    return shared, {"encode": encode, "decode": decode}


def corpus_lines(path):
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f]


def added(content, id_, special, normalized):
    return {"id": id_, "content": content, "single_word": False, "lstrip": False, "rstrip": False,
            "normalized": normalized, "special": special}


def template(single_specials_before, single_specials_after, ids):
    single = [{"SpecialToken": {"id": t, "type_id": 0}} for t in single_specials_before]
    single.append({"Sequence": {"id": "A", "type_id": 0}})
    single += [{"SpecialToken": {"id": t, "type_id": 0}} for t in single_specials_after]
    pair = single + [{"Sequence": {"id": "B", "type_id": 1}}]
    return {"type": "TemplateProcessing", "single": single, "pair": pair,
            "special_tokens": {t: {"id": t, "ids": [ids[t]], "tokens": [t]} for t in ids}}


def make_neox(lines):
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=True)
    trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=["<|endoftext|>", "<|padding|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(lines, trainer=trainer)
    doc = json.loads(tok.to_str())
    next_id = max(doc["model"]["vocab"].values()) + 1
    # GPT-NeoX ends its vocabulary with runs of spaces as normalized, non-special added tokens.
    for n in (8, 4, 2):
        doc["added_tokens"].append(added(" " * n, next_id, special=False, normalized=True))
        next_id += 1
    return doc


def train_spm_vocab(lines):
    """A SentencePiece-like BPE vocabulary: <unk> <s> </s>, the 256 byte
    tokens <0x00>..<0xFF>, then the trained pieces (words start with ▁)."""
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    try:
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement=META, prepend_scheme="always", split=True)
    except TypeError:  # tokenizers < 0.19
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement=META, add_prefix_space=True)
    trainer = trainers.BpeTrainer(vocab_size=700 - 256, special_tokens=["<unk>", "<s>", "</s>"], limit_alphabet=64,
                                  show_progress=False)
    tok.train_from_iterator(lines, trainer=trainer)
    doc = json.loads(tok.to_str())
    trained = sorted(doc["model"]["vocab"].items(), key=lambda kv: kv[1])
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for b in range(256):
        vocab["<0x%02X>" % b] = 3 + b
    for token, _ in trained:
        if token not in vocab:
            vocab[token] = len(vocab)
    return vocab, doc["model"]["merges"]


def spm_doc(vocab, merges, normalizer, pre_tokenizer, decoder, post_processor, extra_added=(), fuse_unk=True):
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [added("<unk>", 0, True, False), added("<s>", 1, True, False), added("</s>", 2, True, False)]
        + list(extra_added),
        "normalizer": normalizer,
        "pre_tokenizer": pre_tokenizer,
        "post_processor": post_processor,
        "decoder": decoder,
        "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>", "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": fuse_unk, "byte_fallback": True, "ignore_merges": False,
                  "vocab": vocab, "merges": merges},
    }


def make_spm_files(lines):
    vocab, merges = train_spm_vocab(lines)
    replace_meta = {"type": "Replace", "pattern": {"String": " "}, "content": META}
    legacy = spm_doc(
        vocab, merges,
        normalizer={"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": META}, replace_meta]},
        pre_tokenizer=None,
        decoder={"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": META}, "content": " "}, {"type": "ByteFallback"},
            {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
        post_processor=template(["<s>"], [], {"<s>": 1}))
    metaspace = {"type": "Metaspace", "replacement": META, "prepend_scheme": "first", "split": True}
    newer = spm_doc(
        vocab, merges, normalizer=None, pre_tokenizer=metaspace,
        decoder={"type": "Sequence", "decoders": [dict(metaspace), {"type": "ByteFallback"}, {"type": "Fuse"}]},
        post_processor=template(["<s>"], [], {"<s>": 1}))
    next_id = len(vocab)
    mixed = spm_doc(
        vocab, merges,
        normalizer={"type": "Sequence", "normalizers": [
            {"type": "Strip", "strip_left": True, "strip_right": True}, {"type": "NFKC"},
            {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "}, {"type": "Lowercase"}]},
        pre_tokenizer={"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": "\\p{N}"}, "behavior": "Isolated", "invert": False},
            {"type": "Metaspace", "replacement": META, "prepend_scheme": "first", "split": True}]},
        decoder={"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"Regex": META + "{2,}"}, "content": META}, {"type": "ByteFallback"},
            {"type": "Metaspace", "replacement": META, "prepend_scheme": "always", "split": True}, {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
        post_processor=template(["<s>"], ["</s>"], {"<s>": 1, "</s>": 2}),
        extra_added=[added("hello world", next_id, False, True), added("\uff2d\uff41\uff4d\uff42\uff41", next_id + 1, False, True),
                     added("<sep>", next_id + 2, True, False)],
        fuse_unk=False)
    return legacy, newer, mixed


# ---- single components -------------------------------------------------

NORMALIZER_INPUTS = [
    "", " ", "  a  ", "\t\n x \u3000", "Hello World", "e\u0301", "\u00e9", "A\u030a\u212b\u00c5", "x\u0301\u0327",
    "q\u0307\u0323", "\u1100\u1161\u11a8", "\uac01", "\uff21\uff22\uff23\uff11", "\uff76\uff9e", "\ufb01\u2460x\u00b2\u00bd",
    "\u2126\u212a\u017f", "\u0130stanbul", "\u0049\u0307", "\u03a3\u039f\u03a3", "\u1e9e\u00df", "\u01c5\u01c4",
    "\U0001f469\u200d\U0001f4bb", "\u0000\u0001", "a b  c   d", "\u2581a\u2581", "aaa", "abcabc", "\U0001d518\U0001d52b",
    "\u0958\u09dc", "\u2000\u2001 \u00a0", "\u0085x\u0085", "\u180ex\u180e", "\u200bx\u200b", "\u0344\u0340",
    "\u0f73\u0f75", "\u2adc", "\U0001d15e", "\u3300\u32ff", "\u00c0\u00e0\u1ea0", "\uac00\u11a8", "\u1100\u1161\u11a8\u11a8",
]

NORMALIZERS = [
    {"type": "NFC"}, {"type": "NFD"}, {"type": "NFKC"}, {"type": "NFKD"}, {"type": "Lowercase"},
    {"type": "Strip", "strip_left": True, "strip_right": True},
    {"type": "Strip", "strip_left": True, "strip_right": False},
    {"type": "Strip", "strip_left": False, "strip_right": True},
    {"type": "Prepend", "prepend": META}, {"type": "Prepend", "prepend": "ab"}, {"type": "Prepend", "prepend": ""},
    {"type": "Replace", "pattern": {"String": " "}, "content": META},
    {"type": "Replace", "pattern": {"String": "a"}, "content": ""},
    {"type": "Replace", "pattern": {"String": "aa"}, "content": "b"},
    {"type": "Replace", "pattern": {"String": ""}, "content": "-"},
    {"type": "Replace", "pattern": {"String": "."}, "content": "!"},
    {"type": "Replace", "pattern": {"Regex": "\\s+"}, "content": " "},
    {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "},
    {"type": "Replace", "pattern": {"Regex": "a*"}, "content": "-"},
    {"type": "Replace", "pattern": {"Regex": "(?i)hello"}, "content": "bye"},
    {"type": "Replace", "pattern": {"Regex": "\\p{M}"}, "content": ""},
    {"type": "Sequence", "normalizers": []},
    {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": META},
                                         {"type": "Replace", "pattern": {"String": " "}, "content": META}]},
    {"type": "Sequence", "normalizers": [{"type": "NFD"}, {"type": "Lowercase"},
                                         {"type": "Strip", "strip_left": True, "strip_right": True}]},
    {"type": "Sequence", "normalizers": [{"type": "NFKC"}, {"type": "Sequence", "normalizers": [{"type": "Lowercase"}]}]},
]

PRE_TOKENIZER_INPUTS = [
    "", " ", "  ", "Hello world", " Hello world", "Hello  world ", "\u2581Hello", "a\u2581\u2581b", "\u2581",
    "12 apples and 3 pears", "tab\tand\nnewline", "\u00e9t\u00e9 \u6570\u5b57", " \u2581 x",
]

PRE_TOKENIZERS = [
    {"type": "Metaspace", "replacement": META, "prepend_scheme": "always", "split": True},
    {"type": "Metaspace", "replacement": META, "prepend_scheme": "always", "split": False},
    {"type": "Metaspace", "replacement": META, "prepend_scheme": "first", "split": True},
    {"type": "Metaspace", "replacement": META, "prepend_scheme": "first", "split": False},
    {"type": "Metaspace", "replacement": META, "prepend_scheme": "never", "split": True},
    {"type": "Metaspace", "replacement": META, "prepend_scheme": "never", "split": False},
    {"type": "Metaspace", "replacement": "_", "prepend_scheme": "always", "split": True},
    {"type": "Metaspace", "replacement": META, "add_prefix_space": True},
    {"type": "Metaspace", "replacement": META, "add_prefix_space": True, "str_rep": META},
    {"type": "Metaspace", "replacement": META, "add_prefix_space": False},
    {"type": "Metaspace", "replacement": META, "add_prefix_space": False, "prepend_scheme": "never"},
    {"type": "Metaspace", "replacement": META},
    {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": "\\p{N}"}, "behavior": "Isolated", "invert": False},
        {"type": "Metaspace", "replacement": META, "prepend_scheme": "first", "split": True}]},
    {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": "\\s"}, "behavior": "Removed", "invert": False},
        {"type": "Metaspace", "replacement": META, "prepend_scheme": "first", "split": False}]},
    {"type": "Sequence", "pretokenizers": [
        {"type": "Metaspace", "replacement": META, "prepend_scheme": "always", "split": False},
        {"type": "Split", "pattern": {"Regex": "\\p{N}"}, "behavior": "Isolated", "invert": False}]},
]

DECODER_INPUTS = [
    [], [""], [META], [META + META], [META + "Hello", META + "world"], ["Hello", META + "world", META],
    ["<0xE6>", "<0x95>", "<0xB0>"], ["<0xE6>", "<0x95>"], ["<0xE6>", "<0x95>", "<0xB0>", "<0xFF>"],
    ["a", "<0xFF>", "b"], ["<0x41>"], ["<0x4G>"], ["<0x+F>"], ["<0xe9>"], ["<0x41>", "<0x42", "<0x43>"],
    ["<0xC3>", "<0xA9>", META + "x"], ["<0xE2>", "<0x96>", "<0x81>", "x", META], ["<s>", META + "Hi", "</s>"],
    ["   ", " a ", " b "], [" ", " "], ["  x  "], [META + "a" + META, META + META + "b" + META + META],
    ["<0x20>", "a"], [META + "\U0001f642", "<0xF0>", "<0x9F>", "<0x99>", "<0x82>"], ["x", "<0x80>", "<0x80>", "y"],
]

DECODERS = [
    {"type": "ByteFallback"}, {"type": "Fuse"},
    {"type": "Strip", "content": " ", "start": 1, "stop": 0},
    {"type": "Strip", "content": " ", "start": 2, "stop": 0},
    {"type": "Strip", "content": " ", "start": 0, "stop": 1},
    {"type": "Strip", "content": META, "start": 1, "stop": 1},
    {"type": "Replace", "pattern": {"String": META}, "content": " "},
    {"type": "Replace", "pattern": {"Regex": META + "+"}, "content": "_"},
    {"type": "Replace", "pattern": {"Regex": "x*"}, "content": "-"},
    {"type": "Metaspace", "replacement": META, "prepend_scheme": "always", "split": True},
    {"type": "Metaspace", "replacement": META, "prepend_scheme": "first", "split": True},
    {"type": "Metaspace", "replacement": META, "prepend_scheme": "never", "split": True},
    {"type": "Metaspace", "replacement": META, "add_prefix_space": True},
    {"type": "Sequence", "decoders": [
        {"type": "Replace", "pattern": {"String": META}, "content": " "}, {"type": "ByteFallback"}, {"type": "Fuse"},
        {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
    {"type": "Sequence", "decoders": [
        {"type": "Metaspace", "replacement": META, "prepend_scheme": "first", "split": True}, {"type": "ByteFallback"},
        {"type": "Fuse"}]},
    {"type": "Sequence", "decoders": [
        {"type": "ByteFallback"}, {"type": "Metaspace", "replacement": META, "prepend_scheme": "always", "split": True},
        {"type": "Fuse"}]},
    {"type": "Sequence", "decoders": [
        {"type": "Fuse"}, {"type": "Metaspace", "replacement": META, "prepend_scheme": "always", "split": True}]},
    {"type": "Sequence", "decoders": [
        {"type": "Fuse"}, {"type": "Metaspace", "replacement": META, "prepend_scheme": "never", "split": True}]},
    {"type": "Sequence", "decoders": [{"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 2, "stop": 0}]},
    {"type": "Sequence", "decoders": [{"type": "Strip", "content": META, "start": 1, "stop": 0}, {"type": "Fuse"}]},
    {"type": "Sequence", "decoders": [
        {"type": "Replace", "pattern": {"Regex": META + "{2,}"}, "content": META}, {"type": "ByteFallback"},
        {"type": "Metaspace", "replacement": META, "prepend_scheme": "always", "split": True}, {"type": "Fuse"},
        {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
    {"type": "Sequence", "decoders": [{"type": "ByteFallback"}, {"type": "ByteFallback"}, {"type": "Fuse"}, {"type": "Fuse"}]},
]


def component_tokenizer(kind, component):
    doc = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": [], "normalizer": None,
           "pre_tokenizer": None, "post_processor": None, "decoder": None,
           "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                     "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "vocab": {}, "merges": []}}
    doc[kind] = component
    return Tokenizer.from_str(json.dumps(doc))


def component_cases():
    cases = []
    for kind, components, inputs in (("normalizer", NORMALIZERS, NORMALIZER_INPUTS),
                                     ("pre_tokenizer", PRE_TOKENIZERS, PRE_TOKENIZER_INPUTS),
                                     ("decoder", DECODERS, DECODER_INPUTS)):
        for component in components:
            entry = {"kind": kind, "component": component}
            try:
                tok = component_tokenizer(kind, component)
            except BaseException as e:  # noqa: B036 (pyo3 panics are BaseException)
                entry["load_error"] = str(e)
                cases.append(entry)
                continue
            results = []
            for value in inputs:
                result = {"input": value}
                try:
                    if kind == "normalizer":
                        result["output"] = tok.normalizer.normalize_str(value)
                    elif kind == "pre_tokenizer":
                        result["output"] = [piece for piece, _ in tok.pre_tokenizer.pre_tokenize_str(value)]
                    else:
                        result["output"] = tok.decoder.decode(value)
                except BaseException as e:  # noqa: B036
                    result["error"] = str(e)
                results.append(result)
            entry["cases"] = results
            cases.append(entry)
    return cases


def write_json(path, value, indent=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(value, f, ensure_ascii=False, indent=indent)
        f.write("\n")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--corpus", default=os.path.join(HERE, "golden_corpus.txt"))
    args = parser.parse_args()
    lines = corpus_lines(args.corpus)
    write_json(os.path.join(args.out, "versions.json"),
               {"tokenizers": tokenizers.__version__, "python": sys.version.split()[0]})
    print("tokenizers", tokenizers.__version__, "python", sys.version.split()[0])
    failed = False

    docs = {}
    for name, make in (("bpe600-neox-nfc", lambda: {"bpe600-neox-nfc": make_neox(lines)}),
                       ("spm", lambda: dict(zip(("bpe700-spm-legacy", "bpe700-spm-metaspace", "bpe700-spm-mixed"),
                                                make_spm_files(lines))))):
        try:
            docs.update(make())
        except BaseException:  # noqa: B036
            failed = True
            print("training", name, "failed:\n", traceback.format_exc())

    for seed, (name, doc) in enumerate(sorted(docs.items()), start=11):
        try:
            tok = Tokenizer.from_str(json.dumps(doc))
            # Write the file as tokenizers itself serializes it.
            serialized = json.loads(tok.to_str())
            write_json(os.path.join(args.out, name, "tokenizer.json"), serialized, indent=1)
            shared, reference = golden_for(tok, seed)
            write_json(os.path.join(args.out, name, "golden_shared.json"), shared, indent=1)
            write_json(os.path.join(args.out, name, "golden_reference.json"), reference)
            print(name, "vocab", tok.get_vocab_size(with_added_tokens=True), "shared", len(shared), "encode",
                  len(reference["encode"]), "decode", len(reference["decode"]))
        except BaseException:  # noqa: B036
            failed = True
            print(name, "failed:\n", traceback.format_exc())

    try:
        cases = component_cases()
        write_json(os.path.join(args.out, "components", "golden_components.json"), cases, indent=1)
        errors = sum(1 for c in cases if "load_error" in c)
        print("components", len(cases), "load errors", errors)
    except BaseException:  # noqa: B036
        failed = True
        print("components failed:\n", traceback.format_exc())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
