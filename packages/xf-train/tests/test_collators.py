"""Collators against transformers' collators on the real all-MiniLM-L6-v2 tokenizer."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from xf_core.testing import minilm_dir
from xf_train import DataCollatorForLanguageModeling, DataCollatorWithPadding, default_data_collator

TEXTS = [
    "Hello world, this is a test.",
    "Short one.",
    "A somewhat longer sentence about tokenizers and padding.",
]


@pytest.fixture(scope="module")
def minilm() -> Path:
    return minilm_dir()


@pytest.fixture(scope="module")
def tokenizers(minilm):
    import transformers

    from xf_tokenize import AutoTokenizer

    return AutoTokenizer.from_pretrained(minilm), transformers.AutoTokenizer.from_pretrained(minilm)


def _features(tok, *, with_special_mask=False):
    rows = [dict(tok(t, return_special_tokens_mask=with_special_mask)) for t in TEXTS]
    for i, row in enumerate(rows):
        row["label"] = i % 2
    return rows


def _assert_same(xf_batch, hf_batch):
    assert sorted(xf_batch) == sorted(hf_batch)
    for key in hf_batch:
        torch.testing.assert_close(xf_batch[key], hf_batch[key], msg=lambda m, k=key: f"{k}: {m}")


@pytest.mark.parametrize("pad_to_multiple_of", [None, 8])
def test_padding_collator_matches_transformers(tokenizers, pad_to_multiple_of):
    import transformers

    xf_tok, hf_tok = tokenizers
    xf_batch = DataCollatorWithPadding(xf_tok, pad_to_multiple_of=pad_to_multiple_of)(_features(xf_tok))
    hf_batch = transformers.DataCollatorWithPadding(hf_tok, pad_to_multiple_of=pad_to_multiple_of)(
        _features(hf_tok)
    )
    _assert_same(xf_batch, hf_batch)
    assert xf_batch["input_ids"].shape[1] % (pad_to_multiple_of or 1) == 0


@pytest.mark.parametrize("with_special_mask", [False, True])
def test_mlm_collator_masks_like_transformers_for_a_seed(tokenizers, with_special_mask):
    import transformers

    xf_tok, hf_tok = tokenizers
    xf_collate = DataCollatorForLanguageModeling(xf_tok, mlm_probability=0.4, seed=5)
    hf_collate = transformers.DataCollatorForLanguageModeling(hf_tok, mlm_probability=0.4, seed=5)
    for _ in range(3):  # the generator advances identically batch after batch
        xf_rows = [
            {k: v for k, v in r.items() if k != "label"}
            for r in _features(xf_tok, with_special_mask=with_special_mask)
        ]
        hf_rows = [
            {k: v for k, v in r.items() if k != "label"}
            for r in _features(hf_tok, with_special_mask=with_special_mask)
        ]
        xf_batch, hf_batch = xf_collate(xf_rows), hf_collate(hf_rows)
        _assert_same(xf_batch, hf_batch)
    labels = xf_batch["labels"]
    assert (labels != -100).any()
    assert (labels[:, 0] == -100).all()  # [CLS] is never a target


def test_causal_collator_ignores_padding(tokenizers):
    import transformers

    xf_tok, hf_tok = tokenizers
    xf_rows = [xf_tok(t)["input_ids"] for t in TEXTS]  # plain lists of ids work too
    hf_rows = [hf_tok(t)["input_ids"] for t in TEXTS]
    xf_batch = DataCollatorForLanguageModeling(xf_tok, mlm=False)(xf_rows)
    hf_batch = transformers.DataCollatorForLanguageModeling(hf_tok, mlm=False)(hf_rows)
    # transformers returns no attention_mask for plain id lists; xf adds it (padding is on the right, so it
    # changes no loss, but it is what a model needs to ignore padding)
    mask = xf_batch.pop("attention_mask")
    _assert_same(xf_batch, hf_batch)
    assert (xf_batch["labels"][1, len(xf_rows[1]) :] == -100).all()
    torch.testing.assert_close(mask, (xf_batch["labels"] != -100).long())


def test_default_collator_matches_transformers():
    import transformers

    rows = [
        {"input_ids": [1, 2, 3], "label": 1, "score": 0.5, "text": "a"},
        {"input_ids": [4, 5, 6], "label": 0, "score": 1.5, "text": "b"},
    ]
    _assert_same(default_data_collator(rows), transformers.default_data_collator(rows))
    floats = [
        {"input_ids": torch.tensor([1, 2]), "label": 0.5},
        {"input_ids": torch.tensor([3, 4]), "label": 1.5},
    ]
    _assert_same(default_data_collator(floats), transformers.default_data_collator(floats))


def test_default_collator_names_the_ragged_feature():
    with pytest.raises(ValueError, match="'input_ids'.*DataCollatorWithPadding"):
        default_data_collator([{"input_ids": [1, 2, 3]}, {"input_ids": [1]}])


def test_mlm_needs_a_mask_token(tokenizers):
    class NoMask:
        mask_token = None

    with pytest.raises(ValueError, match="mlm=False"):
        DataCollatorForLanguageModeling(NoMask())
