"""The tokenizer and BatchEncoding API around the backend: special tokens, vocabulary, alignment, pipeline parts."""

from __future__ import annotations

import pickle

import pytest

from xf_tokenize import AddedToken, AutoTokenizer, BatchEncoding, CharSpan, PreTrainedTokenizerFast, TokenSpan


@pytest.fixture
def fresh(dirs):
    """A MiniLM tokenizer of the test's own (tests below change it)."""
    return PreTrainedTokenizerFast.from_pretrained(dirs["minilm"])


def test_special_tokens_and_vocabulary(fresh, pair_of):
    _, hf = pair_of("minilm")
    tok = fresh
    for attr in ("bos", "eos", "unk", "sep", "pad", "cls", "mask"):
        assert getattr(tok, f"{attr}_token") == getattr(hf, f"{attr}_token")
        assert getattr(tok, f"{attr}_token_id") == getattr(hf, f"{attr}_token_id")
    assert tok.convert_tokens_to_ids("hello") == 7592
    assert tok.convert_tokens_to_ids(["hello", "no-such-token-xyz"]) == [7592, 100]  # unknown -> [UNK]
    assert tok.convert_ids_to_tokens(7592) == "hello"
    assert tok.num_special_tokens_to_add(pair=True) == 3 and tok.max_len_single_sentence == 510
    assert tok.vocab_size == 30522 and len(tok) == 30522

    assert tok.add_tokens(["xfnewword", AddedToken("  spaced", lstrip=True)]) == 2
    assert tok.add_tokens("xfnewword") == 0
    assert len(tok) == 30524 and tok.vocab_size == 30522
    assert tok.tokenize("an xfnewword here") == ["an", "xfnewword", "here"]
    assert tok.get_added_vocab()["xfnewword"] == 30522

    assert tok.add_special_tokens({"bos_token": "<bos>", "extra_special_tokens": ["<t1>", "<t2>"]}) == 3
    assert tok.bos_token == "<bos>" and tok.bos_token_id == 30524
    assert tok.extra_special_tokens == ["<t1>", "<t2>"] and tok.additional_special_tokens == ["<t1>", "<t2>"]
    assert tok.all_special_tokens[-3:] == ["[MASK]", "<t1>", "<t2>"]
    ids = tok("<t1> hello <t2>")["input_ids"]
    assert ids == [101, 30525, 7592, 30526, 102]
    assert tok.decode(ids, skip_special_tokens=True) == "hello"
    assert tok("<t1> hi", split_special_tokens=True)["input_ids"][1:4] == [1026, 1056, 2487]  # "<", "t", "1"
    tok.add_special_tokens({"extra_special_tokens": ["<t3>"]}, replace_extra_special_tokens=False)
    assert tok.extra_special_tokens == ["<t1>", "<t2>", "<t3>"]
    with pytest.raises(ValueError, match="not a special token name"):
        tok.add_special_tokens({"weird_token": "<w>"})

    tok.pad_token = "[MASK]"
    assert tok.pad_token_id == 103
    assert tok(["a", "a b"], padding=True)["input_ids"][0][-1] == 103


def test_add_bos_eos_rebuild_the_template(dirs):
    tok = AutoTokenizer.from_pretrained(dirs["spm"])
    assert tok.add_bos_token and not tok.add_eos_token
    assert tok.encode("Hello")[0] == tok.bos_token_id == 1
    tok.add_eos_token = True
    assert tok.encode("Hello")[-1] == tok.eos_token_id == 2
    assert tok.encode("a", "b") == [1, 264, 2, 1, 287, 2]
    tok.add_bos_token = False
    assert tok.encode("Hello")[0] != 1


