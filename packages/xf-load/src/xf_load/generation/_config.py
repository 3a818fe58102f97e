"""``GenerationConfig``: the knobs of ``generate``, with transformers' field names and ``generation_config.json``.

Every field defaults to ``None``, meaning "not set here". ``generate`` resolves the effective value of each
field in this order: call keyword arguments > the ``generation_config`` passed in > the model's
``generation_config`` > :data:`GLOBAL_DEFAULTS`. Keys of a ``generation_config.json`` that xf does not know
are kept in ``extra`` (written back on save) and never change behaviour silently: transformers' decoding keys
that xf does not implement make ``generate`` raise when set to a non-default value (see :mod:`._unsupported`).
"""

from __future__ import annotations

import copy
import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, Literal

from xf_core._hub import HubOptions, resolve_file
from xf_core.errors import XfConfigError, XfFileNotFoundError
from xf_core.logging import get_logger

__all__ = [
    "GENERATION_CONFIG_NAME",
    "GLOBAL_DEFAULTS",
    "GenerationConfig",
    "finalize_lengths",
    "resolve_generation_config",
]

GENERATION_CONFIG_NAME = "generation_config.json"

logger = get_logger(__name__)

# What a field means when nobody set it (same values transformers uses).
GLOBAL_DEFAULTS: dict[str, Any] = {
    "max_length": 20,
    "min_length": 0,
    "do_sample": False,
    "use_cache": True,
    "early_stopping": False,
    "num_beams": 1,
    "temperature": 1.0,
    "top_k": 50,
    "top_p": 1.0,
    "typical_p": 1.0,
    "repetition_penalty": 1.0,
    "length_penalty": 1.0,
    "no_repeat_ngram_size": 0,
    "num_return_sequences": 1,
    "output_scores": False,
    "output_logits": False,
    "return_dict_in_generate": False,
    "remove_invalid_values": False,
    "renormalize_logits": False,
    "num_beam_groups": 1,
    "diversity_penalty": 0.0,
    "num_assistant_tokens_schedule": "constant",
    "max_matching_ngram_size": 2,
}


