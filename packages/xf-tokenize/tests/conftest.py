"""Fixtures: the 200+ string corpus, tokenizer directories (from ``xf_core.testing``), and xf/transformers
tokenizer pairs loaded from the same directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from xf_core.testing import TOKENIZER_CORPUS, tokenizer_dirs


@pytest.fixture(scope="session")
def corpus() -> list[str]:
    assert len(TOKENIZER_CORPUS) >= 200
    return list(TOKENIZER_CORPUS)


@pytest.fixture(scope="session")
def pairs() -> list[tuple[str, str]]:
    texts = list(TOKENIZER_CORPUS)
    return list(zip(texts, texts[7:] + texts[:7]))


@pytest.fixture(scope="session")
def dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return tokenizer_dirs(tmp_path_factory.mktemp("tokenizers"))


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
