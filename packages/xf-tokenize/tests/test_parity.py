"""Parity with transformers on real tokenizer files: ids, masks, type ids, offsets, word ids, decode."""

from __future__ import annotations

import json

import numpy as np
import pytest

NAMES = ["minilm", "minilm_vocab", "spm", "bpe", "roberta", "spm_unigram", "spm_bpe_generic"]

MODES = {
    "plain": {},
    "pad_true": {"padding": True},
    "pad_longest_multiple": {"padding": "longest", "pad_to_multiple_of": 8},
    "pad_max_length_trunc": {"padding": "max_length", "truncation": True, "max_length": 32},
    "trunc_longest_first": {"truncation": True, "max_length": 16},
    "trunc_longest_first_str": {"truncation": "longest_first", "max_length": 24, "padding": True},
    "trunc_false": {"truncation": False, "padding": True},
    "max_length_only": {"max_length": 20},
    "left_padding": {"padding": True, "padding_side": "left"},
    "overflow_stride": {
        "truncation": True,
        "max_length": 16,
        "stride": 4,
        "return_overflowing_tokens": True,
        "padding": True,
    },
    "all_returns": {
        "return_offsets_mapping": True,
        "return_special_tokens_mask": True,
        "return_length": True,
        "return_attention_mask": True,
        "return_token_type_ids": True,
    },
    "no_specials": {"add_special_tokens": False, "padding": True},
    "no_mask": {"return_attention_mask": False, "return_token_type_ids": False},
}


def backend_json(tokenizer) -> dict:
    """The backend serialization without the per-call padding/truncation settings."""
    data = json.loads(tokenizer.backend_tokenizer.to_str())
    data.pop("padding")
    data.pop("truncation")
    return data


def assert_same(xf_out, hf_out) -> None:
    assert list(xf_out.keys()) == list(hf_out.keys())
    for key in hf_out:
        a, b = xf_out[key], hf_out[key]
        if isinstance(b, np.ndarray):
            assert isinstance(a, np.ndarray) and a.dtype == b.dtype, key
            np.testing.assert_array_equal(a, b, err_msg=key)
        else:
            assert a == b, key
    if hf_out.encodings is not None:
        assert len(xf_out.encodings) == len(hf_out.encodings)
        for i in range(len(hf_out.encodings)):
            assert xf_out.word_ids(i) == hf_out.word_ids(i)
            assert xf_out.sequence_ids(i) == hf_out.sequence_ids(i)
            assert xf_out.tokens(i) == hf_out.tokens(i)


@pytest.mark.parametrize("name", NAMES)
def test_backend_matches_transformers_conversion(name, pair_of):
    xf, hf = pair_of(name)
    assert backend_json(xf) == backend_json(hf)
    assert len(xf) == len(hf)
    assert xf.vocab_size == hf.vocab_size
    assert xf.get_vocab() == hf.get_vocab()
    assert xf.special_tokens_map == hf.special_tokens_map
    assert xf.all_special_tokens == hf.all_special_tokens
    assert xf.extra_special_tokens == [str(t) for t in hf.extra_special_tokens]
    assert xf.all_special_ids == hf.all_special_ids
    assert xf.model_max_length == hf.model_max_length
    assert xf.padding_side == hf.padding_side
    assert xf.model_input_names == hf.model_input_names
    assert {i: str(t) for i, t in xf.added_tokens_decoder.items()} == {
        i: str(t) for i, t in hf.added_tokens_decoder.items()
    }


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("name", NAMES)
def test_batch_single_texts(name, mode, pair_of, corpus):
    xf, hf = pair_of(name)
    kwargs = MODES[mode]
    assert_same(xf(corpus, **kwargs), hf(corpus, **kwargs))


@pytest.mark.parametrize(
    "mode", ["plain", "pad_true", "trunc_longest_first", "pad_max_length_trunc", "all_returns"]
)
@pytest.mark.parametrize("name", NAMES)
def test_batch_pairs(name, mode, pair_of, pairs):
    xf, hf = pair_of(name)
    kwargs = MODES[mode]
    first, second = [a for a, _ in pairs], [b for _, b in pairs]
    assert_same(xf(first, second, **kwargs), hf(first, second, **kwargs))


