"""What a sentence-transformers model directory says about how to embed: its module files, read once.

sentence-transformers saves, beside the transformer's own files:

* ``modules.json``: the module chain, e.g. Transformer (path ``""``) -> Pooling (``1_Pooling``) ->
  Normalize (``2_Normalize``);
* ``1_Pooling/config.json``: the pooling mode (``pooling_mode`` in new files, ``pooling_mode_*_tokens``
  flags in old ones; several modes are concatenated in a fixed order) and ``include_prompt``;
* ``sentence_bert_config.json`` (in the Transformer module's folder): ``max_seq_length`` and
  ``do_lower_case``;
* ``config_sentence_transformers.json``: ``prompts``, ``default_prompt_name`` and ``similarity_fn_name``.

:func:`read_sentence_config` turns them into one :class:`SentenceConfig`; a directory without them gives the
defaults (mean pooling, no normalization, the model's own length limit, cosine similarity). A module xf does
not implement (Dense, a custom module) is recorded, and using the config for pooled embeddings then raises
:class:`~xf_pipeline.errors.UnsupportedSentenceModuleError`, never silently embedding differently.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xf_core import HubOptions, resolve_file
from xf_core.errors import XfConfigError
from xf_pipeline.errors import UnsupportedSentenceModuleError

__all__ = ["POOLING_MODES", "SIMILARITY_FUNCTIONS", "SentenceConfig", "read_sentence_config"]

POOLING_MODES: tuple[str, ...] = ("cls", "mean", "max", "mean_sqrt_len_tokens", "weightedmean", "lasttoken")
SIMILARITY_FUNCTIONS: tuple[str, ...] = ("cosine", "dot", "euclidean", "manhattan")

# The legacy flags of 1_Pooling/config.json, in the order sentence-transformers concatenates their outputs.
_LEGACY_POOLING_FLAGS = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
}
_MODULE_KINDS = {
    "sentence_transformers.models.Transformer": "transformer",
    "sentence_transformers.models.Pooling": "pooling",
    "sentence_transformers.models.Normalize": "normalize",
    "sentence_transformers.base.modules.transformer.Transformer": "transformer",
    "sentence_transformers.sentence_transformer.modules.pooling.Pooling": "pooling",
    "sentence_transformers.sentence_transformer.modules.normalize.Normalize": "normalize",
}


@dataclass(frozen=True, kw_only=True)
class SentenceConfig:
    """How a model's sentence embeddings are made: pooling, normalization, length, case, prompts."""

    pooling: tuple[str, ...] = ("mean",)
    normalize: bool = False
    max_seq_length: int | None = None  # None: the model's own limit
    do_lower_case: bool = False
    include_prompt: bool = True
    prompts: dict[str, str] = field(default_factory=dict)
    default_prompt_name: str | None = None
    similarity_fn_name: str = "cosine"
    unsupported: tuple[str, ...] = ()  # module types in modules.json that xf does not implement
    source: str = ""  # where the files were read from, for error messages

    def __post_init__(self) -> None:
        for mode in self.pooling:
            if mode not in POOLING_MODES:
                raise XfConfigError(
                    f"pooling mode {mode!r} is not one of {', '.join(POOLING_MODES)}.", key="pooling_mode"
                )
        if self.similarity_fn_name not in SIMILARITY_FUNCTIONS:
            raise XfConfigError(
                f"similarity_fn_name {self.similarity_fn_name!r} is not one of "
                f"{', '.join(SIMILARITY_FUNCTIONS)}.",
                key="similarity_fn_name",
            )
        if self.default_prompt_name is not None and self.default_prompt_name not in self.prompts:
            raise XfConfigError(
                f"default_prompt_name {self.default_prompt_name!r} is not among the prompts "
                f"({', '.join(self.prompts) or 'none'}).",
                key="default_prompt_name",
            )

    def check_supported(self) -> None:
        """Raise when the model's module chain holds a module xf does not run (its embeddings would differ)."""
        if self.unsupported:
            raise UnsupportedSentenceModuleError(self.unsupported, source=self.source)


def _read_json(path: Path | None) -> dict[str, Any] | list[Any] | None:
    if path is None:
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise XfConfigError(
            f"{path} is not valid JSON ({e}); re-download the model's files.", file=str(path)
        ) from e


def _pooling_modes(data: dict[str, Any], file: str) -> tuple[tuple[str, ...], bool]:
    """The pooling modes and ``include_prompt`` of a Pooling module's config.json."""
    modes = data.get("pooling_mode")
    if modes is None:
        found = tuple(mode for flag, mode in _LEGACY_POOLING_FLAGS.items() if data.get(flag))
        modes = found or ("mean",)
    elif isinstance(modes, str):
        modes = (modes,)
    else:
        modes = tuple(modes)
    for mode in modes:
        if mode not in POOLING_MODES:
            raise XfConfigError(
                f"{file}: pooling mode {mode!r} is not one of {', '.join(POOLING_MODES)}.",
                key="pooling_mode",
                file=file,
            )
    return modes, bool(data.get("include_prompt", True))


def read_sentence_config(
    path_or_repo_id: str | os.PathLike[str] | None, *, hub: HubOptions | None = None
) -> SentenceConfig:
    """The :class:`SentenceConfig` of a model directory or Hub repo; the defaults when it has no
    sentence-transformers files (or when ``path_or_repo_id`` is None or empty)."""
    if not path_or_repo_id:
        return SentenceConfig()
    source = os.fspath(path_or_repo_id)

    def find(name: str) -> Path | None:
        return resolve_file(source, name, hub=hub, missing_ok=True)

    modules = _read_json(find("modules.json"))
    if modules is None:
        return SentenceConfig(source=source)
    if not isinstance(modules, list):
        raise XfConfigError(f"{source}/modules.json must be a list of modules.", file="modules.json")
    settings: dict[str, Any] = {"pooling": ("mean",), "normalize": False}
    unsupported: list[str] = []
    transformer_path = ""
    for module in sorted(modules, key=lambda m: int(m.get("idx", 0))):
        kind = _MODULE_KINDS.get(str(module.get("type", "")))
        folder = str(module.get("path", "")).strip("/")
        if kind == "transformer":
            transformer_path = folder
        elif kind == "pooling":
            name = f"{folder}/config.json" if folder else "config.json"
            data = _read_json(find(name))
            if not isinstance(data, dict):
                raise XfConfigError(
                    f"{source}/{name} is missing or not an object; re-download the model's files.", file=name
                )
            settings["pooling"], settings["include_prompt"] = _pooling_modes(data, name)
        elif kind == "normalize":
            settings["normalize"] = True
        else:
            unsupported.append(str(module.get("type", "?")))
    bert_name = (
        f"{transformer_path}/sentence_bert_config.json" if transformer_path else "sentence_bert_config.json"
    )
    bert = _read_json(find(bert_name))
    if isinstance(bert, dict):
        if isinstance(bert.get("max_seq_length"), int):
            settings["max_seq_length"] = bert["max_seq_length"]
        settings["do_lower_case"] = bool(bert.get("do_lower_case", False))
    st = _read_json(find("config_sentence_transformers.json"))
    if isinstance(st, dict):
        settings["prompts"] = {str(k): str(v) for k, v in (st.get("prompts") or {}).items()}
        settings["default_prompt_name"] = st.get("default_prompt_name") or None
        settings["similarity_fn_name"] = st.get("similarity_fn_name") or "cosine"
    return SentenceConfig(**settings, unsupported=tuple(unsupported), source=source)
