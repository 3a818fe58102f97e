"""Model configs: typed dataclasses that read and write transformers' ``config.json``.

Every family config subclasses :class:`PretrainedConfig` (a dataclass) and sets ``model_type``. Translation
from and to the file happens at one boundary: :meth:`PretrainedConfig.from_dict` / :meth:`~PretrainedConfig.to_dict`.

* Keys the class does not know are kept in ``config.extra`` and written back unchanged (round-trip); they
  are readable as attributes (``config.some_key``) but never change behaviour.
* ``aliases`` maps another name to a field (GPT-2's ``hidden_size`` -> ``n_embd``); both names read and
  write the same value, and ``to_dict`` writes the field name. Name fields as transformers writes them.
* ``__post_init__`` validates and raises :class:`~xf_core.errors.XfConfigError` (a ``ValueError``) naming
  the field.
"""

from __future__ import annotations

import dataclasses
import json
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Self

from xf_core import HubOptions, resolve_file
from xf_core.errors import XfConfigError, XfOSError

__all__ = [
    "CONFIG_NAME",
    "PretrainedConfig",
    "check_field_types",
    "dtype_to_str",
    "load_json",
    "pop_legacy_dtype",
    "resolve_config_file",
]

CONFIG_NAME = "config.json"

# Keys transformers may write that are bookkeeping, not settings: read and dropped on load.
_DROPPED_KEYS = ("_name_or_path", "name_or_path", "_commit_hash", "_attn_implementation_autoset")
_DEFAULT_ID2LABEL = {0: "LABEL_0", 1: "LABEL_1"}
_DTYPE_NAMES = {
    "float32",
    "float16",
    "bfloat16",
    "float64",
    "float8_e4m3fn",
    "float8_e5m2",
    "int8",
    "uint8",
    "int16",
    "int32",
    "int64",
    "bool",
}
# Short names some configs and users write for the same dtypes.
_DTYPE_SYNONYMS = {
    "fp32": "float32",
    "fp16": "float16",
    "half": "float16",
    "bf16": "bfloat16",
    "float": "float32",
}


def dtype_to_str(dtype: Any, *, key: str = "dtype", file: str | None = None) -> str:
    """``torch.bfloat16`` / ``"torch.bfloat16"`` / ``"bf16"`` -> ``"bfloat16"``; anything else is an error."""
    text = str(dtype).removeprefix("torch.")
    text = _DTYPE_SYNONYMS.get(text, text)
    if text not in _DTYPE_NAMES:
        where = f" in {file}" if file else ""
        raise XfConfigError(
            f"{key}={dtype!r}{where} is not a dtype; use one of {', '.join(sorted(_DTYPE_NAMES))} "
            "(or a torch.dtype, or 'auto' where loading allows it).",
            key=key,
            file=file,
        )
    return text


def pop_legacy_dtype(data: dict[str, Any], *, unset: Any = None) -> None:
    """Move transformers' older name ``torch_dtype`` in ``data`` to ``dtype``: the one place it is translated,
    for config.json keys and ``from_pretrained`` keywords alike. ``dtype`` equal to ``unset`` (or None) is
    replaced; any other ``dtype`` must name the same dtype."""
    if "torch_dtype" not in data:
        return
    legacy = data.pop("torch_dtype")
    dtype = data.get("dtype")
    if dtype is None or dtype is unset or dtype == unset:
        data["dtype"] = legacy
    elif legacy is not None and dtype_to_str(dtype) != dtype_to_str(legacy, key="torch_dtype"):
        raise XfConfigError(
            f"dtype={dtype!r} and torch_dtype={legacy!r} disagree; torch_dtype is the older name of dtype, "
            "pass only dtype.",
            key="torch_dtype",
        )