def test_batch_encoding_alignment_matches_transformers(pair_of, pairs):
    xf, hf = pair_of("minilm")
    first, second = [p[0] for p in pairs[:40]], [p[1] for p in pairs[:40]]
    a, b = xf(first, second, padding=True), hf(first, second, padding=True)
    assert a.n_sequences == b.n_sequences == 2
    for i in range(0, 40, 3):
        n = len(a["input_ids"][i])
        for t in range(n):
            assert a.token_to_word(i, t) == b.token_to_word(i, t)
            assert a.token_to_sequence(i, t) == b.token_to_sequence(i, t)
            assert a.token_to_chars(i, t) == b.token_to_chars(i, t)
        for c in range(len(first[i])):
            assert a.char_to_token(i, c) == b.char_to_token(i, c)
            assert a.char_to_word(i, c) == b.char_to_word(i, c)
            assert a.char_to_token(i, min(c, len(second[i]) - 1), sequence_index=1) == b.char_to_token(
                i, min(c, len(second[i]) - 1), sequence_index=1
            )
        words = [w for w in a.word_ids(i) if w is not None]
        for w in range(max(words, default=-1) + 1):
            assert a.word_to_tokens(i, w) == b.word_to_tokens(i, w)
            span = a.word_to_chars(i, w)  # None for a word cut by truncation (transformers raises TypeError)
            if span is not None:
                assert span == b.word_to_chars(i, w)
    single = xf("hello world")
    assert single.token_to_chars(1) == CharSpan(0, 5) and single.word_to_tokens(1) == TokenSpan(2, 3)
    assert single.char_to_token(6) == 2 and single.token_to_word(-2) == 1
    assert single[0].ids == single.input_ids == single["input_ids"]
    assert single[1:3] == {k: v[1:3] for k, v in single.items()}
    with pytest.raises(AttributeError, match="no key or attribute 'labels'"):
        _ = single.labels
    restored = pickle.loads(pickle.dumps(single))
    assert restored == single and restored.word_ids() == single.word_ids()
    plain = xf.pad([{"input_ids": [1, 2]}, {"input_ids": [3]}])
    assert isinstance(plain, BatchEncoding) and plain.encodings is None
    with pytest.raises(ValueError, match="no backend encodings"):
        plain.word_ids(0)


def test_torch_tensors_and_to(pair_of):
    torch = pytest.importorskip("torch")
    xf, _ = pair_of("minilm")
    out = xf(["hello world", "hi"], padding=True, return_tensors="pt")
    assert out.input_ids.dtype == torch.int64 and out.input_ids.shape == (2, 4)
    assert out.to("cpu") is out and out.attention_mask.device.type == "cpu"
    out.to(torch.device("meta"))
    assert out.input_ids.device.type == "meta"
    padded = xf.pad({"input_ids": [torch.tensor([1, 2, 3]), torch.tensor([4])]})
    assert isinstance(padded.input_ids, torch.Tensor) and padded.input_ids.tolist() == [[1, 2, 3], [4, 0, 0]]


def test_pipeline_parts_usable_alone(pair_of):
    xf, hf = pair_of("minilm")
    backend = xf.backend_tokenizer
    assert backend.normalizer.normalize_str("Héllo  WORLD 中文") == "hello  world  中  文 "
    assert [w for w, _ in backend.pre_tokenizer.pre_tokenize_str("hello, world!")] == [
        "hello",
        ",",
        "world",
        "!",
    ]
    assert [t.value for t in backend.model.tokenize("unbelievable")] == [
        t.value for t in hf.backend_tokenizer.model.tokenize("unbelievable")
    ]
    spm, _ = pair_of("spm")
    assert spm.backend_tokenizer.normalizer is None
    assert spm.backend_tokenizer.pre_tokenizer.pre_tokenize_str("Hi there") == [("▁Hi▁there", (0, 8))]
    bpe, _ = pair_of("bpe")
    assert bpe.backend_tokenizer.pre_tokenizer.pre_tokenize_str("Hi there")[1][0] == "Ġthere"


def test_auto_tokenizer_is_not_instantiated():
    with pytest.raises(TypeError, match="from_pretrained"):
        AutoTokenizer()


def test_direct_construction(dirs, tmp_path):
    from tokenizers import Tokenizer

    path = dirs["minilm"] / "tokenizer.json"
    tok = PreTrainedTokenizerFast(
        tokenizer_file=path, cls_token="[CLS]", pad_token="[PAD]", model_max_length=8
    )
    assert tok("hello world", padding="max_length")["input_ids"] == [101, 7592, 2088, 102, 0, 0, 0, 0]
    same = PreTrainedTokenizerFast(Tokenizer.from_file(str(path)), pad_token="[PAD]")
    assert same.encode("hello") == [101, 7592, 102] and same.model_max_length > 10**20
    with pytest.raises(TypeError, match="exactly one"):
        PreTrainedTokenizerFast()
    with pytest.raises(FileNotFoundError, match="no tokenizer file"):
        PreTrainedTokenizerFast(tokenizer_file=tmp_path / "nope.json")


def test_tokenizer_pickles_and_copies(dirs):
    import copy

    tok = AutoTokenizer.from_pretrained(dirs["spm"], image_token="<unk>")
    for clone in (pickle.loads(pickle.dumps(tok)), copy.deepcopy(tok)):
        assert clone.encode("hello there") == tok.encode("hello there") == [1, 6312, 28709, 736]
        assert clone.image_token_id == 0 and clone.add_bos_token
        assert clone.special_tokens_map == tok.special_tokens_map
