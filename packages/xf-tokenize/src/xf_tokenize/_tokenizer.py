"""``PreTrainedTokenizerFast``: transformers' tokenizer API over a Rust ``tokenizers.Tokenizer``.

The backend does the work (normalize → pre-tokenize → model → post-process, padding and truncation in Rust);
this class holds what transformers keeps beside it (special tokens, ``model_max_length``, sides, input names,
chat template) and turns calls into backend settings and backend results into a :class:`BatchEncoding`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from tokenizers import AddedToken, Tokenizer

from xf_core.logging import get_logger
from xf_tokenize._batch import BatchEncoding
from xf_tokenize.errors import ChatTemplateError, PaddingError, TruncationError

if TYPE_CHECKING:
    from xf_tokenize._batch import TensorType

__all__ = [
    "SPECIAL_TOKENS_ATTRIBUTES",
    "VERY_LARGE_INTEGER",
    "PreTrainedTokenizerFast",
]

logger = get_logger(__name__)

SPECIAL_TOKENS_ATTRIBUTES = (
    "bos_token",
    "eos_token",
    "unk_token",
    "sep_token",
    "pad_token",
    "cls_token",
    "mask_token",
)
VERY_LARGE_INTEGER = int(1e30)  # "no limit", as transformers writes it
_LARGE_INTEGER = int(1e20)
_PADDING = ("longest", "max_length", "do_not_pad")
_TRUNCATION = ("longest_first", "only_first", "only_second", "do_not_truncate")
_DEFAULT_INPUT_NAMES = ("input_ids", "attention_mask")

Padding = bool | Literal["longest", "max_length", "do_not_pad"]
Truncation = bool | Literal["longest_first", "only_first", "only_second", "do_not_truncate"] | None
Token = str | AddedToken


def _special_token(value: Any, *, key: str) -> Token | None:
    """A special token from a config value: a string, an ``AddedToken`` or its serialized dict."""
    if value is None or isinstance(value, (str, AddedToken)):
        return value
    if isinstance(value, Mapping) and "content" in value:
        fields = {k: v for k, v in value.items() if k in ("single_word", "lstrip", "rstrip", "normalized")}
        return AddedToken(value["content"], special=True, **fields)
    raise TypeError(f"special token {key} must be a string or an AddedToken, got {type(value).__name__}")


def _is_batched(text: Any, is_split_into_words: bool) -> bool:
    if is_split_into_words:
        return isinstance(text, (list, tuple)) and len(text) > 0 and isinstance(text[0], (list, tuple))
    return isinstance(text, (list, tuple))


def _check_text(text: Any, name: str) -> None:
    ok = isinstance(text, str)
    if isinstance(text, (list, tuple)):
        first = text[0] if text else ""
        if isinstance(first, (list, tuple)):
            first = first[0] if first else ""
        ok = isinstance(first, str)
    if not ok:
        raise TypeError(
            f"{name} must be a str, a list of str (a batch, or one pre-tokenized example) or a list of lists "
            f"of str (a batch of pre-tokenized examples); got {type(text).__name__}"
        )


def _token_property(key: str) -> property:
    return property(
        lambda self: self._get_special(key),
        lambda self, value: self._set_special(key, value),
        doc=f"The {key.replace('_', ' ')} as a string (None when unset); assigning adds it to the vocabulary.",
    )


def _id_property(key: str) -> property:
    def set_id(self: PreTrainedTokenizerFast, index: int | None) -> None:
        self._set_special(key, None if index is None else self._tokenizer.id_to_token(index))

    return property(
        lambda self: self._get_special_id(key), set_id, doc=f"The id of the {key.replace('_', ' ')}."
    )


class PreTrainedTokenizerFast:
    """A tokenizer with the transformers API; ``backend_tokenizer`` is the Rust ``tokenizers.Tokenizer``.

    Build one with :meth:`from_pretrained` (or ``AutoTokenizer.from_pretrained``), or directly from a
    ``tokenizers.Tokenizer`` and the settings a ``tokenizer_config.json`` would hold.
    """

    padding_side: str = "right"
    truncation_side: str = "right"

    def __init__(
        self,
        tokenizer_object: Tokenizer | None = None,
        *,
        tokenizer_file: str | os.PathLike[str] | None = None,
        bos_token: Token | None = None,
        eos_token: Token | None = None,
        unk_token: Token | None = None,
        sep_token: Token | None = None,
        pad_token: Token | None = None,
        cls_token: Token | None = None,
        mask_token: Token | None = None,
        extra_special_tokens: Sequence[Token] | None = None,
        model_specific_special_tokens: Mapping[str, Token] | None = None,
        model_max_length: int | None = None,
        padding_side: Literal["left", "right"] = "right",
        truncation_side: Literal["left", "right"] = "right",
        model_input_names: Sequence[str] | None = None,
        clean_up_tokenization_spaces: bool = False,
        split_special_tokens: bool = False,
        chat_template: str | dict[str, str] | None = None,
        add_bos_token: bool | None = None,
        add_eos_token: bool | None = None,
        tokenizer_class: str | None = None,
        name_or_path: str = "",
        init_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        if (tokenizer_object is None) == (tokenizer_file is None):
            raise TypeError("pass exactly one of tokenizer_object (a tokenizers.Tokenizer) or tokenizer_file")
        if tokenizer_object is None:
            from xf_tokenize._loading import read_tokenizer_file

            tokenizer_object = read_tokenizer_file(Path(tokenizer_file))  # type: ignore[arg-type]
        self._tokenizer = tokenizer_object
        self._special_tokens_map: dict[str, Token | None] = {}
        for key, value in zip(
            SPECIAL_TOKENS_ATTRIBUTES,
            (bos_token, eos_token, unk_token, sep_token, pad_token, cls_token, mask_token),
        ):
            self._special_tokens_map[key] = _special_token(value, key=key)
        for key, value in (model_specific_special_tokens or {}).items():
            if not key.endswith("_token") or key in ("extra_special_tokens", "additional_special_tokens"):
                raise ValueError(f"model-specific special token names end with '_token', got {key!r}")
            self._special_tokens_map[key] = _special_token(value, key=key)
        self._extra_special_tokens: list[Token] = [
            _special_token(t, key="extra_special_tokens") for t in (extra_special_tokens or [])
        ]
        self.model_max_length = VERY_LARGE_INTEGER if model_max_length is None else int(model_max_length)
        for name, side in (("padding_side", padding_side), ("truncation_side", truncation_side)):
            if side not in ("left", "right"):
                raise ValueError(f"{name} must be 'left' or 'right', got {side!r}")
        self.padding_side = padding_side
        self.truncation_side = truncation_side
        self.model_input_names = list(model_input_names or _DEFAULT_INPUT_NAMES)
        self.clean_up_tokenization_spaces = clean_up_tokenization_spaces
        self.split_special_tokens = split_special_tokens
        self.chat_template = chat_template
        self.tokenizer_class = tokenizer_class
        self.name_or_path = name_or_path
        # Keys of tokenizer_config.json xf does not interpret; written back by save_pretrained.
        self.init_kwargs: dict[str, Any] = dict(init_kwargs or {})
        self._add_bos_token = bool(add_bos_token)
        self._add_eos_token = bool(add_eos_token)
        self._pad_token_type_id = 0
        self._warned_bpe_cleanup = False
        self._warned_long = False

        self._tokenizer.no_truncation()
        self._tokenizer.no_padding()
        self._tokenizer.encode_special_tokens = split_special_tokens
        self._register_special_tokens()
        if add_bos_token is not None or add_eos_token is not None:
            self.update_post_processor()

    # --- special tokens ------------------------------------------------------------------------------------
    def _register_special_tokens(self) -> None:
        """Make every special token an added special token of the backend (as transformers does)."""
        known = {str(t) for t in self._tokenizer.get_added_tokens_decoder().values()}
        missing: list[AddedToken] = []
        for token in [*self._special_tokens_map.values(), *self._extra_special_tokens]:
            if token is None or str(token) in known:
                continue
            if isinstance(token, str):
                token = AddedToken(token, special=True, normalized=False)
            missing.append(token)
            known.add(str(token))
        if missing:
            self._tokenizer.add_special_tokens(missing)

    def _get_special(self, key: str) -> str | None:
        value = self._special_tokens_map.get(key)
        return None if value is None else str(value)

    def _set_special(self, key: str, value: Token | None) -> None:
        self._special_tokens_map[key] = _special_token(value, key=key)
        if value is not None:
            self._register_special_tokens()

    def _get_special_id(self, key: str) -> int | None:
        token = self._get_special(key)
        return None if token is None else self.convert_tokens_to_ids(token)

    bos_token = _token_property("bos_token")
    eos_token = _token_property("eos_token")
    unk_token = _token_property("unk_token")
    sep_token = _token_property("sep_token")
    pad_token = _token_property("pad_token")
    cls_token = _token_property("cls_token")
    mask_token = _token_property("mask_token")
    bos_token_id = _id_property("bos_token")
    eos_token_id = _id_property("eos_token")
    unk_token_id = _id_property("unk_token")
    sep_token_id = _id_property("sep_token")
    pad_token_id = _id_property("pad_token")
    cls_token_id = _id_property("cls_token")
    mask_token_id = _id_property("mask_token")

    def __getattr__(self, name: str) -> Any:
        # Model-specific named tokens (``image_token`` and ``image_token_id``), read from tokenizer_config.json.
        named = self.__dict__.get("_special_tokens_map", {})
        key = name.removesuffix("_id")
        if key not in SPECIAL_TOKENS_ATTRIBUTES and key in named:
            return self._get_special_id(key) if name.endswith("_id") else self._get_special(key)
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    @property
    def pad_token_type_id(self) -> int:
        return self._pad_token_type_id

    @property
    def extra_special_tokens(self) -> list[str]:
        return [str(t) for t in self._extra_special_tokens]

    @property
    def additional_special_tokens(self) -> list[str]:
        """The older name of :attr:`extra_special_tokens`."""
        return self.extra_special_tokens

    @property
    def extra_special_tokens_ids(self) -> list[int]:
        return self.convert_tokens_to_ids(self.extra_special_tokens)

    @property
    def special_tokens_map(self) -> dict[str, str]:
        """The named special tokens that are set, as strings."""
        return {k: str(v) for k, v in self._special_tokens_map.items() if v is not None}

    @property
    def all_special_tokens(self) -> list[str]:
        seen: dict[str, None] = {}
        for token in [*self._special_tokens_map.values(), *self._extra_special_tokens]:
            if token is not None:
                seen.setdefault(str(token))
        return list(seen)

    @property
    def all_special_ids(self) -> list[int]:
        return self.convert_tokens_to_ids(self.all_special_tokens)

    def add_tokens(self, new_tokens: Token | Sequence[Token], *, special_tokens: bool = False) -> int:
        """Add tokens to the vocabulary (as whole-token matches); returns how many were new."""
        if not new_tokens:
            return 0
        tokens = [new_tokens] if isinstance(new_tokens, (str, AddedToken)) else list(new_tokens)
        if special_tokens:
            return self._tokenizer.add_special_tokens(tokens)
        return self._tokenizer.add_tokens(tokens)

    def add_special_tokens(
        self,
        special_tokens_dict: Mapping[str, Token | Sequence[Token]],
        *,
        replace_extra_special_tokens: bool = True,
    ) -> int:
        """Set named special tokens (``{"pad_token": "[PAD]"}``) and ``extra_special_tokens``; add them."""
        to_add: list[AddedToken] = []
        for key, value in special_tokens_dict.items():
            if key == "additional_special_tokens":
                key = "extra_special_tokens"
            if key == "extra_special_tokens":
                if isinstance(value, (str, AddedToken)) or not all(
                    isinstance(t, (str, AddedToken)) for t in value
                ):
                    raise ValueError(
                        f"extra_special_tokens must be a list of str or AddedToken, got {value!r}"
                    )
                new = [
                    AddedToken(t, special=True, normalized=False) if isinstance(t, str) else t
                    for t in value
                    if replace_extra_special_tokens or str(t) not in self.extra_special_tokens
                ]
                if replace_extra_special_tokens and new:
                    self._extra_special_tokens = list(new)
                else:
                    self._extra_special_tokens.extend(new)
                to_add.extend(new)
            elif key in SPECIAL_TOKENS_ATTRIBUTES:
                if not isinstance(value, (str, AddedToken)):
                    raise ValueError(f"{key} must be a str or an AddedToken, got {value!r}")
                token = AddedToken(value, special=True, normalized=False) if isinstance(value, str) else value
                self._special_tokens_map[key] = token
                to_add.append(token)
            else:
                raise ValueError(
                    f"{key!r} is not a special token name; use one of {', '.join(SPECIAL_TOKENS_ATTRIBUTES)} "
                    "or extra_special_tokens"
                )
        return self.add_tokens(to_add, special_tokens=True)

    @property
    def add_bos_token(self) -> bool:
        return self._add_bos_token

    @add_bos_token.setter
    def add_bos_token(self, value: bool) -> None:
        self._add_bos_token = bool(value)
        self.update_post_processor()

    @property
    def add_eos_token(self) -> bool:
        return self._add_eos_token

    @add_eos_token.setter
    def add_eos_token(self, value: bool) -> None:
        self._add_eos_token = bool(value)
        self.update_post_processor()

    def update_post_processor(self) -> None:
        """Rebuild the post-processor from ``add_bos_token``/``add_eos_token`` (Llama-style templates)."""
        from tokenizers import processors

        bos, eos = self.bos_token, self.eos_token
        add_bos = self._add_bos_token and bos is not None
        add_eos = self._add_eos_token and eos is not None
        single = f"{bos + ':0 ' if add_bos else ''}$A:0{' ' + eos + ':0' if add_eos else ''}"
        pair = f"{single}{' ' + bos + ':1' if add_bos else ''} $B:1{' ' + eos + ':1' if add_eos else ''}"
        special = []
        if add_bos:
            special.append((bos, self.bos_token_id))
        if add_eos:
            special.append((eos, self.eos_token_id))
        self._tokenizer.post_processor = processors.TemplateProcessing(
            single=single, pair=pair, special_tokens=special
        )

    # --- vocabulary ----------------------------------------------------------------------------------------
    @property
    def backend_tokenizer(self) -> Tokenizer:
        """The Rust tokenizer: its ``normalizer``, ``pre_tokenizer``, ``model``, ``decoder`` are usable alone."""
        return self._tokenizer

    @property
    def is_fast(self) -> bool:
        return True

    @property
    def vocab_size(self) -> int:
        """Size of the base vocabulary, without added tokens."""
        return self._tokenizer.get_vocab_size(with_added_tokens=False)

    def __len__(self) -> int:
        return self._tokenizer.get_vocab_size(with_added_tokens=True)

    def get_vocab(self) -> dict[str, int]:
        return self._tokenizer.get_vocab(with_added_tokens=True)

    @property
    def vocab(self) -> dict[str, int]:
        return self.get_vocab()

    @property
    def added_tokens_decoder(self) -> dict[int, AddedToken]:
        return dict(sorted(self._tokenizer.get_added_tokens_decoder().items()))

    @property
    def added_tokens_encoder(self) -> dict[str, int]:
        return {str(t): i for i, t in self.added_tokens_decoder.items()}

    def get_added_vocab(self) -> dict[str, int]:
        return self.added_tokens_encoder

    def convert_tokens_to_ids(self, tokens: str | Sequence[str] | None) -> Any:
        """A token's id (or a list's ids); a token not in the vocabulary gives the ``unk_token`` id."""
        if tokens is None:
            return None
        if isinstance(tokens, str):
            index = self._tokenizer.token_to_id(tokens)
            if index is None:
                unk = self._get_special("unk_token")
                return None if unk is None else self._tokenizer.token_to_id(unk)
            return index
        return [self.convert_tokens_to_ids(t) for t in tokens]

    def convert_ids_to_tokens(self, ids: int | Sequence[int], *, skip_special_tokens: bool = False) -> Any:
        """An id's token (or a list's tokens); with ``skip_special_tokens`` special ids are left out."""
        if isinstance(ids, int):
            return self._tokenizer.id_to_token(ids)
        skip = set(self.all_special_ids) if skip_special_tokens else set()
        return [self._tokenizer.id_to_token(int(i)) for i in ids if int(i) not in skip]

    def convert_tokens_to_string(self, tokens: Sequence[str]) -> str:
        decoder = self._tokenizer.decoder
        return decoder.decode(list(tokens)) if decoder is not None else " ".join(tokens)

    def num_special_tokens_to_add(self, pair: bool = False) -> int:
        return self._tokenizer.num_special_tokens_to_add(pair)

    @property
    def max_len_single_sentence(self) -> int:
        return self.model_max_length - self.num_special_tokens_to_add(pair=False)

    @property
    def max_len_sentences_pair(self) -> int:
        return self.model_max_length - self.num_special_tokens_to_add(pair=True)

    # --- encoding ------------------------------------------------------------------------------------------
    def _strategies(
        self,
        padding: Padding | str,
        truncation: Truncation | str,
        max_length: int | None,
        pad_to_multiple_of: int | None,
    ) -> tuple[str, str, int | None]:
        if max_length is not None and (
            isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 0
        ):
            raise TruncationError(f"max_length must be a non-negative int or None, got {max_length!r}")
        if pad_to_multiple_of is not None and (
            isinstance(pad_to_multiple_of, bool)
            or not isinstance(pad_to_multiple_of, int)
            or pad_to_multiple_of < 1
        ):
            raise PaddingError(
                f"pad_to_multiple_of must be a positive int or None, got {pad_to_multiple_of!r}"
            )
        # transformers: max_length alone switches truncation on.
        if max_length is not None and padding is False and truncation is None:
            truncation = "longest_first"
        if padding is True:
            pad = "longest"
        elif padding is False or padding is None:
            pad = "do_not_pad"
        else:
            pad = str(getattr(padding, "value", padding))
            if pad not in _PADDING:
                raise PaddingError(
                    f"padding={padding!r} is not a padding strategy; use True/'longest', 'max_length' or "
                    "False/'do_not_pad'."
                )
        if truncation is True:
            trunc = "longest_first"
        elif truncation is False or truncation is None:
            trunc = "do_not_truncate"
        else:
            trunc = str(getattr(truncation, "value", truncation))
            if trunc not in _TRUNCATION:
                raise TruncationError(
                    f"truncation={truncation!r} is not a truncation strategy; use True/'longest_first', "
                    "'only_first', 'only_second' or False/'do_not_truncate'."
                )
        if max_length is None:
            unlimited = self.model_max_length > _LARGE_INTEGER
            if pad == "max_length":
                if unlimited:
                    pad = "do_not_pad"
                else:
                    max_length = self.model_max_length
            if trunc != "do_not_truncate":
                if unlimited:
                    trunc = "do_not_truncate"
                else:
                    max_length = self.model_max_length
        if pad != "do_not_pad" and self.pad_token_id is None:
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
        return pad, trunc, max_length

    def _configure_backend(
        self,
        pad: str,
        trunc: str,
        max_length: int | None,
        stride: int,
        pad_to_multiple_of: int | None,
        padding_side: str | None,
        pair: bool,
    ) -> None:
        backend = self._tokenizer
        if trunc == "do_not_truncate":
            if backend.truncation is not None:
                backend.no_truncation()
        else:
            assert max_length is not None
            specials = backend.num_special_tokens_to_add(pair)
            if max_length < specials:
                raise TruncationError(
                    f"max_length={max_length} cannot hold the {specials} special tokens this tokenizer adds to "
                    f"a {'pair' if pair else 'single sequence'}; pass max_length >= {specials}, or "
                    "add_special_tokens=False."
                )
            if stride and stride >= max_length - specials:
                raise TruncationError(
                    f"stride={stride} must be smaller than max_length={max_length} minus the {specials} special "
                    f"tokens ({max_length - specials}); pass a smaller stride or a larger max_length."
                )
            target = {
                "max_length": max_length,
                "stride": stride,
                "strategy": trunc,
                "direction": self.truncation_side,
            }
            if backend.truncation != target:
                try:
                    backend.enable_truncation(**target)
                except Exception as e:
                    raise TruncationError(f"cannot truncate with {target}: {e}") from e
        if pad == "do_not_pad":
            if backend.padding is not None:
                backend.no_padding()
        else:
            side = padding_side if padding_side is not None else self.padding_side
            if side not in ("left", "right"):
                raise PaddingError(f"padding_side must be 'left' or 'right', got {side!r}")
            target = {
                "length": max_length if pad == "max_length" else None,
                "pad_to_multiple_of": pad_to_multiple_of,
                "pad_id": self.pad_token_id,
                "pad_token": self.pad_token,
                "pad_type_id": self._pad_token_type_id,
                "direction": side,
            }
            if backend.padding != target:
                backend.enable_padding(**target)

    def __call__(
        self,
        text: str | Sequence[str] | Sequence[Sequence[str]] | None = None,
        text_pair: str | Sequence[str] | Sequence[Sequence[str]] | None = None,
        *,
        add_special_tokens: bool = True,
        padding: Padding | str = False,
        truncation: Truncation | str = None,
        max_length: int | None = None,
        stride: int = 0,
        is_split_into_words: bool = False,
        pad_to_multiple_of: int | None = None,
        padding_side: Literal["left", "right"] | None = None,
        return_tensors: TensorType | str | None = None,
        return_token_type_ids: bool | None = None,
        return_attention_mask: bool | None = None,
        return_overflowing_tokens: bool = False,
        return_special_tokens_mask: bool = False,
        return_offsets_mapping: bool = False,
        return_length: bool = False,
        split_special_tokens: bool | None = None,
        verbose: bool = True,
    ) -> BatchEncoding:
        """Tokenize a string, a pair, a batch or pre-tokenized words into a :class:`BatchEncoding`."""
        if text is None:
            raise ValueError("pass the text to tokenize as the first argument")
        _check_text(text, "text")
        if text_pair is not None:
            _check_text(text_pair, "text_pair")
        pad, trunc, max_length = self._strategies(padding, truncation, max_length, pad_to_multiple_of)
        batched = _is_batched(text, is_split_into_words)
        if batched:
            if isinstance(text_pair, str):
                raise TypeError("text is a batch, so text_pair must be a list of the same length, not a str")
            if text_pair is not None and len(text) != len(text_pair):
                raise ValueError(
                    f"text has {len(text)} items but text_pair has {len(text_pair)}; pass one pair per text"
                )
            inputs = list(zip(text, text_pair)) if text_pair is not None else list(text)
            has_pair = text_pair is not None
        else:
            inputs = [(text, text_pair)] if text_pair else [text]
            has_pair = bool(text_pair)
        self._configure_backend(pad, trunc, max_length, stride, pad_to_multiple_of, padding_side, has_pair)
        split = self.split_special_tokens if split_special_tokens is None else split_special_tokens
        if self._tokenizer.encode_special_tokens != split:
            self._tokenizer.encode_special_tokens = split
        try:
            encodings = self._tokenizer.encode_batch(
                inputs, add_special_tokens=add_special_tokens, is_pretokenized=is_split_into_words
            )
        except BaseException as e:  # a Rust panic (pyo3 PanicException) is a BaseException
            if "runcat" in str(e) or "stride" in str(e):
                raise TruncationError(
                    f"cannot truncate to max_length={max_length} with stride={stride} and strategy {trunc!r}: "
                    f"{str(e).splitlines()[0]}. Pass a larger max_length, a smaller stride, or another "
                    "truncation strategy."
                ) from e
            raise
        out = self._to_batch_encoding(
            encodings,
            return_token_type_ids=return_token_type_ids,
            return_attention_mask=return_attention_mask,
            return_overflowing_tokens=return_overflowing_tokens,
            return_special_tokens_mask=return_special_tokens_mask,
            return_offsets_mapping=return_offsets_mapping,
            return_length=return_length,
        )
        if max_length is None and verbose and trunc == "do_not_truncate" and not self._warned_long:
            longest = max((len(ids) for ids in out["input_ids"]), default=0)
            if longest > self.model_max_length:
                self._warned_long = True  # once per tokenizer, as transformers
                logger.warning(
                    "a sequence of %d tokens is longer than model_max_length=%d; running it through the model "
                    "may fail. Pass truncation=True to cut it.",
                    longest,
                    self.model_max_length,
                )
        if not batched and return_tensors is None and not return_overflowing_tokens:
            # As transformers: per-token lists lose the batch axis, per-sequence values (length) keep it.
            data = {k: v[0] if v and isinstance(v[0], list) else v for k, v in out.items()}
            return BatchEncoding(data, out.encodings)
        return out.convert_to_tensors(return_tensors)

    def _to_batch_encoding(
        self,
        encodings: list[Any],
        *,
        return_token_type_ids: bool | None,
        return_attention_mask: bool | None,
        return_overflowing_tokens: bool,
        return_special_tokens_mask: bool,
        return_offsets_mapping: bool,
        return_length: bool,
    ) -> BatchEncoding:
        if return_token_type_ids is None:
            return_token_type_ids = "token_type_ids" in self.model_input_names
        if return_attention_mask is None:
            return_attention_mask = "attention_mask" in self.model_input_names
        if return_overflowing_tokens:
            rows = [e for enc in encodings for e in (enc, *enc.overflowing)]
            sample_map = [i for i, enc in enumerate(encodings) for _ in range(1 + len(enc.overflowing))]
        else:
            rows = encodings
        data: dict[str, Any] = {"input_ids": [e.ids for e in rows]}
        if return_token_type_ids:
            data["token_type_ids"] = [e.type_ids for e in rows]
        if return_attention_mask:
            data["attention_mask"] = [e.attention_mask for e in rows]
        if return_special_tokens_mask:
            data["special_tokens_mask"] = [e.special_tokens_mask for e in rows]
        if return_offsets_mapping:
            data["offset_mapping"] = [e.offsets for e in rows]
        if return_length:
            data["length"] = [len(e.ids) for e in rows]
        if return_overflowing_tokens:
            data["overflow_to_sample_mapping"] = sample_map
        return BatchEncoding(data, rows)

    def encode(
        self,
        text: str | Sequence[str],
        text_pair: str | Sequence[str] | None = None,
        *,
        add_special_tokens: bool = True,
        padding: Padding | str = False,
        truncation: Truncation | str = None,
        max_length: int | None = None,
        stride: int = 0,
        is_split_into_words: bool = False,
        return_tensors: TensorType | str | None = None,
    ) -> Any:
        """The ``input_ids`` of one text (or pair)."""
        return self(
            text,
            text_pair,
            add_special_tokens=add_special_tokens,
            padding=padding,
            truncation=truncation,
            max_length=max_length,
            stride=stride,
            is_split_into_words=is_split_into_words,
            return_tensors=return_tensors,
        )["input_ids"]

    def tokenize(self, text: str, pair: str | None = None, *, add_special_tokens: bool = False) -> list[str]:
        """The token strings of ``text`` (and ``pair``)."""
        return self(text, pair, add_special_tokens=add_special_tokens).tokens()

    def pad(
        self,
        encoded_inputs: Mapping[str, Any] | Sequence[Mapping[str, Any]],
        *,
        padding: Padding | str = True,
        max_length: int | None = None,
        pad_to_multiple_of: int | None = None,
        padding_side: Literal["left", "right"] | None = None,
        return_attention_mask: bool | None = None,
        return_tensors: TensorType | str | None = None,
    ) -> BatchEncoding:
        """Pad already-encoded inputs (one dict of lists, a list of such dicts, or a dict of batched lists)."""
        if (
            isinstance(encoded_inputs, (list, tuple))
            and encoded_inputs
            and isinstance(encoded_inputs[0], Mapping)
        ):
            encoded_inputs = {key: [ex[key] for ex in encoded_inputs] for key in encoded_inputs[0]}
        main = self.model_input_names[0]
        if not isinstance(encoded_inputs, Mapping) or main not in encoded_inputs:
            keys = (
                list(encoded_inputs) if isinstance(encoded_inputs, Mapping) else type(encoded_inputs).__name__
            )
            raise ValueError(f"pad() needs inputs with a {main!r} key; got {keys}")
        data = {key: _to_list(value) for key, value in encoded_inputs.items()}
        if not data[main]:  # nothing to pad (transformers returns such input as it is)
            if return_attention_mask:
                data["attention_mask"] = []
            return BatchEncoding(data)
        if return_tensors is None:
            first = encoded_inputs[main]
            kind = type(first[0] if isinstance(first, (list, tuple)) and first else first).__module__
            return_tensors = "pt" if kind.startswith("torch") else "np" if kind.startswith("numpy") else None
        pad, _, max_length = self._strategies(padding, None, max_length, pad_to_multiple_of)
        side = padding_side if padding_side is not None else self.padding_side
        if return_attention_mask is None:
            return_attention_mask = "attention_mask" in self.model_input_names
        rows = data[main]
        if not rows or not isinstance(rows[0], list):  # one example
            data = self._pad_one(data, pad, max_length, pad_to_multiple_of, side, return_attention_mask)
            return BatchEncoding(data, tensor_type=return_tensors)
        if pad == "longest":
            max_length, pad = max(len(r) for r in rows), "max_length"
        out: dict[str, list[Any]] = {}
        for i in range(len(rows)):
            one = self._pad_one(
                {k: v[i] for k, v in data.items()},
                pad,
                max_length,
                pad_to_multiple_of,
                side,
                return_attention_mask,
            )
            for key, value in one.items():
                out.setdefault(key, []).append(value)
        return BatchEncoding(out, tensor_type=return_tensors)

    def _pad_one(
        self,
        example: dict[str, Any],
        pad: str,
        max_length: int | None,
        multiple: int | None,
        side: str,
        return_attention_mask: bool,
    ) -> dict[str, Any]:
        ids = example[self.model_input_names[0]]
        if pad == "longest":
            max_length = len(ids)
        if max_length is not None and multiple is not None and max_length % multiple:
            max_length = (max_length // multiple + 1) * multiple
        if return_attention_mask and "attention_mask" not in example:
            example["attention_mask"] = [1] * len(ids)
        if pad == "do_not_pad" or max_length is None or len(ids) >= max_length:
            return example
        n = max_length - len(ids)
        fill = {
            self.model_input_names[0]: self.pad_token_id,
            "attention_mask": 0,
            "token_type_ids": self._pad_token_type_id,
            "special_tokens_mask": 1,
        }
        for key, value in fill.items():
            if key in example:
                row = example[key]
                example[key] = row + [value] * n if side == "right" else [value] * n + row
        return example

    # --- decoding ------------------------------------------------------------------------------------------
    def decode(
        self,
        token_ids: Any,
        *,
        skip_special_tokens: bool = False,
        clean_up_tokenization_spaces: bool | None = None,
    ) -> Any:
        """Text of ``token_ids`` (an int, a list, an array or tensor); a list of lists gives a list of texts."""
        ids = _to_list(token_ids)
        if isinstance(ids, int):
            ids = [ids]
        if ids and isinstance(ids[0], list):
            return self.batch_decode(
                ids,
                skip_special_tokens=skip_special_tokens,
                clean_up_tokenization_spaces=clean_up_tokenization_spaces,
            )
        text = self._tokenizer.decode(ids, skip_special_tokens=skip_special_tokens)
        return self._clean_up(text, clean_up_tokenization_spaces)

    def batch_decode(
        self,
        sequences: Any,
        *,
        skip_special_tokens: bool = False,
        clean_up_tokenization_spaces: bool | None = None,
    ) -> list[str]:
        """Texts of a batch of id sequences."""
        rows = [r if isinstance(r, list) else [r] for r in _to_list(sequences)]
        texts = self._tokenizer.decode_batch(rows, skip_special_tokens=skip_special_tokens)
        return [self._clean_up(t, clean_up_tokenization_spaces) for t in texts]

    def _clean_up(self, text: str, clean_up: bool | None) -> str:
        clean_up = self.clean_up_tokenization_spaces if clean_up is None else clean_up
        if not clean_up:
            return text
        if type(self._tokenizer.model).__name__ == "BPE":
            # The clean-up rules are written for WordPiece output; on BPE they delete real spaces.
            if not self._warned_bpe_cleanup:
                self._warned_bpe_cleanup = True
                logger.warning(
                    "ignoring clean_up_tokenization_spaces=True for a BPE tokenizer: the clean-up rules are "
                    "for WordPiece output and would delete real spaces; pass clean_up_tokenization_spaces=False"
                )
            return text
        return clean_up_tokenization(text)

    # --- chat templates ------------------------------------------------------------------------------------
    def get_chat_template(self, chat_template: str | None = None, *, tools: list[Any] | None = None) -> str:
        from xf_tokenize._chat import select_template

        return select_template(self.chat_template, chat_template, tools=tools)

    def apply_chat_template(
        self,
        conversation: Any,
        *,
        tools: list[Any] | None = None,
        documents: list[dict[str, Any]] | None = None,
        chat_template: str | None = None,
        add_generation_prompt: bool = False,
        continue_final_message: bool | str = False,
        tokenize: bool = True,
        padding: Padding | str = False,
        truncation: Truncation | str = False,
        max_length: int | None = None,
        return_tensors: TensorType | str | None = None,
        return_dict: bool = True,
        return_assistant_tokens_mask: bool = False,
        **kwargs: Any,
    ) -> Any:
        """Render ``conversation`` (a list of messages, or a batch of them) with the chat template.

        ``tokenize=False`` gives the text; otherwise a :class:`BatchEncoding` (``return_dict=True``) or the ids.
        ``return_assistant_tokens_mask`` adds ``assistant_masks``: 1 on tokens the template wraps in
        ``{% generation %}``. Extra keyword arguments are passed to the template.
        """
        from xf_tokenize._chat import render

        if return_assistant_tokens_mask and not (tokenize and return_dict):
            raise ChatTemplateError(
                "return_assistant_tokens_mask=True needs tokenize=True and return_dict=True"
            )
        if return_assistant_tokens_mask and continue_final_message:
            raise ChatTemplateError(
                "continue_final_message cannot be combined with return_assistant_tokens_mask"
            )

        template = self.get_chat_template(chat_template, tools=tools)
        batched = (
            isinstance(conversation, (list, tuple))
            and len(conversation) > 0
            and (isinstance(conversation[0], (list, tuple)) or hasattr(conversation[0], "messages"))
        )
        conversations = list(conversation) if batched else [conversation]
        rendered, spans = render(
            template,
            conversations,
            tools=tools,
            documents=documents,
            add_generation_prompt=add_generation_prompt,
            continue_final_message=continue_final_message,
            variables={**self.special_tokens_map, **kwargs},
        )
        text: Any = rendered if batched else rendered[0]
        if not tokenize:
            return text
        out = self(
            text,
            add_special_tokens=False,
            padding=padding,
            truncation=truncation,
            max_length=max_length,
            return_tensors=None if return_assistant_tokens_mask else return_tensors,
        )
        if return_assistant_tokens_mask:
            masks = [_spans_to_mask(enc.offsets, row_spans) for enc, row_spans in zip(out.encodings, spans)]
            out["assistant_masks"] = masks if batched else masks[0]
            out.convert_to_tensors(
                return_tensors, prepend_batch_axis=not batched and return_tensors is not None
            )
        return out if return_dict else out["input_ids"]

    # --- files ---------------------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(
        cls,
        path_or_repo_id: str | os.PathLike[str],
        *,
        revision: str | None = None,
        subfolder: str | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        local_files_only: bool = False,
        token: str | bool | None = None,
        **overrides: Any,
    ) -> PreTrainedTokenizerFast:
        """Load a tokenizer from a directory or Hub repo (see ``AutoTokenizer.from_pretrained``)."""
        from xf_tokenize._loading import load_tokenizer

        return load_tokenizer(
            path_or_repo_id,
            revision=revision,
            subfolder=subfolder,
            cache_dir=cache_dir,
            local_files_only=local_files_only,
            token=token,
            overrides=overrides,
            cls=cls,
        )

    def save_pretrained(self, save_directory: str | os.PathLike[str]) -> tuple[str, ...]:
        """Write ``tokenizer.json``, ``tokenizer_config.json`` and ``chat_template.jinja`` (when set).

        The directory loads back identically with xf and with transformers.
        """
        directory = Path(save_directory)
        if directory.is_file():
            raise FileExistsError(f"{directory} is a file; pass a directory to save the tokenizer in")
        directory.mkdir(parents=True, exist_ok=True)
        written = []
        tokenizer_file = directory / "tokenizer.json"
        backend = Tokenizer.from_str(self._tokenizer.to_str())  # a copy, without per-call padding/truncation
        backend.no_truncation()
        backend.no_padding()
        backend.save(str(tokenizer_file))
        written.append(str(tokenizer_file))
        config = dict(self.init_kwargs)
        for key, value in self._special_tokens_map.items():
            if value is not None:
                config[key] = str(value)
            else:
                config.pop(key, None)
        config["extra_special_tokens"] = self.extra_special_tokens
        config.pop("additional_special_tokens", None)
        config["added_tokens_decoder"] = {
            str(i): {**t.__getstate__()} for i, t in self.added_tokens_decoder.items()
        }
        config["model_max_length"] = self.model_max_length
        config["padding_side"] = self.padding_side
        config["truncation_side"] = self.truncation_side
        config["model_input_names"] = self.model_input_names
        config["clean_up_tokenization_spaces"] = self.clean_up_tokenization_spaces
        config["split_special_tokens"] = self.split_special_tokens
        config["add_bos_token"] = self._add_bos_token
        config["add_eos_token"] = self._add_eos_token
        config["tokenizer_class"] = self.tokenizer_class or "TokenizersBackend"
        config.pop("chat_template", None)
        if isinstance(self.chat_template, str):
            path = directory / "chat_template.jinja"
            path.write_text(self.chat_template, encoding="utf-8")
            written.append(str(path))
        elif isinstance(self.chat_template, dict):
            config["chat_template"] = [{"name": k, "template": v} for k, v in self.chat_template.items()]
        config_file = directory / "tokenizer_config.json"
        config_file.write_text(
            json.dumps(config, indent=2, sort_keys=True, ensure_ascii=False) + "\n", "utf-8"
        )
        written.insert(0, str(config_file))
        return tuple(written)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name_or_path={self.name_or_path!r}, vocab_size={self.vocab_size}, "
            f"model_max_length={self.model_max_length}, padding_side={self.padding_side!r}, "
            f"special_tokens={self.special_tokens_map})"
        )


def clean_up_tokenization(text: str) -> str:
    """Remove the spaces WordPiece decoding leaves before punctuation and English contractions."""
    for before, after in (
        (" .", "."),
        (" ?", "?"),
        (" !", "!"),
        (" ,", ","),
        (" ' ", "'"),
        (" n't", "n't"),
        (" 'm", "'m"),
        (" 's", "'s"),
        (" 've", "'ve"),
        (" 're", "'re"),
    ):
        text = text.replace(before, after)
    return text


def _spans_to_mask(offsets: Sequence[tuple[int, int]], spans: Sequence[tuple[int, int]]) -> list[int]:
    """1 for each token whose characters overlap one of ``spans`` (sorted, disjoint), else 0."""
    mask = [0] * len(offsets)
    k = 0
    for i, (start, end) in enumerate(offsets):
        while k < len(spans) and start >= spans[k][1]:
            k += 1
        if k == len(spans):
            break
        if end > spans[k][0]:
            mask[i] = 1
    return mask


def _to_list(value: Any) -> Any:
    """Plain Python lists/ints from numpy arrays, torch tensors, or nested lists of them."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [_to_list(v) for v in value]
    return value
