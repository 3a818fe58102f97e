"""Padding and truncation: transformers' arguments resolved to one strategy each, and what the backend is told.

Pure functions of their arguments (no tokenizer), so each rule can be read and tested on its own:
:func:`resolve_strategies` turns ``padding``/``truncation``/``max_length`` into :class:`Strategies`,
:func:`truncation_settings` and :func:`padding_settings` give the keyword arguments of the Rust backend's
``enable_truncation``/``enable_padding`` (None: switch it off), and :func:`pad_example` pads one
already-encoded example in Python (``tokenizer.pad``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, NamedTuple

from xf_tokenize.errors import PaddingError, TruncationError

__all__ = [
    "PADDING_STRATEGIES",
    "TRUNCATION_STRATEGIES",
    "VERY_LARGE_INTEGER",
    "Padding",
    "Strategies",
    "Truncation",
    "pad_example",
    "pad_examples",
    "padding_settings",
    "resolve_strategies",
    "truncation_settings",
]

VERY_LARGE_INTEGER = int(1e30)  # "no limit", as transformers writes it
_LARGE_INTEGER = int(1e20)  # a model_max_length above this means "no limit"
PADDING_STRATEGIES = ("longest", "max_length", "do_not_pad")
TRUNCATION_STRATEGIES = ("longest_first", "only_first", "only_second", "do_not_truncate")

Padding = bool | Literal["longest", "max_length", "do_not_pad"]
Truncation = bool | Literal["longest_first", "only_first", "only_second", "do_not_truncate"] | None


class Strategies(NamedTuple):
    """One padding strategy, one truncation strategy, and the length both work to (None: no fixed length)."""

    padding: str
    truncation: str
    max_length: int | None


def _strategy(value: Any, *, on: str, off: str, valid: tuple[str, ...]) -> str | None:
    """``True``/``False``/``None``/an enum/a name as a strategy name; None when it is not a valid one."""
    if value is True:
        return on
    if value is False or value is None:
        return off
    name = str(getattr(value, "value", value))
    return name if name in valid else None


def resolve_strategies(
    padding: Padding | str,
    truncation: Truncation | str,
    max_length: int | None,
    pad_to_multiple_of: int | None,
    *,
    model_max_length: int,
    has_pad_token: bool,
) -> Strategies:
    """transformers' rules: ``max_length`` alone switches truncation on; without ``max_length`` padding to
    ``"max_length"`` and truncation use ``model_max_length``, or are off when it is "no limit"."""
    if max_length is not None and (
        isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 0
    ):
        raise TruncationError(f"max_length must be a non-negative int or None, got {max_length!r}")
    if pad_to_multiple_of is not None and (
        isinstance(pad_to_multiple_of, bool)
        or not isinstance(pad_to_multiple_of, int)
        or pad_to_multiple_of < 1
    ):
        raise PaddingError(f"pad_to_multiple_of must be a positive int or None, got {pad_to_multiple_of!r}")
    if max_length is not None and padding is False and truncation is None:
        truncation = "longest_first"
    pad = _strategy(padding, on="longest", off="do_not_pad", valid=PADDING_STRATEGIES)
    if pad is None:
        raise PaddingError(
            f"padding={padding!r} is not a padding strategy; use True/'longest', 'max_length' or "
            "False/'do_not_pad'."
        )
    trunc = _strategy(truncation, on="longest_first", off="do_not_truncate", valid=TRUNCATION_STRATEGIES)
    if trunc is None:
        raise TruncationError(
            f"truncation={truncation!r} is not a truncation strategy; use True/'longest_first', "
            "'only_first', 'only_second' or False/'do_not_truncate'."
        )
    if max_length is None:
        unlimited = model_max_length > _LARGE_INTEGER
        if pad == "max_length":
            if unlimited:
                pad = "do_not_pad"
            else:
                max_length = model_max_length
        if trunc != "do_not_truncate":
            if unlimited:
                trunc = "do_not_truncate"
            else:
                max_length = model_max_length
    if pad != "do_not_pad" and not has_pad_token:
        raise PaddingError(
            "padding was asked for but this tokenizer has no pad_token; set one, e.g. "
            "`tokenizer.pad_token = tokenizer.eos_token`, or add one with "
            "`tokenizer.add_special_tokens({'pad_token': '[PAD]'})`."
        )
    if (
        trunc != "do_not_truncate"
        and pad != "do_not_pad"
        and pad_to_multiple_of is not None
        and max_length is not None
        and max_length % pad_to_multiple_of
    ):
        raise PaddingError(
            f"truncating to max_length={max_length} and padding to a multiple of {pad_to_multiple_of} "
            "cannot both hold; pick a max_length that is a multiple of pad_to_multiple_of."
        )
    return Strategies(pad, trunc, max_length)


def truncation_settings(
    strategies: Strategies, *, stride: int, direction: str, num_special_tokens: int, pair: bool
) -> dict[str, Any] | None:
    """The backend's ``enable_truncation`` arguments, or None for no truncation.

    ``num_special_tokens`` is what the post-processor adds to a single sequence (or a ``pair``); the tokens
    left for text must outnumber ``stride``.
    """
    if strategies.truncation == "do_not_truncate":
        return None
    max_length = strategies.max_length
    assert max_length is not None  # resolve_strategies never truncates without a length
    if max_length < num_special_tokens:
        raise TruncationError(
            f"max_length={max_length} cannot hold the {num_special_tokens} special tokens this tokenizer adds "
            f"to a {'pair' if pair else 'single sequence'}; pass max_length >= {num_special_tokens}, or "
            "add_special_tokens=False."
        )
    if stride and stride >= max_length - num_special_tokens:
        raise TruncationError(
            f"stride={stride} must be smaller than max_length={max_length} minus the {num_special_tokens} "
            f"special tokens ({max_length - num_special_tokens}); pass a smaller stride or a larger max_length."
        )
    return {
        "max_length": max_length,
        "stride": stride,
        "strategy": strategies.truncation,
        "direction": direction,
    }


def padding_settings(
    strategies: Strategies,
    *,
    pad_to_multiple_of: int | None,
    direction: str,
    pad_id: int | None,
    pad_token: str | None,
    pad_type_id: int,
) -> dict[str, Any] | None:
    """The backend's ``enable_padding`` arguments, or None for no padding."""
    if strategies.padding == "do_not_pad":
        return None
    if direction not in ("left", "right"):
        raise PaddingError(f"padding_side must be 'left' or 'right', got {direction!r}")
    return {
        "length": strategies.max_length if strategies.padding == "max_length" else None,
        "pad_to_multiple_of": pad_to_multiple_of,
        "pad_id": pad_id,
        "pad_token": pad_token,
        "pad_type_id": pad_type_id,
        "direction": direction,
    }


