"""Special tokens as one small object: the named ones and the extra ones a tokenizer keeps beside its vocabulary.

The named tokens are transformers' seven (``bos_token`` ... ``mask_token``) plus any model-specific
``*_token`` (``image_token``) a ``tokenizer_config.json`` names. Tokens are kept as written (a string or an
``AddedToken``); their ids come from the vocabulary they are looked up in (:meth:`SpecialTokens.id_of`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, overload

from tokenizers import AddedToken, processors

if TYPE_CHECKING:
    from tokenizers import Tokenizer

__all__ = ["SPECIAL_TOKENS_ATTRIBUTES", "SpecialTokens", "SpecialTokensMixin", "Token", "special_token"]

SPECIAL_TOKENS_ATTRIBUTES = (
    "bos_token",
    "eos_token",
    "unk_token",
    "sep_token",
    "pad_token",
    "cls_token",
    "mask_token",
)
_EXTRA_KEYS = ("extra_special_tokens", "additional_special_tokens")

Token = str | AddedToken


def special_token(value: Any, *, key: str) -> Token | None:
    """A special token from a config value: a string, an ``AddedToken`` or its serialized dict."""
    if value is None or isinstance(value, (str, AddedToken)):
        return value
    if isinstance(value, Mapping) and "content" in value:
        options = {k: v for k, v in value.items() if k in ("single_word", "lstrip", "rstrip", "normalized")}
        return AddedToken(value["content"], special=True, **options)
    raise TypeError(f"special token {key} must be a string or an AddedToken, got {type(value).__name__}")


def _added(token: Token) -> AddedToken:
    """A string as the ``AddedToken`` transformers registers for a special token (kept whole, not normalized)."""
    return AddedToken(token, special=True, normalized=False) if isinstance(token, str) else token


@dataclass
class SpecialTokens:
    """The named special tokens (None when unset), the model-specific named ones, and the extra ones."""

    bos_token: Token | None = None
    eos_token: Token | None = None
    unk_token: Token | None = None
    sep_token: Token | None = None
    pad_token: Token | None = None
    cls_token: Token | None = None
    mask_token: Token | None = None
    extra: list[Token] = field(default_factory=list)
    model_specific: dict[str, Token | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        specific = dict(self.model_specific)
        for key in specific:
            if not key.endswith("_token") or key in _EXTRA_KEYS:
                raise ValueError(f"model-specific special token names end with '_token', got {key!r}")
        for key in SPECIAL_TOKENS_ATTRIBUTES:  # a standard name given as model-specific sets the standard one
            value = specific.pop(key) if key in specific else getattr(self, key)
            setattr(self, key, special_token(value, key=key))
        self.model_specific = {k: special_token(v, key=k) for k, v in specific.items()}
        self.extra = [special_token(t, key="extra_special_tokens") for t in self.extra]  # type: ignore[misc]

    # --- reading -------------------------------------------------------------------------------------------
    def named(self) -> Iterator[tuple[str, Token | None]]:
        """(key, token) of every named token, the seven standard ones first, unset ones included."""
        for key in SPECIAL_TOKENS_ATTRIBUTES:
            yield key, getattr(self, key)
        yield from self.model_specific.items()

    def get(self, key: str) -> str | None:
        """The token named ``key`` as a string; None when unset or not a special token name."""
        value = getattr(self, key) if key in SPECIAL_TOKENS_ATTRIBUTES else self.model_specific.get(key)
        return None if value is None else str(value)

    def id_of(self, key: str, to_id: Callable[[str], int | None]) -> int | None:
        """The id ``to_id`` (a vocabulary lookup) gives the token named ``key``; None when it is unset."""
        token = self.get(key)
        return None if token is None else to_id(token)

    def as_map(self) -> dict[str, str]:
        """``special_tokens_map``: the named tokens that are set, as strings."""
        return {key: str(value) for key, value in self.named() if value is not None}

    def extra_strings(self) -> list[str]:
        return [str(t) for t in self.extra]

    def all_tokens(self) -> list[Token]:
        """Every set token, named then extra, in order (duplicates kept)."""
        return [t for _, t in self.named() if t is not None] + list(self.extra)

    def all_strings(self) -> list[str]:
        """``all_special_tokens``: every set token as a string, without duplicates, named then extra."""
        return list(dict.fromkeys(str(t) for t in self.all_tokens()))

    def missing_from(self, known: set[str]) -> list[AddedToken]:
        """The tokens not in ``known`` (strings of tokens a vocabulary has), each once, as added tokens."""
        seen = set(known)
        missing: list[AddedToken] = []
        for token in self.all_tokens():
            if str(token) not in seen:
                missing.append(_added(token))
                seen.add(str(token))
        return missing

    # --- changing ------------------------------------------------------------------------------------------
    def set(self, key: str, value: Any) -> None:
        """Set one of the seven standard named tokens (a string, an ``AddedToken`` or None)."""
        if key not in SPECIAL_TOKENS_ATTRIBUTES:
            raise ValueError(f"{key!r} is not one of {', '.join(SPECIAL_TOKENS_ATTRIBUTES)}")
        setattr(self, key, special_token(value, key=key))

    def update(
        self, tokens: Mapping[str, Token | Sequence[Token]], *, replace_extra: bool = True
    ) -> list[AddedToken]:
        """Apply ``add_special_tokens``' mapping; returns the tokens the vocabulary must have.

        Named values become ``AddedToken`` s; ``extra_special_tokens`` (or ``additional_special_tokens``)
        replace the extras, or with ``replace_extra=False`` extend them with the ones not already there.
        """
        to_add: list[AddedToken] = []
        for key, value in tokens.items():
            if key in _EXTRA_KEYS:
                if isinstance(value, (str, AddedToken)) or not all(
                    isinstance(t, (str, AddedToken)) for t in value
                ):
                    raise ValueError(
                        f"extra_special_tokens must be a list of str or AddedToken, got {value!r}"
                    )
                current = self.extra_strings()
                new = [_added(t) for t in value if replace_extra or str(t) not in current]
                if replace_extra and new:
                    self.extra = list(new)
                else:
                    self.extra.extend(new)
                to_add.extend(new)
            elif key in SPECIAL_TOKENS_ATTRIBUTES:
                if not isinstance(value, (str, AddedToken)):
                    raise ValueError(f"{key} must be a str or an AddedToken, got {value!r}")
                token = _added(value)
                setattr(self, key, token)
                to_add.append(token)
            else:
                raise ValueError(
                    f"{key!r} is not a special token name; use one of {', '.join(SPECIAL_TOKENS_ATTRIBUTES)} "
                    "or extra_special_tokens"
                )
        return to_add

    # --- tokenizer_config.json -----------------------------------------------------------------------------
    def write_to(self, config: dict[str, Any]) -> None:
        """Put the tokens into a ``tokenizer_config.json`` dict (unset named ones removed), as transformers."""
        for key, value in self.named():
            if value is not None:
                config[key] = str(value)
            else:
                config.pop(key, None)
        config["extra_special_tokens"] = self.extra_strings()
        config.pop("additional_special_tokens", None)


class _TokenAttribute:
    """``tokenizer.pad_token`` and friends: the token as a string (None when unset); assigning adds it to the
    vocabulary as a special token."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.__doc__ = (
            f"The {key.replace('_', ' ')} as a string (None when unset); assigning adds it to the vocabulary."
        )

    @overload
    def __get__(self, owner: None, owner_type: type) -> _TokenAttribute: ...
    @overload
    def __get__(self, owner: SpecialTokensMixin, owner_type: type | None = None) -> str | None: ...
    def __get__(
        self, owner: SpecialTokensMixin | None, owner_type: type | None = None
    ) -> str | _TokenAttribute | None:
        return self if owner is None else owner._special.get(self.key)

    def __set__(self, owner: SpecialTokensMixin, value: Token | None) -> None:
        owner._special.set(self.key, value)
        if value is not None:
            owner._register_special_tokens()


