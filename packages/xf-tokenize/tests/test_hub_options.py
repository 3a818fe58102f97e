"""Which files a tokenizer is read from: one ``HubOptions`` (or the Hub keywords) chooses revision, subfolder
and cache, and the loading code does not import the tokenizer class (no import cycle)."""

from __future__ import annotations

import json
import shutil

import pytest

from xf_core import HubOptions
from xf_core.testing import imported_modules
from xf_tokenize import AutoTokenizer, PreTrainedTokenizerFast

REVISIONS = {"main": ("a" * 40, 128), "v2": ("b" * 40, 256)}


@pytest.fixture
def two_revision_cache(tmp_path, dirs):
    """A Hugging Face cache holding repo ``org/tok`` at two revisions that differ in model_max_length."""
    repo = tmp_path / "cache" / "models--org--tok"
    (repo / "refs").mkdir(parents=True)
    for ref, (commit, max_length) in REVISIONS.items():
        (repo / "refs" / ref).write_text(commit)
        snapshot = repo / "snapshots" / commit
        snapshot.mkdir(parents=True)
        shutil.copy(dirs["minilm"] / "tokenizer.json", snapshot / "tokenizer.json")
        config = {"tokenizer_class": "BertTokenizer", "model_max_length": max_length}
        (snapshot / "tokenizer_config.json").write_text(json.dumps(config))
    return tmp_path / "cache"


def test_revision_comes_from_hub_options_or_keywords(two_revision_cache, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cache = HubOptions(cache_dir=two_revision_cache)
    assert AutoTokenizer.from_pretrained("org/tok", hub=cache).model_max_length == 128
    v2 = HubOptions(cache_dir=two_revision_cache, revision="v2")
    assert AutoTokenizer.from_pretrained("org/tok", hub=v2).model_max_length == 256
    assert PreTrainedTokenizerFast.from_pretrained("org/tok", hub=v2).model_max_length == 256
    # transformers' keywords still work, and a keyword given wins over the same field of hub=
    keywords = AutoTokenizer.from_pretrained("org/tok", cache_dir=two_revision_cache, revision="v2")
    assert keywords.model_max_length == 256
    assert AutoTokenizer.from_pretrained("org/tok", hub=v2, revision="main").model_max_length == 128
    assert AutoTokenizer.from_pretrained("org/tok", hub=v2, revision="b" * 40).model_max_length == 256


def test_subfolder_from_hub_options(tmp_path, dirs):
    shutil.copytree(dirs["minilm_vocab"], tmp_path / "tok")
    tok = AutoTokenizer.from_pretrained(tmp_path, hub=HubOptions(subfolder="tok"))
    assert tok("hello")["input_ids"] == [101, 7592, 102]
    with pytest.raises(FileNotFoundError, match="nope"):
        AutoTokenizer.from_pretrained(tmp_path, hub=HubOptions(subfolder="nope"))


def test_loading_and_saving_do_not_import_the_tokenizer_class():
    for module in (
        "xf_tokenize._loading",
        "xf_tokenize._saving",
        "xf_tokenize._special",
        "xf_tokenize._strategies",
    ):
        assert "xf_tokenize._tokenizer" not in imported_modules(f"import {module}"), module
