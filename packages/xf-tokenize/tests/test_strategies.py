"""The padding/truncation rules as pure functions: arguments in, strategies and backend settings out."""

from __future__ import annotations

import pytest

from xf_tokenize._strategies import (
    VERY_LARGE_INTEGER,
    Strategies,
    pad_example,
    pad_examples,
    padding_settings,
    resolve_strategies,
    truncation_settings,
)
from xf_tokenize.errors import PaddingError, TruncationError


def resolve(padding=False, truncation=None, max_length=None, multiple=None, *, limit=512, pad=True):
    return resolve_strategies(
        padding, truncation, max_length, multiple, model_max_length=limit, has_pad_token=pad
    )


def test_booleans_and_names_resolve_to_strategies():
    assert resolve() == Strategies("do_not_pad", "do_not_truncate", None)
    assert resolve(True, True) == Strategies("longest", "longest_first", 512)
    assert resolve("longest", "only_second", 16) == Strategies("longest", "only_second", 16)
    assert resolve(None, False) == Strategies("do_not_pad", "do_not_truncate", None)


def test_max_length_alone_switches_truncation_on():
    assert resolve(max_length=8) == Strategies("do_not_pad", "longest_first", 8)
    assert resolve(max_length=8, truncation=False) == Strategies("do_not_pad", "do_not_truncate", 8)
    assert resolve(True, max_length=8).truncation == "do_not_truncate"  # only when not padding


def test_model_max_length_fills_in_or_means_no_limit():
    assert resolve("max_length") == Strategies("max_length", "do_not_truncate", 512)
    assert resolve("max_length", True, limit=VERY_LARGE_INTEGER) == Strategies(
        "do_not_pad", "do_not_truncate", None
    )
    assert resolve(True, "only_first", limit=VERY_LARGE_INTEGER) == Strategies(
        "longest", "do_not_truncate", None
    )


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"padding": "middle"}, PaddingError, "'middle' is not a padding strategy"),
        ({"truncation": "shortest"}, TruncationError, "not a truncation strategy"),
        ({"max_length": -1}, TruncationError, "non-negative int"),
        ({"max_length": True}, TruncationError, "non-negative int"),
        ({"multiple": 0}, PaddingError, "positive int"),
        ({"padding": True, "pad": False}, PaddingError, "no pad_token"),
        (
            {"padding": True, "truncation": True, "max_length": 10, "multiple": 4},
            PaddingError,
            "multiple of 4",
        ),
    ],
)
def test_bad_requests_name_the_fix(kwargs, error, message):
    with pytest.raises(error, match=message):
        resolve(**kwargs)


def test_truncation_settings():
    off = Strategies("longest", "do_not_truncate", None)
    assert truncation_settings(off, stride=0, direction="right", num_special_tokens=2, pair=False) is None
    on = Strategies("do_not_pad", "only_second", 10)
    assert truncation_settings(on, stride=3, direction="left", num_special_tokens=3, pair=True) == {
        "max_length": 10,
        "stride": 3,
        "strategy": "only_second",
        "direction": "left",
    }
    with pytest.raises(TruncationError, match=r"max_length=2 cannot hold the 3 special tokens .* pair"):
        truncation_settings(
            Strategies("do_not_pad", "longest_first", 2),
            stride=0,
            direction="right",
            num_special_tokens=3,
            pair=True,
        )
    with pytest.raises(TruncationError, match=r"stride=3 must be smaller than max_length=5 minus the 2"):
        truncation_settings(
            Strategies("do_not_pad", "longest_first", 5),
            stride=3,
            direction="right",
            num_special_tokens=2,
            pair=False,
        )


def test_padding_settings():
    pad = {"pad_to_multiple_of": None, "pad_id": 0, "pad_token": "[PAD]", "pad_type_id": 0}
    assert padding_settings(Strategies("do_not_pad", "longest_first", 8), direction="left", **pad) is None
    longest = padding_settings(Strategies("longest", "longest_first", 8), direction="left", **pad)
    assert longest == {**pad, "length": None, "direction": "left"}  # the length only fixes max_length padding
    fixed = padding_settings(Strategies("max_length", "do_not_truncate", 8), direction="right", **pad)
    assert fixed is not None and fixed["length"] == 8
    with pytest.raises(PaddingError, match="padding_side must be 'left' or 'right'"):
        padding_settings(Strategies("longest", "do_not_truncate", None), direction="up", **pad)


FILL = {"input_ids": 0, "attention_mask": 0, "token_type_ids": 7, "special_tokens_mask": 1}


def padded(example, **options):
    defaults = {
        "main_key": "input_ids",
        "strategy": "max_length",
        "max_length": 5,
        "pad_to_multiple_of": None,
        "side": "right",
        "fill": FILL,
        "return_attention_mask": True,
    }
    return pad_example(dict(example), **{**defaults, **options})


def test_pad_example_fills_each_key_with_its_value_on_the_side_asked():
    example = {"input_ids": [5, 6], "token_type_ids": [1, 1], "special_tokens_mask": [0, 0]}
    right = padded(example)
    assert right == {
        "input_ids": [5, 6, 0, 0, 0],
        "token_type_ids": [1, 1, 7, 7, 7],
        "special_tokens_mask": [0, 0, 1, 1, 1],
        "attention_mask": [1, 1, 0, 0, 0],
    }
    assert padded(example, side="left")["input_ids"] == [0, 0, 0, 5, 6]
    assert padded(example, max_length=3, pad_to_multiple_of=4)["input_ids"] == [5, 6, 0, 0]
    assert padded(example, strategy="longest")["input_ids"] == [5, 6]
    assert padded(example, strategy="do_not_pad") == {**example, "attention_mask": [1, 1]}
    assert "attention_mask" not in padded({"input_ids": [5]}, return_attention_mask=False)
    assert padded({"input_ids": [1, 2, 3, 4, 5, 6]})["input_ids"] == [1, 2, 3, 4, 5, 6]  # never cut


def test_pad_examples_pads_a_batch_to_its_longest_row():
    batch = {"input_ids": [[1], [1, 2, 3]]}
    out = pad_examples(
        batch,
        main_key="input_ids",
        strategy="longest",
        max_length=None,
        pad_to_multiple_of=None,
        side="left",
        fill=FILL,
        return_attention_mask=True,
    )
    assert out == {"input_ids": [[0, 0, 1], [1, 2, 3]], "attention_mask": [[0, 0, 1], [1, 1, 1]]}