@pytest.mark.parametrize("strategy", ["only_first", "only_second"])
@pytest.mark.parametrize("name", NAMES)
def test_pair_truncation_of_one_side(name, strategy, pair_of, corpus):
    xf, hf = pair_of(name)
    longs = [t for t in corpus if len(t) > 300]
    shorts = ["short one", "tiny", "ok then", "a b c", "", "中文"] * 2
    shorts = shorts[: len(longs)]
    first, second = (longs, shorts) if strategy == "only_first" else (shorts, longs)
    kwargs = {"truncation": strategy, "max_length": 24, "padding": True, "return_offsets_mapping": True}
    assert_same(xf(first, second, **kwargs), hf(first, second, **kwargs))
    overflow = {**kwargs, "stride": 3, "return_overflowing_tokens": True}
    assert_same(xf(first, second, **overflow), hf(first, second, **overflow))


@pytest.mark.parametrize("name", NAMES)
def test_single_strings_and_pairs(name, pair_of, pairs):
    xf, hf = pair_of(name)
    for a, b in pairs[:60]:
        assert_same(xf(a), hf(a))
        assert_same(xf(a, b, return_offsets_mapping=True), hf(a, b, return_offsets_mapping=True))
        assert xf.encode(a) == hf.encode(a)
        assert xf.tokenize(a) == hf.tokenize(a)


@pytest.mark.parametrize("name", NAMES)
def test_pretokenized_words(name, pair_of, corpus):
    xf, hf = pair_of(name)
    words = [t.split() or ["empty"] for t in corpus]
    kwargs = {"is_split_into_words": True, "padding": True, "return_offsets_mapping": True}
    assert_same(xf(words, **kwargs), hf(words, **kwargs))
    assert_same(xf(words[3], is_split_into_words=True), hf(words[3], is_split_into_words=True))


@pytest.mark.parametrize("tensors", ["np", "pt"])
@pytest.mark.parametrize("name", ["minilm", "spm"])
def test_return_tensors(name, tensors, pair_of, corpus):
    torch = pytest.importorskip("torch")

    xf, hf = pair_of(name)
    a = xf(corpus[:50], padding=True, truncation=True, max_length=40, return_tensors=tensors)
    b = hf(corpus[:50], padding=True, truncation=True, max_length=40, return_tensors=tensors)
    assert list(a) == list(b)
    for key in b:
        if tensors == "pt":
            assert isinstance(a[key], torch.Tensor) and a[key].dtype == b[key].dtype
            assert torch.equal(a[key], b[key])
        else:
            np.testing.assert_array_equal(a[key], b[key])
    single_a, single_b = xf(corpus[0], return_tensors=tensors), hf(corpus[0], return_tensors=tensors)
    assert tuple(single_a["input_ids"].shape) == tuple(single_b["input_ids"].shape)


@pytest.mark.parametrize("name", NAMES)
def test_decode(name, pair_of, corpus):
    xf, hf = pair_of(name)
    ids = hf(corpus, padding=True)["input_ids"]
    for skip in (False, True):
        assert xf.batch_decode(ids, skip_special_tokens=skip) == hf.batch_decode(
            ids, skip_special_tokens=skip
        )
    for row in ids[:40]:
        assert xf.decode(row) == hf.decode(row)
        assert xf.decode(row, skip_special_tokens=True) == hf.decode(row, skip_special_tokens=True)
        tokens = hf.convert_ids_to_tokens(row)
        assert xf.convert_ids_to_tokens(row) == tokens
        assert xf.convert_ids_to_tokens(row, skip_special_tokens=True) == hf.convert_ids_to_tokens(
            row, skip_special_tokens=True
        )
        assert xf.convert_tokens_to_ids(tokens) == hf.convert_tokens_to_ids(tokens)
        assert xf.convert_tokens_to_string(tokens) == hf.convert_tokens_to_string(tokens)
    if name.startswith("minilm"):
        row = ids[25]
        assert xf.decode(row, clean_up_tokenization_spaces=True) == hf.decode(
            row, clean_up_tokenization_spaces=True
        )


@pytest.mark.parametrize("name", NAMES)
def test_pad_already_encoded_features(name, pair_of, corpus):
    xf, hf = pair_of(name)
    features = [hf(t) for t in corpus[:30]]
    plain = [{k: list(v) for k, v in f.items()} for f in features]
    for kwargs in (
        {},
        {"padding": "max_length", "max_length": 300},
        {"pad_to_multiple_of": 8, "padding_side": "left"},
    ):
        assert_same(xf.pad(plain, **kwargs), hf.pad(plain, **kwargs))
    batched = {key: [f[key] for f in plain] for key in plain[0]}
    assert_same(
        xf.pad(batched, padding="longest", pad_to_multiple_of=5), hf.pad(batched, pad_to_multiple_of=5)
    )
    assert dict(xf.pad({"input_ids": []})) == dict(hf.pad({"input_ids": []}))
    a = xf.pad(plain, return_tensors="np")
    b = hf.pad(plain, return_tensors="np")
    for key in b:
        np.testing.assert_array_equal(a[key], b[key])


