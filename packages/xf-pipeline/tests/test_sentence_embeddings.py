"""Faithful sentence embeddings: xf reads the sentence-transformers module files and matches
``SentenceTransformer.encode`` (the test-only oracle) on MiniLM, on a CLS-pooled copy of it and on a copy
with prompts, weighted-mean pooling, a short ``max_seq_length`` and dot-product similarity."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from xf_core.errors import XfConfigError
from xf_pipeline import (
    SentenceTransformer,
    UnsupportedSentenceModuleError,
    pipeline,
    read_sentence_config,
    semantic_search,
)
from xf_pipeline._math import pool
from xf_pipeline._sentence_transformer import token_budget_batches

st = pytest.importorskip("sentence_transformers")

LONG = " ".join(["The committee's antidisestablishmentarianism report, revised thrice,"] * 40)
SHORT = ["A man is eating food.", "A man is eating a piece of bread.", "A girl plays the violin.", "hi"]
TEXTS = [*SHORT[:2], LONG, *SHORT[2:]]
MODULES = [
    {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
    {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
]
NORMALIZE = {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}


def minilm_copy(src: Path, dst: Path, *, pooling: dict, modules: list, bert: dict, st_config: dict) -> Path:
    """MiniLM's files (weights linked, not copied) with its sentence-transformers files replaced."""
    dst.mkdir()
    for item in src.iterdir():
        if item.is_file() and item.name not in ("modules.json", "sentence_bert_config.json"):
            (dst / item.name).symlink_to(item) if item.suffix == ".safetensors" else shutil.copy(item, dst)
    (dst / "1_Pooling").mkdir()
    (dst / "1_Pooling" / "config.json").write_text(json.dumps({"word_embedding_dimension": 384, **pooling}))
    (dst / "modules.json").write_text(json.dumps(modules))
    (dst / "sentence_bert_config.json").write_text(json.dumps(bert))
    (dst / "config_sentence_transformers.json").write_text(json.dumps(st_config))
    return dst


@pytest.fixture(scope="module")
def models(minilm_dir, tmp_path_factory):
    """(xf model, sentence-transformers model) pairs: MiniLM itself, a CLS copy, a prompted copy."""
    root = tmp_path_factory.mktemp("st-copies")
    cls_dir = minilm_copy(
        minilm_dir,
        root / "cls",
        pooling={"pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False},
        modules=[*MODULES, NORMALIZE],
        bert={"max_seq_length": 256, "do_lower_case": False},
        st_config={},
    )
    prompted_dir = minilm_copy(
        minilm_dir,
        root / "prompted",
        pooling={"pooling_mode": "weightedmean", "include_prompt": False},
        modules=MODULES,
        bert={"max_seq_length": 24, "do_lower_case": False},
        st_config={
            "prompts": {"query": "query: find me the most relevant passage ", "passage": "passage: "},
            "default_prompt_name": "query",
            "similarity_fn_name": "dot",
        },
    )
    made = {}
    for name, path in (("minilm", minilm_dir), ("cls", cls_dir), ("prompted", prompted_dir)):
        made[name] = (
            SentenceTransformer(path, device="cpu"),
            st.SentenceTransformer(str(path), device="cpu"),
        )
    return made


def test_the_long_text_is_longer_than_minilm_takes(models):
    ours, _ = models["minilm"]
    assert ours.max_seq_length == 256
    assert len(ours.tokenizer(LONG)["input_ids"]) > 256


@pytest.mark.parametrize("name", ["minilm", "cls", "prompted"])
def test_encode_matches_sentence_transformers(models, name):
    ours, theirs = models[name]
    texts = TEXTS if name == "minilm" else SHORT  # long texts: MiniLM (max_seq_length 256) is enough
    got = ours.encode(texts, batch_size=2)
    want = theirs.encode(texts, batch_size=2)
    assert isinstance(got, np.ndarray) and got.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=2e-5, rtol=1e-4)
    if name == "prompted":
        np.testing.assert_allclose(
            ours.encode(texts, prompt_name="passage"), theirs.encode(texts, prompt_name="passage"), atol=2e-5
        )
        np.testing.assert_allclose(
            ours.similarity(got[:2], got), theirs.similarity(want[:2], want).numpy(), rtol=1e-4
        )


def test_cls_and_mean_models_embed_differently(models):
    """The CLS copy is a different embedding, so the parity above checks the pooling config is read."""
    mean = models["minilm"][0].encode(SHORT[:2])
    cls = models["cls"][0].encode(SHORT[:2])
    assert np.abs(mean - cls).max() > 0.05


def test_pipelines_use_the_model_files(models):
    ours, theirs = models["cls"]
    want = theirs.encode(SHORT)
    pooled = ours.pipeline(SHORT, batch_size=2, pooling="auto")  # the factory's feature-extraction pipeline
    np.testing.assert_allclose(np.array(pooled), want, atol=2e-5)
    path = ours.pipeline.sentence_config.source
    scores = pipeline("sentence-similarity", path)({"source_sentence": SHORT[2], "sentences": SHORT})
    np.testing.assert_allclose(scores, theirs.similarity(want[2:3], want)[0].numpy(), atol=1e-5)
    # Long texts are truncated at the model's max_seq_length (256 for MiniLM), not at 512.
    ours, theirs = models["minilm"]
    vector = ours.pipeline(LONG, pooling="mean")
    np.testing.assert_allclose(np.array(vector), theirs.encode(LONG), atol=2e-5)


