"""``PreTrainedTokenizerFast``: transformers' tokenizer API over a Rust ``tokenizers.Tokenizer``.

The backend does the work (normalize → pre-tokenize → model → post-process, padding and truncation in Rust);
this class holds what transformers keeps beside it (special tokens, ``model_max_length``, sides, input names,
chat template) and turns calls into backend settings and backend results into a :class:`BatchEncoding`.
Beside it: :mod:`._special` (the special tokens), :mod:`._strategies` (padding/truncation rules),
:mod:`._loading` and :mod:`._saving` (the files).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from tokenizers import AddedToken, Tokenizer

from xf_core import HubOptions
from xf_core.logging import get_logger
from xf_tokenize._batch import BatchEncoding, to_list
from xf_tokenize._chat import ChatTemplateMixin
from xf_tokenize._loading import hub_options, read_pretrained, read_tokenizer_file
from xf_tokenize._saving import save_tokenizer
from xf_tokenize._special import SpecialTokens, SpecialTokensMixin, Token
from xf_tokenize._strategies import (
    VERY_LARGE_INTEGER,
    Padding,
    Strategies,
    Truncation,
    pad_examples,
    padding_settings,
    resolve_strategies,
    truncation_settings,
)
from xf_tokenize.errors import TruncationError

if TYPE_CHECKING:
    from xf_tokenize._batch import TensorType

__all__ = ["PreTrainedTokenizerFast", "clean_up_tokenization"]

logger = get_logger(__name__)

_DEFAULT_INPUT_NAMES = ("input_ids", "attention_mask")


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


class PreTrainedTokenizerFast(SpecialTokensMixin, ChatTemplateMixin):
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
            tokenizer_object = read_tokenizer_file(Path(tokenizer_file))  # type: ignore[arg-type]
        self._tokenizer = tokenizer_object
        # A call sets the backend's truncation, padding and special-token splitting, then encodes; the lock
        # holds those steps together so threads sharing this tokenizer never encode with each other's settings.
        self._lock = threading.Lock()
        self._special = SpecialTokens(
            bos_token=bos_token,
            eos_token=eos_token,
            unk_token=unk_token,
            sep_token=sep_token,
            pad_token=pad_token,
            cls_token=cls_token,
            mask_token=mask_token,
            extra=list(extra_special_tokens or []),
            model_specific=dict(model_specific_special_tokens or {}),
        )
        self.model_max_length: int = VERY_LARGE_INTEGER if model_max_length is None else int(model_max_length)
        for name, side in (("padding_side", padding_side), ("truncation_side", truncation_side)):
            if side not in ("left", "right"):
                raise ValueError(f"{name} must be 'left' or 'right', got {side!r}")
        self.padding_side = padding_side
        self.truncation_side = truncation_side
        self.model_input_names: list[str] = list(model_input_names or _DEFAULT_INPUT_NAMES)
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

    # --- special tokens (the rest of their attributes come from SpecialTokensMixin) ------------------------
    @property
    def pad_token_type_id(self) -> int:
        return self._pad_token_type_id

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
                unk = self._special.get("unk_token")
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
    def _resolve(
        self,
        padding: Padding | str,
        truncation: Truncation | str,
        max_length: int | None,
        pad_to_multiple_of: int | None,
    ) -> Strategies:
        return resolve_strategies(
            padding,
            truncation,
            max_length,
            pad_to_multiple_of,
            model_max_length=self.model_max_length,
            has_pad_token=self.pad_token_id is not None,
        )

    def _configure_backend(
        self,
        strategies: Strategies,
        *,
        stride: int,
        pad_to_multiple_of: int | None,
        padding_side: str | None,
        pair: bool,
    ) -> None:
        """Switch the backend's truncation and padding to what this call needs (left as is when unchanged)."""
        backend = self._tokenizer
        truncating = strategies.truncation != "do_not_truncate"
        truncation = truncation_settings(
            strategies,
            stride=stride,
            direction=self.truncation_side,
            num_special_tokens=backend.num_special_tokens_to_add(pair) if truncating else 0,
            pair=pair,
        )
        if truncation is None:
            if backend.truncation is not None:
                backend.no_truncation()
        elif backend.truncation != truncation:
            try:
                backend.enable_truncation(**truncation)
            except Exception as e:
                raise TruncationError(f"cannot truncate with {truncation}: {e}") from e
        padding = padding_settings(
            strategies,
            pad_to_multiple_of=pad_to_multiple_of,
            direction=padding_side if padding_side is not None else self.padding_side,
            pad_id=self.pad_token_id,
            pad_token=self.pad_token,
            pad_type_id=self._pad_token_type_id,
        )
        if padding is None:
            if backend.padding is not None:
                backend.no_padding()
        elif backend.padding != padding:
            backend.enable_padding(**padding)

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
        strategies = self._resolve(padding, truncation, max_length, pad_to_multiple_of)
        max_length, trunc = strategies.max_length, strategies.truncation
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
        split = self.split_special_tokens if split_special_tokens is None else split_special_tokens
        with self._lock:
            self._configure_backend(
                strategies,
                stride=stride,
                pad_to_multiple_of=pad_to_multiple_of,
                padding_side=padding_side,
                pair=has_pair,
            )
            if self._tokenizer.encode_special_tokens != split:
                self._tokenizer.encode_special_tokens = split
            try:
                encodings = self._tokenizer.encode_batch(
                    inputs, add_special_tokens=add_special_tokens, is_pretokenized=is_split_into_words
                )
            except BaseException as e:  # a Rust panic (pyo3 PanicException) is a BaseException
                if "runcat" in str(e) or "stride" in str(e):
                    raise TruncationError(
                        f"cannot truncate to max_length={max_length} with stride={stride} and strategy "
                        f"{trunc!r}: {str(e).splitlines()[0]}. Pass a larger max_length, a smaller stride, or "
                        "another truncation strategy."
                    ) from e
                raise
        wanted = {
            "token_type_ids": return_token_type_ids,
            "attention_mask": return_attention_mask,
            "special_tokens_mask": return_special_tokens_mask,
            "offset_mapping": return_offsets_mapping,
            "length": return_length,
        }
        for key in ("token_type_ids", "attention_mask"):
            if wanted[key] is None:
                wanted[key] = key in self.model_input_names
        keys = [key for key, on in wanted.items() if on]
        out = BatchEncoding.from_encodings(encodings, keys=keys, overflowing=return_overflowing_tokens)
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
        data = {key: to_list(value) for key, value in encoded_inputs.items()}
        if not data[main]:  # nothing to pad (transformers returns such input as it is)
            if return_attention_mask:
                data["attention_mask"] = []
            return BatchEncoding(data)
        if return_tensors is None:
            first = encoded_inputs[main]
            kind = type(first[0] if isinstance(first, (list, tuple)) and first else first).__module__
            return_tensors = "pt" if kind.startswith("torch") else "np" if kind.startswith("numpy") else None
        pad, _, max_length = self._resolve(padding, None, max_length, pad_to_multiple_of)
        side = padding_side if padding_side is not None else self.padding_side
        if return_attention_mask is None:
            return_attention_mask = "attention_mask" in self.model_input_names
        fill = {main: self.pad_token_id, "attention_mask": 0, "token_type_ids": self._pad_token_type_id}
        data = pad_examples(
            data,
            main_key=main,
            strategy=pad,
            max_length=max_length,
            pad_to_multiple_of=pad_to_multiple_of,
            side=side,
            fill={**fill, "special_tokens_mask": 1},
            return_attention_mask=return_attention_mask,
        )
        return BatchEncoding(data, tensor_type=return_tensors)

    # --- decoding ------------------------------------------------------------------------------------------
    def decode(
        self,
        token_ids: Any,
        *,
        skip_special_tokens: bool = False,
        clean_up_tokenization_spaces: bool | None = None,
    ) -> Any:
        """Text of ``token_ids`` (an int, a list, an array or tensor); a list of lists gives a list of texts."""
        ids = to_list(token_ids)
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
        rows = [r if isinstance(r, list) else [r] for r in to_list(sequences)]
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

    # --- files ---------------------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(
        cls,
        path_or_repo_id: str | os.PathLike[str],
        *,
        revision: str | None = None,
        subfolder: str | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        local_files_only: bool | None = None,
        token: str | bool | None = None,
        hub: HubOptions | None = None,
        **overrides: Any,
    ) -> PreTrainedTokenizerFast:
        """Load a tokenizer from a directory or Hub repo (see ``AutoTokenizer.from_pretrained``).

        The Hub keywords given (not None) override the same fields of ``hub``; the options are built once
        and every file is read with them. Other keywords override ``tokenizer_config.json`` keys.
        """
        hub = hub_options(
            hub,
            revision=revision,
            subfolder=subfolder,
            cache_dir=cache_dir,
            local_files_only=local_files_only,
            token=token,
        )
        found = read_pretrained(path_or_repo_id, hub=hub, overrides=overrides)
        tokenizer = cls(found.backend, **found.kwargs)
        post = found.post_processor(tokenizer._special, tokenizer.convert_tokens_to_ids)
        if post is not None:
            tokenizer._tokenizer.post_processor = post
        return tokenizer

    def save_pretrained(self, save_directory: str | os.PathLike[str]) -> tuple[str, ...]:
        """Write ``tokenizer.json``, ``tokenizer_config.json`` and ``chat_template.jinja`` (when set).

        The directory loads back identically with xf and with transformers.
        """
        settings = {
            "model_max_length": self.model_max_length,
            "padding_side": self.padding_side,
            "truncation_side": self.truncation_side,
            "model_input_names": self.model_input_names,
            "clean_up_tokenization_spaces": self.clean_up_tokenization_spaces,
            "split_special_tokens": self.split_special_tokens,
            "add_bos_token": self._add_bos_token,
            "add_eos_token": self._add_eos_token,
            "tokenizer_class": self.tokenizer_class or "TokenizersBackend",
        }
        return save_tokenizer(
            save_directory,
            backend=self._tokenizer,
            special=self._special,
            settings=settings,
            init_kwargs=self.init_kwargs,
            chat_template=self.chat_template,
        )

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        del state["_lock"]  # a lock cannot be pickled or copied; each copy gets its own
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name_or_path={self.name_or_path!r}, vocab_size={self.vocab_size}, "
            f"model_max_length={self.model_max_length}, padding_side={self.padding_side!r}, "
            f"special_tokens={self.special_tokens_map})"
        )


# (before, after): the spaces WordPiece decoding leaves before punctuation and English contractions, in order.
_CLEAN_UP = [
    *((f" {p}", p) for p in (".", "?", "!", ",")),
    (" ' ", "'"),
    *((f" {c}", c) for c in ("n't", "'m", "'s", "'ve", "'re")),
]


def clean_up_tokenization(text: str) -> str:
    """Remove the spaces WordPiece decoding leaves before punctuation and English contractions."""
    for before, after in _CLEAN_UP:
        text = text.replace(before, after)
    return text
