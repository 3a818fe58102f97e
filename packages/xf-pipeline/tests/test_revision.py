"""``pipeline(..., revision=R)`` and ``model_kwargs={"revision": R}``: model weights, config and tokenizer all
come from revision R of a repo (a two-revision Hugging Face cache built here), and config.json is read once."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import xf_load.configuration_utils
from xf_core.errors import XfValueError
from xf_core.testing import make_hf_cache
from xf_pipeline import pipeline

REPO = "org/tiny-sentiment"
LABELS_V2 = {0: "bad", 1: "good", 2: "meh"}


def _files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in directory.iterdir() if p.is_file()}


@pytest.fixture(scope="module")
def two_revisions(tiny_bert, tmp_path_factory):
    """A hub cache where ``main`` and ``v2`` differ in weights, id2label and the tokenizer's max length."""
    import transformers

    main = tiny_bert("sequence")
    v2 = tmp_path_factory.mktemp("v2")
    config = transformers.BertConfig.from_pretrained(main)
    config.id2label, config.label2id = LABELS_V2, {v: k for k, v in LABELS_V2.items()}
    torch.manual_seed(123)
    transformers.BertForSequenceClassification(config).save_pretrained(v2)
    for name in ("tokenizer.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(main / name, v2 / name)
    tokenizer_config = json.loads((main / "tokenizer_config.json").read_text())
    tokenizer_config["model_max_length"] = 77
    (v2 / "tokenizer_config.json").write_text(json.dumps(tokenizer_config))

    cache = tmp_path_factory.mktemp("hub-cache")
    make_hf_cache(cache, REPO, _files(main), revision="main", commit="a" * 40)
    make_hf_cache(cache, REPO, _files(v2), revision="v2", commit="b" * 40)
    return cache, {"main": main, "v2": v2}


def _assert_from(pipe, directory: Path) -> None:
    config = json.loads((directory / "config.json").read_text())
    assert pipe.model.config.id2label == {int(k): v for k, v in config["id2label"].items()}
    stored = load_file(directory / "model.safetensors")
    torch.testing.assert_close(pipe.model.classifier.weight, stored["classifier.weight"], rtol=0, atol=0)
    torch.testing.assert_close(
        pipe.model.bert.embeddings.word_embeddings.weight,
        stored["bert.embeddings.word_embeddings.weight"],
        rtol=0,
        atol=0,
    )
    max_length = json.loads((directory / "tokenizer_config.json").read_text())["model_max_length"]
    assert pipe.tokenizer.model_max_length == max_length


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """The cache is built here: nothing may reach for the Hub (a missing optional file must not retry)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture
def config_reads(monkeypatch):
    """How often config.json is resolved (each read of it starts there)."""
    calls = []
    resolve = xf_load.configuration_utils.resolve_file

    def counting(path, filename, **kwargs):
        calls.append((str(path), filename, kwargs["hub"].revision))
        return resolve(path, filename, **kwargs)

    monkeypatch.setattr(xf_load.configuration_utils, "resolve_file", counting)
    return calls


@pytest.mark.parametrize("task", ["text-classification", None])
def test_revision_argument_gives_model_config_and_tokenizer_of_that_revision(
    two_revisions, task, config_reads
):
    cache, dirs = two_revisions
    pipe = pipeline(task, REPO, revision="v2", model_kwargs={"cache_dir": cache})
    _assert_from(pipe, dirs["v2"])
    assert config_reads == [(REPO, "config.json", "v2")]  # read once, even to find the task
    assert pipe("great fun")[0]["label"] in LABELS_V2.values()


def test_revision_in_model_kwargs_gives_model_config_and_tokenizer_of_that_revision(two_revisions):
    cache, dirs = two_revisions
    pipe = pipeline("text-classification", REPO, model_kwargs={"revision": "v2", "cache_dir": cache})
    _assert_from(pipe, dirs["v2"])
    default = pipeline("text-classification", REPO, model_kwargs={"cache_dir": cache})
    _assert_from(default, dirs["main"])


def test_two_different_revisions_are_refused(two_revisions):
    cache, _ = two_revisions
    with pytest.raises(XfValueError, match="revision='v2'.*'main'"):
        pipeline(
            "text-classification", REPO, revision="v2", model_kwargs={"revision": "main", "cache_dir": cache}
        )