VARIANTS = [
    ("minilm_vocab", {"do_lower_case": False}),
    ("minilm_vocab", {"strip_accents": True}),
    ("minilm_vocab", {"do_lower_case": True, "strip_accents": False, "tokenize_chinese_chars": False}),
    ("bpe", {"add_prefix_space": True}),
    ("roberta", {"add_prefix_space": True, "trim_offsets": False}),
    ("spm", {"legacy": True}),
    ("spm", {"add_prefix_space": False}),
    ("spm", {"add_bos_token": False, "add_eos_token": True}),
    ("spm_unigram", {"legacy": False, "add_eos_token": True}),
    ("spm_bpe_generic", {"legacy": False}),
]


@pytest.mark.parametrize(("name", "options"), VARIANTS, ids=[f"{n}-{o}" for n, o in VARIANTS])
def test_conversion_options_match_transformers(name, options, dirs, corpus, pairs):
    from transformers import AutoTokenizer as HFAutoTokenizer

    from xf_tokenize import AutoTokenizer

    xf = AutoTokenizer.from_pretrained(dirs[name], **options)
    hf = HFAutoTokenizer.from_pretrained(dirs[name], **options)
    assert backend_json(xf) == backend_json(hf)
    kwargs = {"padding": True, "truncation": True, "max_length": 40, "return_offsets_mapping": True}
    assert_same(xf(corpus, **kwargs), hf(corpus, **kwargs))
    first, second = [a for a, _ in pairs[:50]], [b for _, b in pairs[:50]]
    assert_same(xf(first, second, **kwargs), hf(first, second, **kwargs))
    ids = hf(corpus)["input_ids"]
    assert xf.batch_decode(ids) == hf.batch_decode(ids)


@pytest.mark.parametrize("version", ["v3", "v7"])
def test_mistral_instruct_sentencepiece_with_control_pieces(version, tmp_path, corpus):
    """The v3/v7 Mistral models carry 750 control and 20 user-defined pieces ([INST], [TOOL_CALLS], ...)."""
    import importlib.resources
    import shutil

    from transformers import AutoTokenizer as HFAutoTokenizer

    from xf_tokenize import AutoTokenizer

    names = {
        "v3": "mistral_instruct_tokenizer_240323.model.v3",
        "v7": "mistral_instruct_tokenizer_241114.model.v7",
    }
    source = importlib.resources.files("mistral_common") / "data" / names[version]
    shutil.copy(str(source), tmp_path / "tokenizer.model")
    (tmp_path / "tokenizer_config.json").write_text(
        json.dumps({"tokenizer_class": "LlamaTokenizer", "add_bos_token": True, "pad_token": "</s>"})
    )
    xf, hf = AutoTokenizer.from_pretrained(tmp_path), HFAutoTokenizer.from_pretrained(tmp_path)
    assert backend_json(xf) == backend_json(hf)
    assert xf.extra_special_tokens == [str(t) for t in hf.extra_special_tokens]
    assert len(xf.extra_special_tokens) > 700 and xf.all_special_ids == hf.all_special_ids
    texts = [f"[INST] {t} [/INST]{t[:20]}</s>[TOOL_CALLS]" for t in corpus[:100]]
    assert_same(xf(texts, padding=True), hf(texts, padding=True))
    ids = hf(texts)["input_ids"]
    for skip in (False, True):
        assert xf.batch_decode(ids, skip_special_tokens=skip) == hf.batch_decode(
            ids, skip_special_tokens=skip
        )
        assert xf.convert_ids_to_tokens(ids[5], skip_special_tokens=skip) == hf.convert_ids_to_tokens(
            ids[5], skip_special_tokens=skip
        )


def test_unpadded_numpy_rows_and_per_sequence_values(pair_of, corpus):
    """Ragged rows become object arrays with return_tensors='np'; `length` keeps its axis on one text."""
    xf, hf = pair_of("minilm")
    a, b = xf(corpus[:20], return_tensors="np"), hf(corpus[:20], return_tensors="np")
    assert a["input_ids"].dtype == b["input_ids"].dtype == object
    for row_a, row_b in zip(a["input_ids"], b["input_ids"]):
        np.testing.assert_array_equal(row_a, row_b)
    kwargs = {"return_length": True, "return_special_tokens_mask": True, "return_offsets_mapping": True}
    assert_same(xf(corpus[1], **kwargs), hf(corpus[1], **kwargs))
    empty = {"add_special_tokens": False, "return_tensors": "np"}
    assert_same(xf([""], **empty), hf([""], **empty))
