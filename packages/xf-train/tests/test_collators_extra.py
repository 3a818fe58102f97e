"""Token-classification, seq2seq and whole-word-masking collators against transformers' collators, on the real
all-MiniLM-L6-v2 (BERT WordPiece) tokenizer and the same features."""

from __future__ import annotations

import pytest
import torch

from xf_core.errors import XfValueError
from xf_core.testing import minilm_dir
from xf_train import (
    DataCollatorForLanguageModeling,
    DataCollatorForSeq2Seq,
    DataCollatorForTokenClassification,
)

TEXTS = [
    "Tokenizers split unbelievably long words into pieces.",
    "Short one.",
    "Hyperparameters: learning-rate, warmup and weight decay!",
]
TARGETS = ["Pieces.", "A much longer target sentence than its source.", ""]


@pytest.fixture(scope="module")
def tokenizers():
    import transformers

    from xf_tokenize import AutoTokenizer

    path = minilm_dir()
    return AutoTokenizer.from_pretrained(path), transformers.AutoTokenizer.from_pretrained(path)


def _assert_same(xf_batch, hf_batch):
    assert sorted(xf_batch) == sorted(hf_batch)
    for key, expected in hf_batch.items():
        got = xf_batch[key]
        if expected is None:
            assert got is None, key
            continue
        assert type(got) is type(expected), key
        torch.testing.assert_close(
            torch.as_tensor(got), torch.as_tensor(expected), msg=lambda m, k=key: f"{k}: {m}"
        )


def _token_rows(tok, label_key="labels"):
    """Uneven rows with one label per token (the first row's labels as a tensor; the last row has none)."""
    rows = []
    for i, text in enumerate(TEXTS):
        row = dict(tok(text))
        labels = [(j * 7 + i) % 5 for j in range(len(row["input_ids"]))]
        row[label_key] = torch.tensor(labels) if i == 0 else labels if i == 1 else []
        rows.append(row)
    return rows


@pytest.mark.parametrize(
    ("options", "label_key", "side"),
    [
        ({}, "labels", "right"),
        ({"pad_to_multiple_of": 8}, "label", "right"),
        ({"padding": "max_length", "max_length": 24, "label_pad_token_id": -1}, "labels", "left"),
        ({"return_tensors": "np"}, "labels", "right"),
    ],
)
def test_token_classification_collator_matches_transformers(tokenizers, options, label_key, side):
    import transformers

    xf_tok, hf_tok = tokenizers
    xf_tok.padding_side = hf_tok.padding_side = side
    try:
        xf_batch = DataCollatorForTokenClassification(xf_tok, **options)(_token_rows(xf_tok, label_key))
        hf_batch = transformers.DataCollatorForTokenClassification(hf_tok, **options)(
            _token_rows(hf_tok, label_key)
        )
    finally:
        xf_tok.padding_side = hf_tok.padding_side = "right"
    _assert_same(xf_batch, dict(hf_batch))
    labels = torch.as_tensor(xf_batch[label_key])
    assert (labels[2] == options.get("label_pad_token_id", -100)).all()  # no labels: all padding
    assert labels.shape == torch.as_tensor(xf_batch["input_ids"]).shape


def test_token_classification_collator_without_labels_pads_inputs_only(tokenizers):
    xf_tok, _ = tokenizers
    batch = DataCollatorForTokenClassification(xf_tok)([dict(xf_tok(t)) for t in TEXTS])
    assert "labels" not in batch and batch["input_ids"].shape[0] == 3


def test_token_classification_collator_names_a_row_with_too_many_labels(tokenizers):
    xf_tok, _ = tokenizers
    rows = _token_rows(xf_tok)
    rows[1]["labels"] = [0] * 40
    with pytest.raises(XfValueError, match="feature 1 has 40 labels"):
        DataCollatorForTokenClassification(xf_tok)(rows)


@pytest.fixture(scope="module")
def tiny_t5():
    """A tiny random T5 (transformers): its prepare_decoder_input_ids_from_labels shifts labels right."""
    import transformers

    config = transformers.T5Config(
        vocab_size=32, d_model=8, d_kv=4, d_ff=16, num_layers=1, num_heads=2, decoder_start_token_id=0
    )
    return transformers.T5ForConditionalGeneration(config)


def _seq2seq_rows(tok, as_tensor=False):
    rows = []
    for text, target in zip(TEXTS, TARGETS):
        row = dict(tok(text))
        labels = tok(target)["input_ids"]
        row["labels"] = torch.tensor(labels) if as_tensor else labels
        rows.append(row)
    return rows