def load_json(path: str | os.PathLike[str], *, what: str = "JSON file") -> dict[str, Any]:
    """Read a JSON object from ``path``; a syntax error names the file, line and column."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, UnicodeDecodeError) as e:
        if isinstance(e, FileNotFoundError):
            raise
        why = (
            "it is a directory, not a file"
            if isinstance(e, IsADirectoryError)
            else getattr(e, "strerror", None) or e
        )
        raise XfOSError(
            f"{path} cannot be read: {why}. Check that it is a file you may read (its permissions), or re-download "
            f"the {what}.",
            path=str(path),
            errno_=getattr(e, "errno", None),
        ) from e
    except json.JSONDecodeError as e:
        raise XfConfigError(
            f"{path} is not valid JSON ({e.msg} at line {e.lineno}, column {e.colno}); fix or re-download the "
            f"{what}.",
            file=str(path),
        ) from e
    if not isinstance(data, dict):
        raise XfConfigError(f"{path} must hold a JSON object, not {type(data).__name__}.", file=str(path))
    return data


_SCALARS: dict[Any, str] = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


def _field_kinds(cls: type) -> dict[str, tuple[Any, ...]]:
    """``{field: accepted kinds}`` for the fields of ``cls`` declared with int, float, bool or str (alone, in a
    union, or with None); fields of any other type are not checked here. Computed once per class."""
    kinds = cls.__dict__.get("_xf_field_kinds")
    if kinds is not None:
        return kinds
    hints = typing.get_type_hints(cls)
    kinds = {}
    for f in dataclasses.fields(cls):
        if f.name == "dtype":  # a torch.dtype or any of its names: dtype_to_str checks it
            continue
        hint = hints.get(f.name)
        members = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
        accepted: list[Any] = []
        for member in members:
            origin = typing.get_origin(member) or member
            if member is type(None):
                accepted.append(None)
            elif member in _SCALARS or origin in (list, dict, tuple):
                accepted.append(origin)
            else:  # Any, a class, a Literal: not a simple kind, leave the field to its own checks
                break
        else:
            if any(a in _SCALARS for a in accepted):
                kinds[f.name] = tuple(accepted)
    type.__setattr__(cls, "_xf_field_kinds", kinds)
    return kinds


def _is_kind(value: Any, kind: Any) -> bool:
    if kind is None:
        return value is None
    if kind is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


def check_field_types(cls: type, values: dict[str, Any]) -> None:
    """Raise :class:`XfConfigError` naming the key and the value when one of ``values`` does not have the type
    its field declares (``hidden_size: "abc"``). Fields of int, float, bool and str (or unions of them with
    None, lists, dicts) are checked; an int is accepted where a float is declared."""
    kinds = _field_kinds(cls)
    for name, value in values.items():
        accepted = kinds.get(name)
        if accepted is None or any(_is_kind(value, kind) for kind in accepted):
            continue
        names = [_SCALARS.get(k) or ("null" if k is None else f"a {k.__name__}") for k in accepted]
        raise XfConfigError(
            f"{name}={value!r} must be {' or '.join(names)}, not {type(value).__name__}; fix the value.",
            key=name,
        )


@dataclass(kw_only=True)
class PretrainedConfig:
    """Fields every model config shares; families add their own fields in a subclass."""

    model_type: ClassVar[str] = ""
    # Other names for fields: {alias: field name}. Read from files, readable and writable as attributes.
    aliases: ClassVar[dict[str, str]] = {}

    architectures: list[str] | None = None
    dtype: str | None = None
    id2label: dict[int, str] = field(default_factory=lambda: dict(_DEFAULT_ID2LABEL))
    label2id: dict[str, int] = field(default_factory=dict)
    problem_type: str | None = None
    pad_token_id: int | None = None
    bos_token_id: int | None = None
    eos_token_id: int | list[int] | None = None
    tie_word_embeddings: bool = True
    use_cache: bool = True
    initializer_range: float = 0.02
    quantization_config: dict[str, Any] | None = None
    # Not written to config.json: which ATTENTION function the model uses ("sdpa" or "eager").
    attn_implementation: str | None = field(default=None, metadata={"serialize": False})
    # Keys of config.json this class does not know, kept for the round-trip.
    extra: dict[str, Any] = field(
        default_factory=dict, repr=False, compare=False, metadata={"serialize": False}
    )
    # Where the config was read from (not written).
    name_or_path: str = field(default="", repr=False, compare=False, metadata={"serialize": False})

    def __post_init__(self) -> None:
        check_field_types(type(self), {f.name: getattr(self, f.name) for f in dataclasses.fields(self)})
        if self.dtype is not None:
            self.dtype = dtype_to_str(self.dtype)
        self.id2label = {int(k): v for k, v in (self.id2label or {}).items()}
        if not self.label2id or set(self.label2id.values()) != set(self.id2label):
            self.label2id = {v: k for k, v in self.id2label.items()}
        if self.problem_type not in (
            None,
            "regression",
            "single_label_classification",
            "multi_label_classification",
        ):
            raise XfConfigError(
                f"problem_type={self.problem_type!r} is not one of regression, single_label_classification, "
                "multi_label_classification.",
                key="problem_type",
            )
        if self.attn_implementation not in (None, "eager", "sdpa"):
            raise XfConfigError(
                f"attn_implementation={self.attn_implementation!r} is not one of 'eager', 'sdpa'.",
                key="attn_implementation",
            )
        self.validate()

    def validate(self) -> None:
        """Family checks; raise :class:`XfConfigError` naming the field. Called at the end of ``__post_init__``."""

    def check_positive(self, *names: str) -> None:
        """Raise :class:`XfConfigError` naming the first of ``names`` whose value is not positive."""
        for name in names:
            if getattr(self, name) <= 0:
                raise XfConfigError(f"{name}={getattr(self, name)} must be positive.", key=name)

    # ---- attribute aliases and extra keys -------------------------------------------------------------
    def __getattr__(self, name: str) -> Any:  # only called when normal lookup fails
        aliases = type(self).aliases
        if name in aliases:
            return getattr(self, aliases[name])
        extra = self.__dict__.get("extra")
        if extra is not None and name in extra:
            return extra[name]
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        name = type(self).aliases.get(name, name)
        if name not in self._field_names() and not name.startswith("_") and "extra" in self.__dict__:
            self.extra[name] = value
            return
        object.__setattr__(self, name, value)

    @classmethod
    def _field_names(cls) -> frozenset[str]:
        names = cls.__dict__.get("_xf_field_names")
        if names is None:
            names = frozenset(f.name for f in dataclasses.fields(cls))
            type.__setattr__(cls, "_xf_field_names", names)
        return names

    @property
    def num_labels(self) -> int:
        return len(self.id2label)

    @num_labels.setter
    def num_labels(self, value: int) -> None:
        if value != len(self.id2label):
            self.id2label = {i: f"LABEL_{i}" for i in range(value)}
            self.label2id = {v: k for k, v in self.id2label.items()}

    @property
    def torch_dtype(self) -> Any:
        """``dtype`` as a ``torch.dtype`` (None when unset)."""
        import torch

        return None if self.dtype is None else getattr(torch, self.dtype)

    # ---- the config.json boundary ------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: dict[str, Any], /, **overrides: Any) -> Self:
        """Build from a ``config.json`` dict; ``overrides`` win. Unknown keys go to ``extra``."""
        data = {**data, **overrides}
        names = cls._field_names()
        kwargs: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        num_labels = data.pop("num_labels", None)
        pop_legacy_dtype(data)
        data = cls._translate_legacy(data)
        for key, value in data.items():
            name = cls.aliases.get(key, key)
            if key in _DROPPED_KEYS or key == "model_type":
                continue
            if name in names and name not in ("extra", "name_or_path"):
                kwargs[name] = value
            else:
                extra[key] = value
        if "id2label" in kwargs and kwargs["id2label"] is not None:
            kwargs["id2label"] = {int(k): v for k, v in kwargs["id2label"].items()}
        elif "id2label" in kwargs:
            del kwargs["id2label"]
        if num_labels is not None and len(kwargs.get("id2label", _DEFAULT_ID2LABEL)) != num_labels:
            kwargs["id2label"] = {i: f"LABEL_{i}" for i in range(int(num_labels))}
            kwargs.pop("label2id", None)
        if kwargs.get("label2id") is None:
            kwargs.pop("label2id", None)
        check_field_types(cls, kwargs)  # before a family's __post_init__ computes with the values
        config = cls(**kwargs, extra=extra)
        config.name_or_path = str(data.get("_name_or_path", ""))
        return config

    @classmethod
    def _translate_legacy(cls, data: dict[str, Any]) -> dict[str, Any]:
        """Hook for families: rewrite legacy keys of a config.json dict (e.g. ``rope_scaling``) before use."""
        return data

    def to_dict(self) -> dict[str, Any]:
        """The ``config.json`` dict transformers writes for the same config (shared fields only when set)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if f.metadata.get("serialize", True) is False:
                continue
            value = getattr(self, f.name)
            if f.name in ("architectures", "dtype", "problem_type", "quantization_config") and value is None:
                continue
            if f.name in ("id2label", "label2id") and self.id2label == _DEFAULT_ID2LABEL:
                continue
            if f.name == "id2label":
                value = {str(k): v for k, v in value.items()}
            out[f.name] = _jsonable(value)
        out.update(self.extra)
        out["model_type"] = self.model_type
        return dict(sorted(out.items()))

    def to_json_string(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json_file(cls, path: str | os.PathLike[str], /, **overrides: Any) -> Self:
        data = load_json(path, what="model config")
        try:
            config = cls.from_dict(data, **overrides)
        except XfConfigError as e:
            if e.file is None:
                e.file = str(path)
                e.args = (f"{path}: {e.args[0]}",)
            raise
        except TypeError as e:  # a value of the wrong kind reached a dataclass field
            raise XfConfigError(f"{path}: {e}; fix the value in the file.", file=str(path)) from e
        config.name_or_path = str(Path(path).parent)
        return config

    @classmethod
    def from_pretrained(
        cls, path_or_repo_id: str | os.PathLike[str], /, *, hub: HubOptions | None = None, **kwargs: Any
    ) -> Self:
        """Read ``config.json`` from a directory or Hub repo.

        The Hub keywords (``revision``, ``subfolder``, ``cache_dir``, ``local_files_only``, ``token``) say
        where from, on top of ``hub``; the other keywords replace values from the file.
        """
        hub = HubOptions.pop_from(kwargs, base=hub)
        path = resolve_config_file(path_or_repo_id, hub=hub)
        data = load_json(path, what="model config")
        file_type = data.get("model_type")
        if cls.model_type and file_type and file_type != cls.model_type:
            from xf_core.logging import get_logger

            get_logger(__name__).warning(
                "%s has model_type %r but is loaded as %s (model_type %r); this may not work.",
                path,
                file_type,
                cls.__name__,
                cls.model_type,
            )
        config = cls.from_json_file(path, **kwargs)
        config.name_or_path = str(path_or_repo_id)
        return config

    def save_pretrained(self, save_directory: str | os.PathLike[str], /) -> Path:
        """Write ``config.json`` into ``save_directory`` (created if needed), atomically; return its path."""
        directory = Path(save_directory)
        if directory.is_file():
            raise XfConfigError(
                f"{directory} is a file; save_pretrained needs a directory.", file=str(directory)
            )
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / CONFIG_NAME
        tmp = directory / f".{CONFIG_NAME}.tmp"
        tmp.write_text(self.to_json_string(), encoding="utf-8")
        os.replace(tmp, path)
        return path

    def copy(self, **changes: Any) -> Self:
        """A copy with ``changes`` applied (validated again)."""
        return type(self).from_dict(
            self.to_dict() | {"attn_implementation": self.attn_implementation}, **changes
        )


def resolve_config_file(path_or_repo_id: str | os.PathLike[str], *, hub: HubOptions | None = None) -> Path:
    """The local path of ``config.json``; a missing file says that the config file is what is missing."""
    from xf_core import check_interrupted_save, is_local_path
    from xf_core.errors import XfFileNotFoundError

    hub = hub or HubOptions()
    subfolder = hub.subfolder
    local = is_local_path(path_or_repo_id)
    if local:
        check_interrupted_save(
            path_or_repo_id
        )  # a save killed between its renames: say where the last one is
    # For a Hub repo the resolver's own message says why the file is missing (offline, no such repo, ...).
    path = resolve_file(path_or_repo_id, CONFIG_NAME, hub=hub, missing_ok=local)
    if path is None and local:
        folder = Path(os.path.expanduser(str(path_or_repo_id)))
        there = folder / subfolder / CONFIG_NAME if subfolder else folder / CONFIG_NAME
        if there.exists():  # but not a file
            load_json(there, what="model config")  # raises the "cannot be read" error naming it
    if path is None:
        where = f"{path_or_repo_id}/{subfolder}" if subfolder else str(path_or_repo_id)
        raise XfFileNotFoundError(
            f"{where} has no {CONFIG_NAME}, so the model type is unknown; pass the directory that holds the "
            "model's config.json (or save the config there with config.save_pretrained).",
            path=str(path_or_repo_id),
            filename=CONFIG_NAME,
        )
    return path


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {(str(k) if not isinstance(k, str) else k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value
