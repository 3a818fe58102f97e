"""Data collators: lists of examples (dicts) -> a batch of tensors, as transformers' collators.

``default_data_collator`` stacks features that already have one length; ``DataCollatorWithPadding`` pads
with the tokenizer's ``pad``; ``DataCollatorForLanguageModeling`` pads and builds labels, masking tokens for
MLM (with transformers' random draws, in the same order, so a seed gives the same masks) or copying the
inputs for causal LM (padding ignored as -100); with ``whole_word_mask`` (transformers 5's spelling of the old
``DataCollatorForWholeWordMask``) every token of a chosen word is masked, words read from ``offset_mapping``.
``DataCollatorForTokenClassification`` pads per-token labels to the inputs' length; ``DataCollatorForSeq2Seq``
pads target labels on their own and builds ``decoder_input_ids`` with the model's
``prepare_decoder_input_ids_from_labels``. Padded label positions hold -100, which the losses ignore.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from xf_core.errors import XfValueError
from xf_core.logging import get_logger

__all__ = [
    "DataCollatorForLanguageModeling",
    "DataCollatorForSeq2Seq",
    "DataCollatorForTokenClassification",
    "DataCollatorWithPadding",
    "default_data_collator",
]

_logger = get_logger(__name__)


def _label_tensor(values: list[Any]) -> torch.Tensor:
    first = values[0]
    if isinstance(first, torch.Tensor):
        return torch.stack(values)
    probe = first[0] if isinstance(first, (list, tuple)) and first else first
    dtype = torch.long if isinstance(probe, int) else torch.float
    return torch.tensor(values, dtype=dtype)


def default_data_collator(features: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
    """Stack equal-length features into tensors; ``label``/``label_ids`` become ``labels`` (long for ints,
    float otherwise). Strings and None are dropped."""
    first = features[0]
    batch: dict[str, torch.Tensor] = {}
    for source in ("label", "label_ids"):
        if source in first and first[source] is not None:
            values = [f[source] for f in features]
            batch["labels"] = _label_tensor(
                [v.item() if isinstance(v, torch.Tensor) and v.dim() == 0 else v for v in values]
            )
    for key, value in first.items():
        if key in ("label", "label_ids") or value is None or isinstance(value, str):
            continue
        values = [f[key] for f in features]
        if isinstance(value, torch.Tensor):
            batch[key] = torch.stack(values)
        else:
            try:
                batch[key] = torch.tensor(values)
            except ValueError as e:
                raise XfValueError(
                    f"default_data_collator cannot stack feature {key!r}: its rows have different lengths; "
                    "use DataCollatorWithPadding (or pad the dataset first)."
                ) from e
    return batch


def _rename_label(batch: dict[str, Any]) -> dict[str, Any]:
    for source in ("label", "label_ids"):
        if source in batch:
            batch["labels"] = batch.pop(source)
    return batch


@dataclass
class DataCollatorWithPadding:
    """Pad each batch with ``tokenizer.pad`` (to the longest row by default)."""

    tokenizer: Any
    padding: bool | str = True
    max_length: int | None = None
    pad_to_multiple_of: int | None = None
    return_tensors: str = "pt"

    def __call__(self, features: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        batch = self.tokenizer.pad(
            list(features),
            padding=self.padding,
            max_length=self.max_length,
            pad_to_multiple_of=self.pad_to_multiple_of,
            return_tensors=self.return_tensors,
        )
        return _rename_label(dict(batch))


@dataclass
class DataCollatorForLanguageModeling:
    """Pad, then build ``labels``: masked-token targets when ``mlm`` (others -100), else a copy of
    ``input_ids`` with padding set to -100 (the model shifts them).

    ``whole_word_mask=True`` masks whole words: a token starts a word when it is not special and its
    ``offset_mapping`` start differs from the previous token's end (or that token was special); only word starts
    are drawn, then every token of a drawn word is masked, always with the mask token (as transformers 5, which
    sets ``mask_replace_prob=1``). The features need ``offset_mapping`` (``return_offsets_mapping=True``) of one
    length per batch, e.g. tokenized with ``padding="max_length"``."""

    tokenizer: Any
    mlm: bool = True
    whole_word_mask: bool = False
    mlm_probability: float = 0.15
    mask_replace_prob: float = 0.8
    random_replace_prob: float = 0.1
    pad_to_multiple_of: int | None = None
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.mlm and self.tokenizer.mask_token is None:
            raise XfValueError(
                "DataCollatorForLanguageModeling(mlm=True) needs a tokenizer with a mask token; this one has "
                "none. Pass mlm=False for causal language modeling."
            )
        for name in ("mlm_probability", "mask_replace_prob", "random_replace_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise XfValueError(f"DataCollatorForLanguageModeling.{name} must be in [0, 1].")
        if self.mask_replace_prob + self.random_replace_prob > 1:
            raise XfValueError(
                "DataCollatorForLanguageModeling: mask_replace_prob + random_replace_prob must not exceed 1."
            )
        if self.whole_word_mask:
            if not self.mlm:
                raise XfValueError(
                    "DataCollatorForLanguageModeling(whole_word_mask=True) masks words for masked language "
                    "modeling; it cannot be combined with mlm=False."
                )
            if self.mask_replace_prob < 1:
                _logger.info("whole_word_mask: masked words always get the mask token (mask_replace_prob=1).")
                self.mask_replace_prob, self.random_replace_prob = 1.0, 0.0
        self.generator: torch.Generator | None = (
            torch.Generator().manual_seed(self.seed) if self.seed is not None else None
        )

    def __call__(self, features: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        if isinstance(features[0], Mapping):
            batch = dict(
                self.tokenizer.pad(
                    list(features), pad_to_multiple_of=self.pad_to_multiple_of, return_tensors="pt"
                )
            )
        else:
            batch = dict(
                self.tokenizer.pad(
                    {"input_ids": [list(f) for f in features]},
                    pad_to_multiple_of=self.pad_to_multiple_of,
                    return_tensors="pt",
                )
            )
        special = batch.pop("special_tokens_mask", None)
        offsets = batch.pop("offset_mapping", None)
        if self.mlm:
            batch["input_ids"], batch["labels"] = self.mask_tokens(batch["input_ids"], special, offsets)
        else:
            labels = batch["input_ids"].clone()
            if self.tokenizer.pad_token_id is not None:
                labels[labels == self.tokenizer.pad_token_id] = -100
            batch["labels"] = labels
        return batch

    def mask_tokens(
        self,
        inputs: torch.Tensor,
        special_tokens_mask: torch.Tensor | None = None,
        offset_mapping: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Choose ``mlm_probability`` of the non-special tokens (of the word starts, with ``whole_word_mask``)
        as targets; of those, replace ``mask_replace_prob`` with the mask token, ``random_replace_prob`` with a
        random token, keep the rest."""
        labels = inputs.clone()
        if special_tokens_mask is None:  # already-encoded ids: special means one of the special token ids
            special_tokens_mask = torch.isin(labels, torch.tensor(self.tokenizer.all_special_ids))
        special_tokens_mask = special_tokens_mask.bool()
        probability = torch.full(labels.shape, self.mlm_probability)
        if self.whole_word_mask:
            word_ids, word_start = _word_ids(self._offsets(offset_mapping, labels.shape), special_tokens_mask)
            probability.masked_fill_(~word_start, 0.0)
            masked = torch.bernoulli(probability, generator=self.generator).bool()
            masked = _spread_to_words(word_ids, masked)
        else:
            probability.masked_fill_(special_tokens_mask, 0.0)
            masked = torch.bernoulli(probability, generator=self.generator).bool()
        labels[~masked] = -100
        replaced = torch.bernoulli(
            torch.full(labels.shape, self.mask_replace_prob), generator=self.generator
        ).bool()
        replaced &= masked
        inputs[replaced] = self.tokenizer.convert_tokens_to_ids(self.tokenizer.mask_token)
        if self.mask_replace_prob == 1 or self.random_replace_prob == 0:
            return inputs, labels
        scaled = self.random_replace_prob / (1 - self.mask_replace_prob)
        randomized = torch.bernoulli(torch.full(labels.shape, scaled), generator=self.generator).bool()
        randomized &= masked & ~replaced
        words = torch.randint(len(self.tokenizer), labels.shape, dtype=torch.long, generator=self.generator)
        inputs[randomized] = words[randomized]
        return inputs, labels

    def _offsets(self, offset_mapping: Any, shape: torch.Size) -> torch.Tensor:
        if offset_mapping is None:
            raise XfValueError(
                "DataCollatorForLanguageModeling(whole_word_mask=True) finds words through 'offset_mapping', "
                "which the features lack; tokenize with return_offsets_mapping=True."
            )
        offsets = torch.as_tensor(offset_mapping)
        if offsets.shape != (*shape, 2):
            raise XfValueError(
                f"DataCollatorForLanguageModeling(whole_word_mask=True): 'offset_mapping' has shape "
                f"{tuple(offsets.shape)}, not (batch, length, 2) = {(*shape, 2)}; tokenize with "
                "return_offsets_mapping=True and padding='max_length' so every row has the same length."
            )
        return offsets


