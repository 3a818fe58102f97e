"""Loading and saving: round trips through xf and transformers, the Hub cache, and clear errors."""

from __future__ import annotations

import json
import shutil

import pytest

from xf_core.testing import make_hf_cache, patch_env
from xf_tokenize import AutoTokenizer, PreTrainedTokenizerFast
from xf_tokenize.errors import NoTokenizerFilesError, PaddingError, TokenizerFileError, TruncationError

CHAT = "{% for m in messages %}<{{ m.role }}>{{ m.content }}</{{ m.role }}>{% endfor %}"


@pytest.mark.parametrize("name", ["minilm", "minilm_vocab", "spm", "bpe"])
def test_save_pretrained_round_trip(name, pair_of, corpus, tmp_path):
    from transformers import AutoTokenizer as HFAutoTokenizer

    xf, _ = pair_of(name)
    saved = PreTrainedTokenizerFast.from_pretrained(xf.name_or_path, model_max_length=77)
    saved.chat_template = CHAT
    saved.add_tokens(["<new_tok>", "brandnewword"])
    saved.add_special_tokens({"extra_special_tokens": ["<extra_1>"]})
    files = saved.save_pretrained(tmp_path)
    assert {p.split("/")[-1] for p in files} == {
        "tokenizer_config.json",
        "tokenizer.json",
        "chat_template.jinja",
    }
    again = AutoTokenizer.from_pretrained(tmp_path)
    theirs = HFAutoTokenizer.from_pretrained(tmp_path)
    texts = [*corpus[:80], "a <new_tok> and brandnewword <extra_1>"]
    expected = saved(texts, padding=True, truncation=True, return_offsets_mapping=True)
    for loaded in (again, theirs):
        out = loaded(texts, padding=True, truncation=True, return_offsets_mapping=True)
        for key in expected:
            assert out[key] == expected[key], key
        assert len(loaded) == len(saved)
        assert loaded.model_max_length == 77
        assert loaded.special_tokens_map == saved.special_tokens_map
        assert loaded.padding_side == saved.padding_side
        assert loaded.model_input_names == saved.model_input_names
        assert list(loaded.extra_special_tokens) == ["<extra_1>"]
        assert loaded.chat_template == CHAT
        assert loaded.decode(expected["input_ids"][-1], skip_special_tokens=True) == saved.decode(
            expected["input_ids"][-1], skip_special_tokens=True
        )
    # The original tokenizer is untouched by what was added to the copy.
    assert "<new_tok>" not in xf.get_vocab() and "<new_tok>" in again.get_vocab()


def test_config_files_are_read(dirs, tmp_path):
    target = tmp_path / "tok"
    shutil.copytree(dirs["minilm"], target)
    config = json.loads((target / "tokenizer_config.json").read_text())
    config.update({"padding_side": "left", "truncation_side": "left", "chat_template": "config template"})
    (target / "tokenizer_config.json").write_text(json.dumps(config))
    (target / "added_tokens.json").write_text(json.dumps({"<added>": 30522}))
    tok = AutoTokenizer.from_pretrained(target)
    assert (tok.padding_side, tok.truncation_side) == ("left", "left")
    assert tok.chat_template == "config template"
    assert tok.convert_tokens_to_ids("<added>") == 30522 and len(tok) == 30523
    (target / "chat_template.json").write_text(json.dumps({"chat_template": "json template"}))
    assert AutoTokenizer.from_pretrained(target).chat_template == "json template"
    (target / "chat_template.jinja").write_text("jinja template")
    assert AutoTokenizer.from_pretrained(target).chat_template == "jinja template"
    overridden = AutoTokenizer.from_pretrained(target, padding_side="right", pad_token="[MASK]")
    assert overridden.padding_side == "right" and overridden.pad_token_id == 103
    out = tok(["a", "a b c d e f"], padding=True, truncation=True, max_length=4)
    assert out["input_ids"] == [[0, 101, 1037, 102], [101, 1041, 1042, 102]]  # left padding, left truncation