@pytest.mark.parametrize(
    ("options", "with_model", "as_tensor"),
    [
        ({}, False, False),
        ({}, True, False),
        ({"pad_to_multiple_of": 8, "label_pad_token_id": -1}, True, True),
        ({"padding": "max_length", "max_length": 20}, True, False),
        ({"return_tensors": "np"}, False, False),
    ],
)
def test_seq2seq_collator_matches_transformers(tokenizers, tiny_t5, options, with_model, as_tensor):
    import transformers

    xf_tok, hf_tok = tokenizers
    model = tiny_t5 if with_model else None
    xf_batch = DataCollatorForSeq2Seq(xf_tok, model=model, **options)(_seq2seq_rows(xf_tok, as_tensor))
    hf_batch = transformers.DataCollatorForSeq2Seq(hf_tok, model=model, **options)(
        _seq2seq_rows(hf_tok, as_tensor)
    )
    _assert_same(xf_batch, dict(hf_batch))
    labels = torch.as_tensor(xf_batch["labels"])
    lengths = [len(hf_tok(t)["input_ids"]) for t in TARGETS]
    pad = options.get("label_pad_token_id", -100)
    assert (labels[0, lengths[0] :] == pad).all() and (labels[1, : lengths[1]] != pad).all()
    if "pad_to_multiple_of" in options:
        assert labels.shape[1] % 8 == 0
    if with_model:  # the decoder starts with decoder_start_token_id, then the labels (-100 as pad id 0)
        decoder = xf_batch["decoder_input_ids"]
        assert (decoder[:, 0] == 0).all()
        shifted = labels[1, :-1]
        assert torch.equal(decoder[1, 1:], shifted.masked_fill(shifted == -100, 0))


def test_seq2seq_collator_without_labels_returns_labels_none(tokenizers):
    import transformers

    xf_tok, hf_tok = tokenizers
    xf_rows = [{**dict(xf_tok(t)), "labels": None} for t in TEXTS]
    hf_rows = [{**dict(hf_tok(t)), "labels": None} for t in TEXTS]
    _assert_same(
        DataCollatorForSeq2Seq(xf_tok)(xf_rows), dict(transformers.DataCollatorForSeq2Seq(hf_tok)(hf_rows))
    )


def test_seq2seq_collator_refuses_labels_longer_than_max_length(tokenizers):
    xf_tok, _ = tokenizers
    with pytest.raises(XfValueError, match="longer than max_length=4"):
        rows = [{"input_ids": [101, 102], "labels": [7] * n} for n in (3, 6)]
        DataCollatorForSeq2Seq(xf_tok, padding="max_length", max_length=4)(rows)
    with pytest.raises(XfValueError, match="return_tensors='tf'"):
        DataCollatorForSeq2Seq(xf_tok, return_tensors="tf")


def _wwm_rows(tok, length=20):
    """Rows padded at tokenization (offset_mapping cannot be padded by the collator, as in transformers)."""
    return [
        dict(
            tok(
                text,
                return_offsets_mapping=True,
                return_special_tokens_mask=True,
                padding="max_length",
                max_length=length,
                truncation=True,
            )
        )
        for text in TEXTS
    ]


@pytest.mark.filterwarnings("ignore:Random token replacement is not supported")
@pytest.mark.parametrize(("seed", "probability"), [(0, 0.15), (3, 0.5), (11, 0.9)])
def test_whole_word_mask_matches_transformers_for_a_seed(tokenizers, seed, probability):
    import transformers

    xf_tok, hf_tok = tokenizers
    xf_collate = DataCollatorForLanguageModeling(
        xf_tok, whole_word_mask=True, mlm_probability=probability, seed=seed
    )
    hf_collate = transformers.DataCollatorForLanguageModeling(
        hf_tok, whole_word_mask=True, mlm_probability=probability, seed=seed
    )
    masked_any = False
    for _ in range(3):  # the generator advances identically batch after batch
        xf_batch, hf_batch = xf_collate(_wwm_rows(xf_tok)), hf_collate(_wwm_rows(hf_tok))
        _assert_same(xf_batch, dict(hf_batch))
        masked_any |= bool((xf_batch["labels"] != -100).any())
    assert masked_any and "offset_mapping" not in xf_batch
    # every piece of a word is masked together: "unbelievably" is several WordPiece tokens
    ids = _wwm_rows(xf_tok)[0]["input_ids"]
    pieces = [i for i, t in enumerate(xf_tok.convert_ids_to_tokens(ids)) if t.startswith("##")]
    labels = xf_batch["labels"][0]
    assert pieces
    for i in pieces:  # a ## piece shares its word with the token before it
        assert (labels[i] != -100) == (labels[i - 1] != -100)


def test_whole_word_mask_masks_every_piece_of_a_drawn_word(tokenizers):
    xf_tok, _ = tokenizers
    rows = _wwm_rows(xf_tok)
    batch = DataCollatorForLanguageModeling(xf_tok, whole_word_mask=True, mlm_probability=1.0, seed=0)(rows)
    words = (
        torch.tensor([r["attention_mask"] for r in rows]).bool()
        & ~torch.tensor([r["special_tokens_mask"] for r in rows]).bool()
    )
    assert torch.equal(batch["labels"] != -100, words)  # probability 1: all words, every piece
    assert (batch["input_ids"][words] == xf_tok.mask_token_id).all()  # always the mask token


def test_whole_word_mask_errors_name_the_fix(tokenizers):
    xf_tok, _ = tokenizers
    with pytest.raises(XfValueError, match="mlm=False"):
        DataCollatorForLanguageModeling(xf_tok, mlm=False, whole_word_mask=True)
    collate = DataCollatorForLanguageModeling(xf_tok, whole_word_mask=True)
    with pytest.raises(XfValueError, match="return_offsets_mapping=True"):
        collate([dict(xf_tok(t)) for t in TEXTS])