def _word_ids(offsets: torch.Tensor, special: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(word id per token, -1 for special tokens; True where a token starts a word)."""
    starts, ends = offsets[..., 0], offsets[..., 1]
    previous_end = ends.roll(1, dims=1)
    previous_end[:, 0] = -1
    previous_special = special.roll(1, dims=1)
    previous_special[:, 0] = False
    word_start = ~special & ((starts != previous_end) | previous_special)
    word_ids = word_start.long().cumsum(dim=1)
    word_ids[special] = -1
    return word_ids, word_start


def _spread_to_words(word_ids: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
    """Mask every token of a word one of whose tokens is masked."""
    valid = word_ids != -1
    same_word = (
        (word_ids[:, :, None] == word_ids[:, None, :]) & valid[:, :, None] & valid[:, None, :]
    )  # (B, T, T)
    return (same_word & masked[:, None, :]).any(dim=2)


def _label_name(features: Sequence[Mapping[str, Any]]) -> str:
    return "label" if "label" in features[0] else "labels"


def _check_return_tensors(owner: str, return_tensors: str) -> None:
    if return_tensors not in ("pt", "np"):
        raise XfValueError(f"{owner}(return_tensors={return_tensors!r}): use 'pt' or 'np'.")


def _as_list(row: Any) -> list[Any]:
    return row.tolist() if hasattr(row, "tolist") else list(row)


def _pad_rows(rows: list[list[Any]], length: int, fill: int, side: str) -> torch.Tensor:
    """``rows`` padded with ``fill`` to ``length`` on ``side``, as one int64 tensor."""
    padded = [
        row + [fill] * (length - len(row)) if side == "right" else [fill] * (length - len(row)) + row
        for row in rows
    ]
    return torch.tensor(padded, dtype=torch.int64)


def _pad_apart_from_labels(
    collator: DataCollatorForTokenClassification | DataCollatorForSeq2Seq,
    features: Sequence[Mapping[str, Any]],
    return_tensors: str,
) -> tuple[dict[str, Any], str, list[Any] | None]:
    """The features without their labels padded by ``collator.tokenizer.pad`` with the collator's settings,
    the labels' key (``label`` or ``labels``) and the labels themselves (None when the features have none)."""
    name = _label_name(features)
    labels = [f[name] for f in features] if name in features[0] else None
    batch = dict(
        collator.tokenizer.pad(
            [{k: v for k, v in f.items() if k != name} for f in features],
            padding=collator.padding,
            max_length=collator.max_length,
            pad_to_multiple_of=collator.pad_to_multiple_of,
            return_tensors=return_tensors,
        )
    )
    return batch, name, labels


@dataclass
class DataCollatorForTokenClassification:
    """Pad the inputs with ``tokenizer.pad`` and the per-token labels (``labels`` or ``label``, kept under
    their name) with ``label_pad_token_id`` to the same length, on the tokenizer's padding side."""

    tokenizer: Any
    padding: bool | str = True
    max_length: int | None = None
    pad_to_multiple_of: int | None = None
    label_pad_token_id: int = -100
    return_tensors: str = "pt"

    def __post_init__(self) -> None:
        _check_return_tensors("DataCollatorForTokenClassification", self.return_tensors)

    def __call__(
        self, features: Sequence[Mapping[str, Any]], return_tensors: str | None = None
    ) -> dict[str, Any]:
        return_tensors = return_tensors or self.return_tensors
        _check_return_tensors("DataCollatorForTokenClassification", return_tensors)
        batch, name, labels = _pad_apart_from_labels(self, features, return_tensors)
        if labels is None:
            return batch
        length = batch["input_ids"].shape[1]
        rows = [_as_list(label) for label in labels]
        too_long = [i for i, row in enumerate(rows) if len(row) > length]
        if too_long:
            raise XfValueError(
                f"DataCollatorForTokenClassification: feature {too_long[0]} has {len(rows[too_long[0]])} "
                f"labels but its padded input has {length} tokens; give one label per token (truncate the "
                "labels with the inputs)."
            )
        padded = _pad_rows(rows, length, self.label_pad_token_id, self.tokenizer.padding_side)
        batch[name] = padded.numpy() if return_tensors == "np" else padded
        return batch


@dataclass
class DataCollatorForSeq2Seq:
    """Pad the inputs with ``tokenizer.pad`` and the target ``labels`` on their own (to the longest labels,
    ``max_length`` under ``padding="max_length"``, rounded up to ``pad_to_multiple_of``) with
    ``label_pad_token_id``; when ``model`` has ``prepare_decoder_input_ids_from_labels``, add
    ``decoder_input_ids`` built from the padded labels (shifted right, as the model would do itself)."""

    tokenizer: Any
    model: Any | None = None
    padding: bool | str = True
    max_length: int | None = None
    pad_to_multiple_of: int | None = None
    label_pad_token_id: int = -100
    return_tensors: str = "pt"

    def __post_init__(self) -> None:
        _check_return_tensors("DataCollatorForSeq2Seq", self.return_tensors)

    def __call__(
        self, features: Sequence[Mapping[str, Any]], return_tensors: str | None = None
    ) -> dict[str, Any]:
        return_tensors = return_tensors or self.return_tensors
        _check_return_tensors("DataCollatorForSeq2Seq", return_tensors)
        batch, _, labels = _pad_apart_from_labels(self, features, return_tensors)
        if labels is not None and all(label is None for label in labels):
            labels = None
        if labels is None:
            batch["labels"] = None  # transformers' collator returns the key, set to None
            return batch
        rows = [_as_list(label) for label in labels]
        if self.padding is False or self.padding == "do_not_pad":
            length = len(rows[0])
            if any(len(row) != length for row in rows):
                raise XfValueError(
                    "DataCollatorForSeq2Seq(padding=False): the labels have different lengths "
                    f"({sorted({len(r) for r in rows})}) and cannot form one tensor; use padding=True."
                )
        elif self.padding == "max_length" and self.max_length is not None:
            length = self.max_length
        else:
            length = max(len(row) for row in rows)
        if self.pad_to_multiple_of is not None and self.padding not in (False, "do_not_pad"):
            length = -(-length // self.pad_to_multiple_of) * self.pad_to_multiple_of
        if any(len(row) > length for row in rows):
            raise XfValueError(
                f"DataCollatorForSeq2Seq: some labels are longer than max_length={self.max_length}; truncate "
                "the targets when tokenizing (text_target=..., truncation=True, max_length=...)."
            )
        padded = _pad_rows(rows, length, self.label_pad_token_id, self.tokenizer.padding_side)
        prepare = getattr(self.model, "prepare_decoder_input_ids_from_labels", None)
        if return_tensors == "np":
            batch["labels"] = padded.numpy()
            if prepare is not None:
                batch["decoder_input_ids"] = prepare(labels=batch["labels"])
            return batch
        batch["labels"] = padded
        if prepare is not None:
            batch["decoder_input_ids"] = prepare(labels=padded)
        return batch