class _TokenIdAttribute:
    """``tokenizer.pad_token_id`` and friends: the id of the token (None when unset); assigning an id sets the
    token to the vocabulary entry with that id."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.__doc__ = f"The id of the {key.replace('_', ' ')}."

    @overload
    def __get__(self, owner: None, owner_type: type) -> _TokenIdAttribute: ...
    @overload
    def __get__(self, owner: SpecialTokensMixin, owner_type: type | None = None) -> int | None: ...
    def __get__(
        self, owner: SpecialTokensMixin | None, owner_type: type | None = None
    ) -> int | _TokenIdAttribute | None:
        return self if owner is None else owner._special.id_of(self.key, owner.convert_tokens_to_ids)

    def __set__(self, owner: SpecialTokensMixin, index: int | None) -> None:
        setattr(owner, self.key, None if index is None else owner._tokenizer.id_to_token(index))


class SpecialTokensMixin:
    """transformers' special-token attributes (``pad_token``, ``pad_token_id``, ``all_special_ids``,
    ``add_bos_token``, ...) over a :class:`SpecialTokens` held in ``_special`` and the backend ``_tokenizer``
    they are added to."""

    _special: SpecialTokens
    _tokenizer: Tokenizer
    _add_bos_token: bool
    _add_eos_token: bool

    if TYPE_CHECKING:

        def convert_tokens_to_ids(self, tokens: Any) -> Any: ...

    def _register_special_tokens(self) -> None:
        """Make every special token an added special token of the backend (as transformers does)."""
        known = {str(t) for t in self._tokenizer.get_added_tokens_decoder().values()}
        missing = self._special.missing_from(known)
        if missing:
            self._tokenizer.add_special_tokens(missing)

    @property
    def special_tokens(self) -> SpecialTokens:
        """The special tokens as one object (change them through the ``*_token`` attributes)."""
        return self._special

    bos_token: _TokenAttribute = _TokenAttribute("bos_token")
    eos_token: _TokenAttribute = _TokenAttribute("eos_token")
    unk_token: _TokenAttribute = _TokenAttribute("unk_token")
    sep_token: _TokenAttribute = _TokenAttribute("sep_token")
    pad_token: _TokenAttribute = _TokenAttribute("pad_token")
    cls_token: _TokenAttribute = _TokenAttribute("cls_token")
    mask_token: _TokenAttribute = _TokenAttribute("mask_token")
    bos_token_id: _TokenIdAttribute = _TokenIdAttribute("bos_token")
    eos_token_id: _TokenIdAttribute = _TokenIdAttribute("eos_token")
    unk_token_id: _TokenIdAttribute = _TokenIdAttribute("unk_token")
    sep_token_id: _TokenIdAttribute = _TokenIdAttribute("sep_token")
    pad_token_id: _TokenIdAttribute = _TokenIdAttribute("pad_token")
    cls_token_id: _TokenIdAttribute = _TokenIdAttribute("cls_token")
    mask_token_id: _TokenIdAttribute = _TokenIdAttribute("mask_token")

    def __getattr__(self, name: str) -> Any:
        # Model-specific named tokens (``image_token`` and ``image_token_id``), read from tokenizer_config.json.
        special = self.__dict__.get("_special")
        key = name.removesuffix("_id")
        if special is not None and key in special.model_specific:
            return (
                special.id_of(key, self.convert_tokens_to_ids) if name.endswith("_id") else special.get(key)
            )
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    @property
    def extra_special_tokens(self) -> list[str]:
        return self._special.extra_strings()

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
        return self._special.as_map()

    @property
    def all_special_tokens(self) -> list[str]:
        return self._special.all_strings()

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
        to_add = self._special.update(special_tokens_dict, replace_extra=replace_extra_special_tokens)
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