def test_hub_cache_offline(dirs, tmp_path):
    files = {n: (dirs["minilm"] / n).read_bytes() for n in ("tokenizer.json", "tokenizer_config.json")}
    make_hf_cache(tmp_path / "hub", "org/minilm", files)
    with patch_env(HF_HUB_OFFLINE="1"):
        tok = AutoTokenizer.from_pretrained("org/minilm", cache_dir=tmp_path / "hub")
    assert tok("hello world")["input_ids"] == [101, 7592, 2088, 102]
    make_hf_cache(tmp_path / "hub", "org/nested", {f"tok/{n}": b for n, b in files.items()})
    with patch_env(HF_HUB_OFFLINE="1"):
        nested = AutoTokenizer.from_pretrained("org/nested", subfolder="tok", cache_dir=tmp_path / "hub")
    assert nested.encode("hello") == [101, 7592, 102]


def test_errors_name_the_file_and_the_fix(dirs, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "tokenizer_config.json").write_text("{}")
    with pytest.raises(
        NoTokenizerFilesError, match=r"tokenizer\.json, vocab\.txt, vocab\.json \+ merges\.txt"
    ) as e:
        AutoTokenizer.from_pretrained(empty)
    assert isinstance(e.value, FileNotFoundError) and e.value.looked_for[0] == "tokenizer.json"
    with pytest.raises(FileNotFoundError, match="no such directory"):
        AutoTokenizer.from_pretrained(tmp_path / "missing")

    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "tokenizer.json").write_text('{"version": "1.0", "model": ')
    with pytest.raises(TokenizerFileError, match=r"tokenizer\.json is not valid JSON") as e:
        AutoTokenizer.from_pretrained(corrupt)
    assert isinstance(e.value, ValueError) and e.value.file.endswith("tokenizer.json")
    (corrupt / "tokenizer.json").write_text('{"version": "1.0", "model": {"type": "Nope"}}')
    with pytest.raises(TokenizerFileError, match="not a valid `tokenizers` file"):
        AutoTokenizer.from_pretrained(corrupt)
    shutil.copy(dirs["minilm"] / "tokenizer.json", corrupt / "tokenizer.json")
    (corrupt / "tokenizer_config.json").write_text("{not json")
    with pytest.raises(TokenizerFileError, match=r"tokenizer_config\.json is not valid JSON"):
        AutoTokenizer.from_pretrained(corrupt)

    bad_spm = tmp_path / "bad_spm"
    bad_spm.mkdir()
    (bad_spm / "tokenizer.model").write_bytes(b"\xff\xff\xff garbage")
    with pytest.raises(TokenizerFileError, match=r"tokenizer\.model is not a SentencePiece model"):
        AutoTokenizer.from_pretrained(bad_spm)