@dataclass(kw_only=True)
class GenerationConfig:
    """How ``generate`` decodes. Field names, meanings and file format are transformers'; fields are passed
    by keyword, as in transformers."""

    # Length
    max_length: int | None = None
    max_new_tokens: int | None = None
    min_length: int | None = None
    min_new_tokens: int | None = None
    early_stopping: bool | Literal["never"] | None = None
    max_time: float | None = None
    stop_strings: str | list[str] | None = None
    # Strategy
    do_sample: bool | None = None
    num_beams: int | None = None
    num_beam_groups: int | None = None  # diverse beam search: beams split in groups (see _group_beam)
    diversity_penalty: float | None = None  # subtracted per use of a token by earlier groups at this step
    # Candidate decoding (batch 1, greedy): a draft model (generate's assistant_model=) or prompt lookup
    num_assistant_tokens: int | None = (
        None  # tokens the draft proposes per round (default: the draft's, or 20)
    )
    num_assistant_tokens_schedule: Literal["constant", "heuristic", "heuristic_transient"] | None = None
    prompt_lookup_num_tokens: int | None = None  # tokens copied from an n-gram match in the sequence
    max_matching_ngram_size: int | None = None
    # Cache
    use_cache: bool | None = None
    cache_implementation: Literal["dynamic", "static"] | None = None
    # Logits manipulation
    temperature: float | None = None
    top_k: int | None = None
    top_p: float | None = None
    min_p: float | None = None
    typical_p: float | None = None
    repetition_penalty: float | None = None
    length_penalty: float | None = None
    no_repeat_ngram_size: int | None = None
    bad_words_ids: list[list[int]] | None = None
    sequence_bias: list[list[Any]] | None = None
    forced_bos_token_id: int | None = None
    forced_eos_token_id: int | list[int] | None = None
    suppress_tokens: list[int] | None = None
    begin_suppress_tokens: list[int] | None = None
    remove_invalid_values: bool | None = None
    renormalize_logits: bool | None = None
    # Outputs
    num_return_sequences: int | None = None
    output_scores: bool | None = None
    output_logits: bool | None = None
    return_dict_in_generate: bool | None = None
    # Special tokens
    pad_token_id: int | None = None
    bos_token_id: int | None = None
    eos_token_id: int | list[int] | None = None
    decoder_start_token_id: int | None = None  # encoder-decoders: the decoder's first token
    # Keys of generation_config.json that xf does not use, kept for the round trip.
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    _model_config_keys: ClassVar[tuple[str, ...]] = ("pad_token_id", "bos_token_id", "eos_token_id")

    def __post_init__(self) -> None:
        self.validate()

    # ------------------------------------------------------------------ validation

    def validate(self) -> None:
        """Raise ``ValueError`` (an :class:`XfConfigError` naming the field) for an impossible setting."""

        def bad(key: str, why: str) -> XfConfigError:
            return XfConfigError(f"GenerationConfig.{key}={getattr(self, key)!r}: {why}", key=key)

        def is_int(v: Any) -> bool:
            return isinstance(v, int) and not isinstance(v, bool)

        for key in (
            "max_new_tokens",
            "num_beams",
            "num_return_sequences",
            "max_length",
            "num_beam_groups",
            "num_assistant_tokens",
            "prompt_lookup_num_tokens",
            "max_matching_ngram_size",
        ):
            value = getattr(self, key)
            if value is not None and (not is_int(value) or value < 1):
                raise bad(key, "must be a positive integer.")
        for key in ("min_length", "min_new_tokens", "top_k", "no_repeat_ngram_size"):
            value = getattr(self, key)
            if value is not None and (not is_int(value) or value < 0):
                raise bad(key, "must be an integer >= 0.")
        if self.top_p is not None and not 0.0 < self.top_p <= 1.0:
            raise bad("top_p", "must be in (0, 1]; use 1.0 to turn nucleus filtering off.")
        if self.typical_p is not None and not 0.0 < self.typical_p <= 1.0:
            raise bad("typical_p", "must be in (0, 1]; use 1.0 to turn typical filtering off.")
        if self.min_p is not None and not 0.0 <= self.min_p <= 1.0:
            raise bad("min_p", "must be in [0, 1].")
        if self.temperature is not None and self.temperature <= 0 and self.do_sample:
            raise bad("temperature", "must be > 0 when sampling; for greedy decoding set do_sample=False.")
        if self.repetition_penalty is not None and self.repetition_penalty <= 0:
            raise bad("repetition_penalty", "must be > 0 (1.0 means no penalty).")
        if self.early_stopping not in (None, True, False, "never"):
            raise bad("early_stopping", "must be True, False or 'never'.")
        if self.max_time is not None and self.max_time <= 0:
            raise bad("max_time", "must be a positive number of seconds.")
        if self.cache_implementation not in (None, "dynamic", "static"):
            raise bad("cache_implementation", "xf supports 'dynamic' (default) and 'static'.")
        for key in ("pad_token_id", "decoder_start_token_id"):
            value = getattr(self, key)
            if value is not None and (not is_int(value) or value < 0):
                raise bad(key, "must be a token id >= 0.")
        for key in ("eos_token_id", "forced_eos_token_id"):
            ids = _as_id_list(getattr(self, key))
            if ids is not None and any(not is_int(i) or i < 0 for i in ids):
                raise bad(key, "must be a token id >= 0 or a list of them.")
        if self.bad_words_ids is not None and (
            not isinstance(self.bad_words_ids, list)
            or not self.bad_words_ids
            or any(
                not isinstance(w, list) or not w or any(not is_int(t) or t < 0 for t in w)
                for w in self.bad_words_ids
            )
        ):
            raise bad("bad_words_ids", "must be a non-empty list of non-empty lists of token ids.")
        if self.num_assistant_tokens_schedule not in (None, "constant", "heuristic", "heuristic_transient"):
            raise bad(
                "num_assistant_tokens_schedule", "must be 'constant', 'heuristic' or 'heuristic_transient'."
            )
        if self.diversity_penalty is not None and (
            not isinstance(self.diversity_penalty, (int, float)) or self.diversity_penalty < 0
        ):
            raise bad("diversity_penalty", "must be a number >= 0 (0.0 turns the penalty off).")
        if self.stop_strings is not None:
            strings = [self.stop_strings] if isinstance(self.stop_strings, str) else self.stop_strings
            if not strings or any(not isinstance(s, str) or not s for s in strings):
                raise bad("stop_strings", "must be a non-empty string or a list of them.")
        num_beams = self.num_beams or 1
        n_return = self.num_return_sequences or 1
        if n_return > 1:
            if num_beams == 1 and not self.do_sample:
                raise bad(
                    "num_return_sequences",
                    "greedy decoding returns one sequence per prompt; set do_sample=True or num_beams > 1.",
                )
            if num_beams > 1 and n_return > num_beams:
                raise bad("num_return_sequences", f"must be <= num_beams ({num_beams}) in beam search.")
        groups = self.num_beam_groups or 1
        if groups > 1 and num_beams % groups != 0:
            raise bad("num_beam_groups", f"must divide num_beams ({num_beams}) into groups of equal size.")

    # ------------------------------------------------------------------ merging

    def merged(
        self, *fallbacks: GenerationConfig | dict[str, Any] | None, defaults: bool = True
    ) -> GenerationConfig:
        """A copy where every field still ``None`` takes the first non-``None`` value among ``fallbacks``
        (lower-priority sources, in order), and then :data:`GLOBAL_DEFAULTS` unless ``defaults=False``."""
        out = copy.deepcopy(self)
        for source in (*fallbacks, GLOBAL_DEFAULTS if defaults else None):
            if source is None:
                continue
            values = source if isinstance(source, dict) else source.to_dict(include_extra=False)
            for key, value in values.items():
                if key in _FIELD_NAMES and key != "extra" and getattr(out, key) is None and value is not None:
                    setattr(out, key, copy.deepcopy(value))
        out.validate()
        return out

    def update(self, **kwargs: Any) -> dict[str, Any]:
        """Set the known fields among ``kwargs`` and return the others (transformers' ``update``)."""
        unused = {}
        for key, value in kwargs.items():
            if key in _FIELD_NAMES and key != "extra":
                setattr(self, key, value)
            else:
                unused[key] = value
        self.validate()
        return unused

    # ------------------------------------------------------------------ (de)serialization

    @classmethod
    def from_dict(cls, config_dict: dict[str, Any], **kwargs: Any) -> GenerationConfig:
        """Build from the keys of a ``generation_config.json`` (unknown keys go to ``extra``)."""
        data = {**config_dict, **kwargs}
        known = {k: v for k, v in data.items() if k in _FIELD_NAMES and k != "extra"}
        extra = {k: v for k, v in data.items() if k not in _FIELD_NAMES}
        extra.update(data.get("extra") or {})
        return cls(**known, extra=extra)

    def to_dict(self, *, include_extra: bool = True) -> dict[str, Any]:
        """The set fields (``None`` ones left out), plus the kept unknown keys: what ``save_pretrained`` writes."""
        out = {k: v for k, v in asdict(self).items() if k != "extra" and v is not None}
        if include_extra:
            out.update({k: v for k, v in self.extra.items() if k not in out})
        return out

    def to_json_string(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_model_config(cls, model_config: Any) -> GenerationConfig:
        """The generation settings a model config carries: its special tokens, and any generation field a
        legacy config.json still holds (e.g. ``max_length``, ``do_sample``)."""
        data = model_config if isinstance(model_config, dict) else model_config.to_dict()
        data = {k: v for k, v in data.items() if v is not None}
        known = {k: v for k, v in data.items() if k in _FIELD_NAMES and k != "extra"}
        for key in ("pad_token_id", "bos_token_id", "eos_token_id", "decoder_start_token_id"):
            # Some config.json files write -1 for "none"; transformers carries on, so do we (without it).
            ids = _as_id_list(known.get(key))
            if ids is not None and any(not isinstance(i, int) or i < 0 for i in ids):
                logger.warning("ignoring %s=%r from the model config: not a token id.", key, known.pop(key))
        return cls(**known)

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str | os.PathLike[str],
        config_file_name: str = GENERATION_CONFIG_NAME,
        *,
        hub: HubOptions | None = None,
        **kwargs: Any,
    ) -> GenerationConfig:
        """Read ``generation_config.json`` from a directory or a Hub repo. The Hub keywords (``revision``,
        ``subfolder``, ...) go on top of ``hub``; the other ``kwargs`` override the file's values."""
        hub = HubOptions.pop_from(kwargs, base=hub)
        path = resolve_file(pretrained_model_name_or_path, config_file_name, hub=hub)
        assert path is not None  # resolve_file raises rather than return None without missing_ok
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise XfConfigError(
                f"{path} is not valid JSON ({e}); fix the file or delete it to use the model's defaults.",
                file=str(path),
            ) from e
        if not isinstance(data, dict):
            raise XfConfigError(f"{path} must hold a JSON object, not {type(data).__name__}.", file=str(path))
        try:
            return cls.from_dict(data, **kwargs)
        except XfConfigError as e:
            raise XfConfigError(f"{path}: {e}; fix that key in the file.", key=e.key, file=str(path)) from e

    def save_pretrained(
        self, save_directory: str | os.PathLike[str], config_file_name: str = GENERATION_CONFIG_NAME
    ) -> Path:
        """Write ``generation_config.json`` into ``save_directory`` (created if needed); return its path."""
        directory = Path(save_directory)
        if directory.is_file():
            raise XfFileNotFoundError(
                f"{directory} is a file; pass a directory to save {config_file_name} into.",
                path=str(directory),
            )
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / config_file_name
        path.write_text(self.to_json_string(), encoding="utf-8")
        return path