def test_encode_output_kinds_and_normalization(models):
    ours, _ = models["prompted"]  # no Normalize module
    one = ours.encode(SHORT[0])
    assert one.shape == (384,)
    assert abs(float(np.linalg.norm(one)) - 1) > 1e-3
    normed = ours.encode(SHORT[0], normalize_embeddings=True, convert_to="torch")
    assert isinstance(normed, torch.Tensor) and abs(float(normed.norm()) - 1) < 1e-5
    listed = ours.encode(SHORT[:2], convert_to_numpy=False)
    assert isinstance(listed, list) and len(listed) == 2
    assert ours.encode([]).shape == (0, 384)


def test_encode_batches_texts_of_similar_length(models):
    """Sorted by length, a batch of 2 pads short texts with short texts: the model sees fewer tokens; the
    short texts share one batch, as many as fit in the tokens of the first (2 x the longest text)."""
    ours, _ = models["cls"]
    medium = "a man is eating food " * 4
    shapes = []
    handle = ours.model.register_forward_pre_hook(
        lambda _m, _a, kwargs: shapes.append(tuple(kwargs["input_ids"].shape)), with_kwargs=True
    )
    try:
        texts = ["a", medium, "b", medium + " more", "c", "d"]
        by_length = ours.encode(texts, batch_size=2)
    finally:
        handle.remove()
    assert shapes == [(2, len(ours.tokenizer(texts[3])["input_ids"])), (4, 3)]  # the long ones together
    np.testing.assert_allclose(by_length, ours.encode(texts, batch_size=1), atol=1e-5)


def test_token_budget_batches():
    assert token_budget_batches([], 4) == []
    assert token_budget_batches([10, 9, 5, 5, 5, 2, 2, 1], 2) == [(0, 2), (2, 6), (6, 8)]
    assert token_budget_batches([3, 3, 3], 1) == [(0, 1), (1, 2), (2, 3)]  # never more tokens than asked
    assert token_budget_batches([4, 0, 0], 2) == [(0, 2), (2, 3)]  # empty rows: at least batch_size


def test_progress_bar_for_long_inputs(models, capsys, monkeypatch):
    ours, _ = models["minilm"]
    monkeypatch.delenv("XF_DISABLE_PROGRESS", raising=False)
    monkeypatch.delenv("HF_HUB_DISABLE_PROGRESS_BARS", raising=False)
    ours.encode(["x"] * 4, batch_size=2, show_progress_bar=True)
    assert "Batches" in capsys.readouterr().err
    ours.encode(["x"] * 4, batch_size=2)  # short input: no bar by default
    assert "Batches" not in capsys.readouterr().err
    monkeypatch.setenv("XF_DISABLE_PROGRESS", "1")
    ours.encode(["x"] * 4, batch_size=2, show_progress_bar=True)
    assert "Batches" not in capsys.readouterr().err


def test_semantic_search_matches_sentence_transformers(models):
    ours, theirs = models["minilm"]
    queries = ["Someone eats.", "music"]
    hits = ours.semantic_search(queries, SHORT, top_k=3)
    want = st.util.semantic_search(theirs.encode(queries), theirs.encode(SHORT), top_k=3)
    assert [[h["corpus_id"] for h in row] for row in hits] == [[h["corpus_id"] for h in row] for row in want]
    for row, want_row in zip(hits, want):
        assert [h["score"] for h in row] == pytest.approx([h["score"] for h in want_row], abs=1e-5)
    assert len(semantic_search(torch.eye(3), torch.eye(3), top_k=10)[0]) == 3


@pytest.mark.parametrize("mode", ["cls", "mean", "max", "mean_sqrt_len_tokens", "weightedmean", "lasttoken"])
@pytest.mark.parametrize("side", ["right", "left"])
def test_pool_matches_sentence_transformers_pooling(mode, side):
    torch.manual_seed(0)
    hidden = torch.randn(3, 6, 4)
    lengths = [6, 3, 1]
    mask = torch.zeros(3, 6, dtype=torch.long)
    for i, n in enumerate(lengths):
        mask[i, :n] = 1
    if side == "left":
        mask = mask.flip(-1)
    module = st.models.Pooling(4, pooling_mode=mode)
    want = module({"token_embeddings": hidden, "attention_mask": mask})["sentence_embedding"]
    torch.testing.assert_close(pool(hidden, mask, mode), want)
    # one row at a time, as the pipelines pool, gives the same
    torch.testing.assert_close(torch.stack([pool(hidden[i], mask[i], mode) for i in range(3)]), want)


def test_sentence_config_reading(tmp_path, minilm_dir):
    config = read_sentence_config(minilm_dir)
    assert (config.pooling, config.normalize, config.max_seq_length) == (("mean",), True, 256)
    assert read_sentence_config(tmp_path).pooling == ("mean",)  # no files: the defaults
    (tmp_path / "modules.json").write_text(
        json.dumps([*MODULES, {"idx": 2, "path": "2_Dense", "type": "sentence_transformers.models.Dense"}])
    )
    (tmp_path / "1_Pooling").mkdir()
    (tmp_path / "1_Pooling" / "config.json").write_text(
        json.dumps({"pooling_mode_cls_token": True, "pooling_mode_max_tokens": True})
    )
    config = read_sentence_config(tmp_path)
    assert config.pooling == ("cls", "max")  # several modes, in sentence-transformers' order
    with pytest.raises(UnsupportedSentenceModuleError, match="sentence_transformers.models.Dense"):
        config.check_supported()
    (tmp_path / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode": "median"}))
    with pytest.raises(XfConfigError, match="1_Pooling/config.json: pooling mode 'median'"):
        read_sentence_config(tmp_path)
