"""SpecialTokens: the named and extra special tokens of a tokenizer as one object."""

from __future__ import annotations

import pytest
from tokenizers import AddedToken

from xf_tokenize._special import SpecialTokens


def test_config_values_become_tokens_and_read_as_strings():
    special = SpecialTokens(
        bos_token="<s>",
        pad_token={"content": "<pad>", "lstrip": True, "normalized": False},
        extra=["<a>", {"content": "<b>"}],
        model_specific={"image_token": "<img>"},
    )
    assert isinstance(special.pad_token, AddedToken) and special.pad_token.lstrip
    assert special.get("pad_token") == "<pad>" and special.get("eos_token") is None
    assert special.get("image_token") == "<img>" and special.get("nothing_token") is None
    assert special.as_map() == {"bos_token": "<s>", "pad_token": "<pad>", "image_token": "<img>"}
    assert special.extra_strings() == ["<a>", "<b>"]
    with pytest.raises(TypeError, match="special token eos_token must be a string or an AddedToken"):
        SpecialTokens(eos_token=3)


def test_model_specific_names_are_checked_and_a_standard_name_sets_the_field():
    with pytest.raises(ValueError, match="end with '_token'"):
        SpecialTokens(model_specific={"image": "<img>"})
    given = {"bos_token": "<b>", "audio_token": "<au>"}
    special = SpecialTokens(bos_token="<s>", model_specific=given)
    assert special.bos_token == "<b>" and special.model_specific == {"audio_token": "<au>"}
    assert given == {"bos_token": "<b>", "audio_token": "<au>"}  # the caller's dict is left alone


def test_all_tokens_ids_and_the_ones_a_vocabulary_lacks():
    special = SpecialTokens(unk_token="<unk>", sep_token="</s>", eos_token="</s>", extra=["<x>", "<unk>"])
    assert special.all_strings() == ["</s>", "<unk>", "<x>"]  # named first (standard order), no duplicates
    vocab = {"<unk>": 0, "</s>": 2}
    assert special.id_of("eos_token", vocab.get) == 2 and special.id_of("pad_token", vocab.get) is None
    missing = special.missing_from({"<unk>"})
    assert [str(t) for t in missing] == ["</s>", "<x>"]
    assert all(t.special and not t.normalized for t in missing)


def test_update_sets_named_tokens_and_replaces_or_extends_extras():
    special = SpecialTokens(extra=["<a>"])
    added = special.update({"pad_token": "<pad>", "extra_special_tokens": ["<b>", "<c>"]})
    assert [str(t) for t in added] == ["<pad>", "<b>", "<c>"]
    assert isinstance(special.pad_token, AddedToken) and special.extra_strings() == ["<b>", "<c>"]
    special.update({"additional_special_tokens": ["<c>", "<d>"]}, replace_extra=False)
    assert special.extra_strings() == ["<b>", "<c>", "<d>"]
    with pytest.raises(ValueError, match="not a special token name"):
        special.update({"weird_token": "<w>"})
    with pytest.raises(ValueError, match="must be a list"):
        special.update({"extra_special_tokens": "<e>"})
    with pytest.raises(ValueError, match="must be one of|is not one of"):
        special.set("image_token", "<i>")


def test_write_to_a_config_drops_unset_names_and_the_old_extras_key():
    config = {"pad_token": "[OLD]", "additional_special_tokens": ["<z>"], "do_lower_case": True}
    SpecialTokens(cls_token="[CLS]", extra=[AddedToken("<e>", special=True)]).write_to(config)
    assert config == {"cls_token": "[CLS]", "extra_special_tokens": ["<e>"], "do_lower_case": True}
