"""Data collators: lists of examples (dicts) -> a batch of tensors, as transformers' collators.

``default_data_collator`` stacks features that already have one length; ``DataCollatorWithPadding`` pads
with the tokenizer's ``pad``; ``DataCollatorForLanguageModeling`` pads and builds labels, masking tokens for
MLM (with transformers' random draws, in the same order, so a seed gives the same masks) or copying the
inputs for causal LM (padding ignored as -100).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from xf_core.errors import XfValueError

__all__ = ["DataCollatorForLanguageModeling", "DataCollatorWithPadding", "default_data_collator"]


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
    ``input_ids`` with padding set to -100 (the model shifts them)."""

    tokenizer: Any
    mlm: bool = True
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
        self.generator = torch.Generator().manual_seed(self.seed) if self.seed is not None else None

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
        if self.mlm:
            batch["input_ids"], batch["labels"] = self.mask_tokens(batch["input_ids"], special)
        else:
            labels = batch["input_ids"].clone()
            if self.tokenizer.pad_token_id is not None:
                labels[labels == self.tokenizer.pad_token_id] = -100
            batch["labels"] = labels
        return batch

    def mask_tokens(
        self, inputs: torch.Tensor, special_tokens_mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Choose ``mlm_probability`` of the non-special tokens as targets; of those, replace
        ``mask_replace_prob`` with the mask token, ``random_replace_prob`` with a random token, keep the rest."""
        labels = inputs.clone()
        if special_tokens_mask is None:  # already-encoded ids: special means one of the special token ids
            special_tokens_mask = torch.isin(labels, torch.tensor(self.tokenizer.all_special_ids))
        probability = torch.full(labels.shape, self.mlm_probability)
        probability.masked_fill_(special_tokens_mask.bool(), 0.0)
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