def pad_example(
    example: dict[str, Any],
    *,
    main_key: str,
    strategy: str,
    max_length: int | None,
    pad_to_multiple_of: int | None,
    side: str,
    fill: Mapping[str, int | None],
    return_attention_mask: bool,
) -> dict[str, Any]:
    """Pad the lists of one encoded example (in place; returned) to ``max_length`` (``"longest"``: its own
    length), rounded up to ``pad_to_multiple_of``. ``fill`` gives each key's pad value; keys it does not name
    are left as they are. A missing ``attention_mask`` is made when ``return_attention_mask``."""
    ids = example[main_key]
    if strategy == "longest":
        max_length = len(ids)
    if max_length is not None and pad_to_multiple_of is not None and max_length % pad_to_multiple_of:
        max_length = (max_length // pad_to_multiple_of + 1) * pad_to_multiple_of
    if return_attention_mask and "attention_mask" not in example:
        example["attention_mask"] = [1] * len(ids)
    if strategy == "do_not_pad" or max_length is None or len(ids) >= max_length:
        return example
    n = max_length - len(ids)
    for key, value in fill.items():
        if key in example:
            row = example[key]
            example[key] = row + [value] * n if side == "right" else [value] * n + row
    return example


def pad_examples(
    data: dict[str, Any], *, main_key: str, strategy: str, max_length: int | None, **options: Any
) -> dict[str, Any]:
    """:func:`pad_example` for one example (a dict of lists) or a batch (a dict of lists of rows); a batch
    padded to ``"longest"`` pads every row to its longest row. ``options`` are :func:`pad_example`'s."""
    rows = data[main_key]
    if not rows or not isinstance(rows[0], list):  # one example
        return pad_example(data, main_key=main_key, strategy=strategy, max_length=max_length, **options)
    if strategy == "longest":
        max_length, strategy = max(len(r) for r in rows), "max_length"
    out: dict[str, list[Any]] = {}
    for i in range(len(rows)):
        row = {k: v[i] for k, v in data.items()}
        one = pad_example(row, main_key=main_key, strategy=strategy, max_length=max_length, **options)
        for key, value in one.items():
            out.setdefault(key, []).append(value)
    return out
