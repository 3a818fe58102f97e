"""Saving a tokenizer is all-or-nothing and keeps the files of a model saved in the same directory."""

from __future__ import annotations

import errno
import hashlib
import json
from pathlib import Path

import pytest

from xf_core import XfOSError
from xf_core.testing import minilm_dir
from xf_tokenize import PreTrainedTokenizerFast
from xf_tokenize.image_processing import CLIPImageProcessor


def _digests(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


@pytest.fixture
def tok() -> PreTrainedTokenizerFast:
    return PreTrainedTokenizerFast.from_pretrained(minilm_dir())


def test_saving_into_a_model_directory_keeps_the_model_loadable(tok, tmp_path):
    import torch
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32
    )
    BertModel(config).save_pretrained(tmp_path)
    model_files = _digests(tmp_path)
    assert {"config.json", "model.safetensors"} <= set(model_files)

    written = tok.save_pretrained(tmp_path)
    assert [Path(p).name for p in written] == ["tokenizer_config.json", "tokenizer.json"]
    assert all(Path(p).parent == tmp_path for p in written)
    after = _digests(tmp_path)
    assert {name: after[name] for name in model_files} == model_files  # the model's files are untouched
    reloaded = BertModel.from_pretrained(tmp_path)
    assert reloaded.config.hidden_size == 16
    assert PreTrainedTokenizerFast.from_pretrained(tmp_path)("hello world")["input_ids"] == [
        101,
        7592,
        2088,
        102,
    ]
    assert not [p for p in tmp_path.parent.iterdir() if ".xf-" in p.name]  # no stage left beside it


def test_a_resave_replaces_the_tokenizer_files_it_owns(tok, tmp_path):
    tok.chat_template = "{{ messages[0]['content'] }}"
    tok.save_pretrained(tmp_path)
    assert (tmp_path / "chat_template.jinja").is_file()
    tok.chat_template = None
    tok.model_max_length = 77
    tok.save_pretrained(tmp_path)
    # An old template must not survive a save of a tokenizer without one.
    assert not (tmp_path / "chat_template.jinja").exists()
    assert PreTrainedTokenizerFast.from_pretrained(tmp_path).model_max_length == 77


def test_a_full_disk_mid_save_leaves_the_previous_tokenizer_intact(tok, tmp_path, monkeypatch):
    target = tmp_path / "saved"
    tok.save_pretrained(target)
    (target / "config.json").write_text('{"model_type": "bert"}')
    before = _digests(target)

    def full(self, *args, **kwargs):  # tokenizer.json is written; the config is not
        raise OSError(errno.ENOSPC, "No space left on device", str(self))

    monkeypatch.setattr(Path, "write_text", full)
    tok.model_max_length = 12
    tok.add_tokens(["xfnewword"])  # the new tokenizer.json differs from the old one too
    with pytest.raises(XfOSError) as info:
        tok.save_pretrained(target)
    monkeypatch.undo()
    assert str(target) in str(info.value) and "disk is full" in str(info.value)
    assert info.value.errno == errno.ENOSPC
    assert _digests(target) == before
    assert json.loads((target / "tokenizer_config.json").read_text())["model_max_length"] == 512
    previous = PreTrainedTokenizerFast.from_pretrained(target)
    assert previous.model_max_length == 512 and len(previous) == 30522
    assert sorted(p.name for p in tmp_path.iterdir()) == ["saved"]  # the stage is gone


def test_saving_over_a_file_names_it(tok, tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    with pytest.raises(XfOSError, match="not-a-dir"):
        tok.save_pretrained(blocker)
    assert blocker.read_text() == "x"


def test_image_processor_save_maps_os_errors(tmp_path, monkeypatch):
    def denied(self, *args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(self))

    monkeypatch.setattr(Path, "write_text", denied)
    with pytest.raises(XfOSError, match="permission denied") as info:
        CLIPImageProcessor().save_pretrained(tmp_path / "proc")
    assert str(tmp_path / "proc") in str(info.value)
