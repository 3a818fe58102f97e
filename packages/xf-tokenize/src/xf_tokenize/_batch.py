"""``BatchEncoding``: the dict a tokenizer returns, with attribute access, tensors and token/word/char maps.

Values are lists (or numpy arrays / torch tensors after ``convert_to_tensors``). When the result came from
the Rust backend, ``encodings`` holds one ``tokenizers.Encoding`` per row and the alignment helpers
(``word_ids``, ``char_to_token``, ...) read from it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from xf_core.errors import XfValueError
from xf_core.lazy import require

if TYPE_CHECKING:
    from tokenizers import Encoding

__all__ = ["BatchEncoding", "CharSpan", "TokenSpan", "to_list"]

TensorType = Literal["np", "pt"]

# What each key of a BatchEncoding reads from a backend ``tokenizers.Encoding``, in transformers' key order.
_FROM_ENCODING: dict[str, Callable[[Encoding], Any]] = {
    "input_ids": lambda e: e.ids,
    "token_type_ids": lambda e: e.type_ids,
    "attention_mask": lambda e: e.attention_mask,
    "special_tokens_mask": lambda e: e.special_tokens_mask,
    "offset_mapping": lambda e: e.offsets,
    "length": lambda e: len(e.ids),
}


class CharSpan(NamedTuple):
    """Characters ``[start, end)`` of the original string."""

    start: int
    end: int


class TokenSpan(NamedTuple):
    """Tokens ``[start, end)`` of an encoded sequence."""

    start: int
    end: int


class BatchEncoding(dict[str, Any]):
    """A ``dict`` of model inputs (``input_ids``, ``attention_mask``, ...) plus the backend encodings."""

    def __init__(
        self,
        data: dict[str, Any] | None = None,
        encodings: list[Encoding] | None = None,
        *,
        tensor_type: TensorType | str | None = None,
        prepend_batch_axis: bool = False,
    ) -> None:
        super().__init__(data or {})
        self._encodings = encodings
        self.convert_to_tensors(tensor_type, prepend_batch_axis=prepend_batch_axis)

    @classmethod
    def from_encodings(
        cls, encodings: list[Encoding], *, keys: Collection[str], overflowing: bool = False
    ) -> BatchEncoding:
        """A batch of backend encodings: ``input_ids`` and the other ``keys`` (``token_type_ids``,
        ``attention_mask``, ``special_tokens_mask``, ``offset_mapping``, ``length``). With ``overflowing``
        each encoding's overflowing windows become rows after it, and ``overflow_to_sample_mapping`` says
        which input each row came from."""
        rows = encodings
        if overflowing:
            rows = [e for enc in encodings for e in (enc, *enc.overflowing)]
        data = {
            key: [get(e) for e in rows]
            for key, get in _FROM_ENCODING.items()
            if key == "input_ids" or key in keys
        }
        if overflowing:
            data["overflow_to_sample_mapping"] = [
                i for i, enc in enumerate(encodings) for _ in range(1 + len(enc.overflowing))
            ]
        return cls(data, rows)

    # --- dict and attribute access -------------------------------------------------------------------------
    def __getitem__(self, item: Any) -> Any:
        if isinstance(item, str):
            return dict.__getitem__(self, item)
        if isinstance(item, int) and self._encodings is not None:
            return self._encodings[item]
        if isinstance(item, slice):
            return {key: value[item] for key, value in self.items()}
        raise KeyError(
            f"{item!r}: index a BatchEncoding by key (e.g. 'input_ids'), or by int for an encoding"
        )

    def __getattr__(self, item: str) -> Any:
        if item.startswith("_"):
            raise AttributeError(item)
        try:
            return dict.__getitem__(self, item)
        except KeyError:
            raise AttributeError(
                f"BatchEncoding has no key or attribute {item!r}; keys: {list(self)}"
            ) from None

    def __getstate__(self) -> dict[str, Any]:
        return {"data": dict(self), "encodings": self._encodings}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.update(state["data"])
        self._encodings = state["encodings"]

    @property
    def data(self) -> dict[str, Any]:
        return dict(self)

    @property
    def is_fast(self) -> bool:
        return self._encodings is not None

    @property
    def encodings(self) -> list[Encoding] | None:
        """The ``tokenizers.Encoding`` of each row, when the batch came from the backend."""
        return self._encodings

    @property
    def n_sequences(self) -> int | None:
        return self._encodings[0].n_sequences if self._encodings else None

    # --- alignment -----------------------------------------------------------------------------------------
    def _encoding(self, batch_index: int) -> Encoding:
        if not self._encodings:
            raise XfValueError(
                "this BatchEncoding has no backend encodings (it was built by `pad` or from plain lists); "
                "call the tokenizer on text to get token/word/char alignment."
            )
        return self._encodings[batch_index]

    def _split(self, batch_or_index: int, index: int | None) -> tuple[int, int]:
        if index is None:
            return 0, batch_or_index
        return batch_or_index, index

    def tokens(self, batch_index: int = 0) -> list[str]:
        return self._encoding(batch_index).tokens

    def sequence_ids(self, batch_index: int = 0) -> list[int | None]:
        return self._encoding(batch_index).sequence_ids

    def word_ids(self, batch_index: int = 0) -> list[int | None]:
        return self._encoding(batch_index).word_ids

    def token_to_sequence(self, batch_or_token_index: int, token_index: int | None = None) -> int | None:
        batch, token = self._split(batch_or_token_index, token_index)
        enc = self._encoding(batch)
        return enc.token_to_sequence(token if token >= 0 else len(enc) + token)

    def token_to_word(self, batch_or_token_index: int, token_index: int | None = None) -> int | None:
        batch, token = self._split(batch_or_token_index, token_index)
        enc = self._encoding(batch)
        return enc.token_to_word(token if token >= 0 else len(enc) + token)

    def word_to_tokens(
        self, batch_or_word_index: int, word_index: int | None = None, sequence_index: int = 0
    ) -> TokenSpan | None:
        batch, word = self._split(batch_or_word_index, word_index)
        span = self._encoding(batch).word_to_tokens(word, sequence_index)
        return TokenSpan(*span) if span is not None else None

    def token_to_chars(self, batch_or_token_index: int, token_index: int | None = None) -> CharSpan | None:
        batch, token = self._split(batch_or_token_index, token_index)
        span = self._encoding(batch).token_to_chars(token)
        return CharSpan(*span) if span is not None else None

    def char_to_token(
        self, batch_or_char_index: int, char_index: int | None = None, sequence_index: int = 0
    ) -> int | None:
        batch, char = self._split(batch_or_char_index, char_index)
        return self._encoding(batch).char_to_token(char, sequence_index)

    def word_to_chars(
        self, batch_or_word_index: int, word_index: int | None = None, sequence_index: int = 0
    ) -> CharSpan | None:
        batch, word = self._split(batch_or_word_index, word_index)
        span = self._encoding(batch).word_to_chars(word, sequence_index)
        return CharSpan(*span) if span is not None else None

    def char_to_word(
        self, batch_or_char_index: int, char_index: int | None = None, sequence_index: int = 0
    ) -> int | None:
        batch, char = self._split(batch_or_char_index, char_index)
        return self._encoding(batch).char_to_word(char, sequence_index)

    # --- tensors -------------------------------------------------------------------------------------------
    def convert_to_tensors(
        self, tensor_type: TensorType | str | None = None, *, prepend_batch_axis: bool = False
    ) -> BatchEncoding:
        """Turn every value into a numpy array (``"np"``) or a torch tensor (``"pt"``), in place."""
        if tensor_type is None:
            return self
        if tensor_type not in ("np", "pt"):
            raise XfValueError(f"return_tensors={tensor_type!r} is not supported; use None, 'np' or 'pt'.")
        import numpy as np

        torch = require("torch", purpose="return_tensors='pt'") if tensor_type == "pt" else None
        for key, value in self.items():
            if prepend_batch_axis:
                value = [value]
            if torch is not None and isinstance(value, torch.Tensor):
                continue
            if torch is None and isinstance(value, np.ndarray):
                continue
            ragged = (
                isinstance(value, (list, tuple))
                and len(value) > 0
                and isinstance(value[0], (list, tuple, np.ndarray))
                and len({len(row) for row in value}) > 1
            )
            try:
                if ragged and torch is None:
                    # As transformers: ragged rows become a 1-d object array of int arrays.
                    array = np.asarray([np.asarray(row) for row in value], dtype=object)
                elif ragged:
                    raise ValueError("ragged")
                else:
                    array = np.asarray(value)
                    if array.size == 0:
                        array = array.astype(np.int64)
            except ValueError as e:
                raise XfValueError(
                    f"cannot make a tensor of {key!r}: its rows have different lengths; pass padding=True "
                    "(and truncation=True for texts longer than the model accepts)."
                ) from e
            self[key] = torch.from_numpy(array) if torch is not None else array
        return self

    def to(self, device: Any, *, non_blocking: bool = False) -> BatchEncoding:
        """Move every torch tensor to ``device`` (other values are kept as they are); returns ``self``."""
        torch = require("torch", purpose="BatchEncoding.to")
        for key, value in self.items():
            if isinstance(value, torch.Tensor):
                self[key] = value.to(device=device, non_blocking=non_blocking)
        return self


def to_list(value: Any) -> Any:
    """Plain Python lists/ints from numpy arrays, torch tensors, or nested lists of them."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [to_list(v) for v in value]
    return value