_FIELD_NAMES = frozenset(f.name for f in fields(GenerationConfig))


def _as_id_list(value: int | list[int] | None) -> list[int] | None:
    if value is None:
        return None
    return [value] if isinstance(value, int) else list(value)


def resolve_generation_config(model: Any, config: GenerationConfig | None) -> GenerationConfig:
    """A copy of ``config`` whose unset fields come from ``model.generation_config`` (or, without one, from
    the special tokens of ``model.config``), then from :data:`GLOBAL_DEFAULTS`; validated as a whole.

    ``max_length`` stays ``None`` when nobody set it, so that :func:`finalize_lengths` can apply the default
    of 20 new tokens.
    """
    model_config = getattr(model, "generation_config", None)
    if model_config is None and getattr(model, "config", None) is not None:
        model_config = GenerationConfig.from_model_config(model.config)
    merged = (config if config is not None else GenerationConfig()).merged(model_config, defaults=False)
    user_max_length = merged.max_length
    merged = merged.merged()
    merged.max_length = user_max_length
    return merged


def finalize_lengths(config: GenerationConfig, *, prompt_length: int, model: Any = None) -> GenerationConfig:
    """Turn ``max_new_tokens`` (or the default) into the final ``max_length``, in place; return ``config``.

    Without ``max_new_tokens`` or ``max_length`` the default is 20 new tokens, capped at the model's
    ``max_position_embeddings``.
    """
    if config.max_new_tokens is not None:
        config.max_length = prompt_length + config.max_new_tokens
    elif config.max_length is None:
        config.max_length = prompt_length + GLOBAL_DEFAULTS["max_length"]
        limit = getattr(getattr(model, "config", None), "max_position_embeddings", None)
        if isinstance(limit, int):
            config.max_length = min(config.max_length, limit)
    return config