def test_bad_call_arguments(pair_of):
    xf, _ = pair_of("minilm")
    with pytest.raises(PaddingError, match="'middle' is not a padding strategy"):
        xf("a", padding="middle")
    with pytest.raises(TruncationError, match="not a truncation strategy"):
        xf("a", truncation="shortest")
    for bad in (-1, 2.5, "10"):
        with pytest.raises(TruncationError, match="max_length must be a non-negative int"):
            xf("a", max_length=bad)
    with pytest.raises(TruncationError, match=r"max_length=2 cannot hold the 3 special tokens .* pair"):
        xf("a", "b", truncation=True, max_length=2)
    with pytest.raises(TruncationError, match=r"max_length=1 cannot hold the 2 special tokens"):
        xf("a", truncation=True, max_length=1)
    with pytest.raises(TruncationError, match="max_length=8"):
        xf("a", "a much longer second sentence here", truncation="only_first", max_length=8)
    with pytest.raises(
        TruncationError, match=r"stride=3 must be smaller than max_length=5 minus the 2 special"
    ):
        xf("a b c d e f g", truncation=True, max_length=5, stride=3, return_overflowing_tokens=True)
    with pytest.raises(TruncationError, match="stride=2"):  # transformers lets the Rust panic through here
        xf(
            "a b",
            "c d e f g h i j",
            truncation="only_second",
            max_length=7,
            stride=2,
            return_overflowing_tokens=True,
        )
    with pytest.raises(PaddingError, match="multiple of pad_to_multiple_of"):
        xf("a", padding=True, truncation=True, max_length=10, pad_to_multiple_of=8)
    with pytest.raises(PaddingError, match="padding_side"):
        xf("a", padding=True, padding_side="up")
    with pytest.raises(ValueError, match="text has 2 items but text_pair has 1"):
        xf(["a", "b"], ["c"])
    with pytest.raises(ValueError, match="rows have different lengths"):
        xf(["a", "b c d"], return_tensors="pt")
    xf_no_pad, _ = pair_of("spm")
    xf_no_pad = PreTrainedTokenizerFast.from_pretrained(xf_no_pad.name_or_path, pad_token=None)
    with pytest.raises(PaddingError, match="no pad_token"):
        xf_no_pad(["a", "b c"], padding=True)


def test_tokenizer_json_is_honoured_as_written(dirs, tmp_path):
    """Settings in tokenizer_config.json never rewrite the pipeline a tokenizer.json spells out."""
    target = tmp_path / "tok"
    shutil.copytree(dirs["minilm"], target)
    config = json.loads((target / "tokenizer_config.json").read_text())
    config["do_lower_case"] = False  # contradicts the lowercasing BertNormalizer in tokenizer.json
    (target / "tokenizer_config.json").write_text(json.dumps(config))
    tok = AutoTokenizer.from_pretrained(target)
    assert tok.backend_tokenizer.normalizer.normalize_str("HeLLo") == "hello"
    assert tok.tokenize("HELLO World") == ["hello", "world"]
    assert tok.init_kwargs["do_lower_case"] is False  # kept, and written back by save_pretrained
    tok.save_pretrained(tmp_path / "saved")
    assert json.loads((tmp_path / "saved" / "tokenizer_config.json").read_text())["do_lower_case"] is False
    # Without tokenizer.json the same key drives the conversion.
    (target / "tokenizer.json").unlink()
    assert AutoTokenizer.from_pretrained(target).tokenize("HELLO") != ["hello"]


def test_model_specific_named_tokens(dirs, tmp_path):
    from transformers import AutoTokenizer as HFAutoTokenizer

    target = tmp_path / "tok"
    shutil.copytree(dirs["minilm"], target)
    config = json.loads((target / "tokenizer_config.json").read_text())
    config["image_token"] = "<image>"
    config["extra_special_tokens"] = {"audio_token": "<audio>"}
    (target / "tokenizer_config.json").write_text(json.dumps(config))
    xf, hf = AutoTokenizer.from_pretrained(target), HFAutoTokenizer.from_pretrained(target)
    assert xf.image_token == hf.image_token == "<image>"
    assert xf.image_token_id == hf.image_token_id == 30522
    assert xf.audio_token_id == hf.audio_token_id
    assert xf.special_tokens_map == hf.special_tokens_map
    assert xf.all_special_tokens == hf.all_special_tokens
    text = "look <image> and <audio> here"
    assert xf(text)["input_ids"] == hf(text)["input_ids"]
    assert xf.decode(xf(text)["input_ids"], skip_special_tokens=True) == "look and here"
    with pytest.raises(AttributeError, match="no attribute 'video_token'"):
        _ = xf.video_token
    xf.save_pretrained(tmp_path / "saved")
    again = AutoTokenizer.from_pretrained(tmp_path / "saved")
    assert again.image_token == "<image>" and again.audio_token_id == xf.audio_token_id
    xf.pad_token_id = 103
    assert xf.pad_token == "[MASK]"
