"""``ArgumentParser``: command-line arguments straight into dataclasses (transformers' HfArgumentParser).

Each dataclass field becomes ``--field_name`` (``--field-name`` works too). Supported field types: str, int,
float, Path, bool (``--x``, ``--x false``, ``--no-x``), Enum and Literal (choices), ``list[T]``
(``--x a b c``) and ``T | None``. A field without a default is required. Field metadata may hold ``help``
and ``aliases``. The same dataclasses also fill from a dict, a JSON file or a YAML file.
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import json
import sys
import types
import typing
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

from xf_core.errors import XfValueError

__all__ = ["ArgumentParser"]

D = TypeVar("D")


def _parse_bool(value: str | bool) -> bool:
    if isinstance(value, bool):
        return value
    lowered = value.lower()
    if lowered in {"1", "true", "yes", "y", "t", "on"}:
        return True
    if lowered in {"0", "false", "no", "n", "f", "off"}:
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean (true/false, yes/no, 1/0), got {value!r}")


def _strip_optional(tp: Any) -> tuple[Any, bool]:
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(get_args(tp)) == 2:
            return args[0], True
        raise XfValueError(f"only `T | None` unions are supported in argument dataclasses, got {tp}")
    return tp, False


def _choices_kwargs(tp: Any) -> dict[str, Any] | None:
    if get_origin(tp) is Literal:
        choices = list(get_args(tp))
        kinds = {type(c) for c in choices}
        convert = kinds.pop() if len(kinds) == 1 else str
        if convert is bool:
            convert = _parse_bool
        return {"choices": choices, "type": convert}
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        values = [str(m.value) for m in tp]

        def convert(value: str) -> Any:
            for member in tp:
                if str(member.value) == value or member.name == value:
                    return member
            raise argparse.ArgumentTypeError(f"invalid choice {value!r}; choose from {values}")

        return {"choices": list(tp), "type": convert, "metavar": "{" + ",".join(values) + "}"}
    return None


def _parse_json_object(value: str) -> dict[str, Any]:
    """A dict field on the command line: a JSON object, e.g. ``'{"use_reentrant": false}'``."""
    try:
        parsed = json.loads(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not JSON ({e}); pass an object like '{{\"key\": 1}}'"
        ) from e
    if not isinstance(parsed, dict):
        raise argparse.ArgumentTypeError(f"{value!r} is not a JSON object; pass one like '{{\"key\": 1}}'")
    return parsed


class ArgumentParser(argparse.ArgumentParser):
    """An ``argparse.ArgumentParser`` whose arguments come from one or more dataclasses."""

    def __init__(self, dataclass_types: type | Iterable[type], **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", argparse.ArgumentDefaultsHelpFormatter)
        super().__init__(**kwargs)
        if dataclasses.is_dataclass(dataclass_types):
            dataclass_types = [dataclass_types]  # type: ignore[list-item]
        self.dataclass_types: list[type] = list(dataclass_types)  # type: ignore[arg-type]
        for dtype in self.dataclass_types:
            if not dataclasses.is_dataclass(dtype):
                raise XfValueError(
                    f"{dtype!r} is not a dataclass; ArgumentParser only takes dataclass types."
                )
            self._add_dataclass_arguments(dtype)

    def _add_dataclass_arguments(self, dtype: type) -> None:
        group = self.add_argument_group(dtype.__name__) if getattr(dtype, "_argument_group", True) else self
        hints = get_type_hints(dtype)
        for field in dataclasses.fields(dtype):
            if field.init:
                self._add_field(group, field, hints[field.name])

    def _add_field(self, group: Any, field: dataclasses.Field, tp: Any) -> None:
        long = f"--{field.name}"
        names = [long]
        if "_" in field.name:
            names.append(f"--{field.name.replace('_', '-')}")
        aliases = field.metadata.get("aliases", [])
        names += [aliases] if isinstance(aliases, str) else list(aliases)
        kwargs: dict[str, Any] = {"dest": field.name, "help": field.metadata.get("help")}

        has_default = (
            field.default is not dataclasses.MISSING or field.default_factory is not dataclasses.MISSING
        )
        default = (
            field.default
            if field.default is not dataclasses.MISSING
            else field.default_factory()
            if field.default_factory is not dataclasses.MISSING
            else None
        )
        tp, optional = _strip_optional(tp)
        origin = get_origin(tp)
        choices = _choices_kwargs(tp)

        if tp is bool:
            kwargs.update(type=_parse_bool, nargs="?", const=True)
            if not has_default:
                default = False  # a bare bool without default means "off unless given"
                has_default = True
            group.add_argument(*names, default=default, **kwargs)
            if default is True or optional:
                group.add_argument(
                    f"--no_{field.name}",
                    f"--no-{field.name.replace('_', '-')}",
                    dest=field.name,
                    action="store_false",
                    help=f"turn off --{field.name}",
                )
            return
        if choices is not None:
            kwargs.update(choices)
        elif origin in (list, Sequence, typing.Sequence, tuple) or tp is list:
            inner = get_args(tp)[0] if get_args(tp) else str
            inner_choices = _choices_kwargs(inner)
            kwargs["nargs"] = "+" if not has_default else "*"
            if inner_choices is not None:
                kwargs.update(inner_choices)
            else:
                kwargs["type"] = _parse_bool if inner is bool else inner
        elif origin is dict or tp is dict:
            kwargs.update(type=_parse_json_object, metavar="JSON")
        elif tp in (str, int, float, Path) or (isinstance(tp, type) and tp.__module__ != "typing"):
            kwargs["type"] = tp
        else:
            raise XfValueError(f"field {field.name!r} has type {tp}, which ArgumentParser cannot parse.")

        if has_default:
            kwargs["default"] = default
        else:
            kwargs["required"] = True
        group.add_argument(*names, **kwargs)

    def parse_args_into_dataclasses(
        self,
        args: Sequence[str] | None = None,
        *,
        return_remaining_strings: bool = False,
        args_file: str | Path | None = None,
    ) -> tuple[Any, ...]:
        """Parse ``args`` (default: ``sys.argv[1:]``) into one instance per dataclass, in order.

        ``args_file`` (a JSON or YAML file) supplies defaults that command-line arguments override. Unknown
        arguments are an error unless ``return_remaining_strings=True``, in which case they are returned last.
        """
        argv = list(sys.argv[1:] if args is None else args)
        if args_file is not None:
            self._use_file_defaults(_read_mapping_file(Path(args_file)))
        namespace, remaining = self.parse_known_args(argv)
        outputs = self._split_namespace(vars(namespace))
        if remaining and not return_remaining_strings:
            self.error(f"unrecognized arguments: {' '.join(remaining)}")
        if return_remaining_strings:
            return (*outputs, remaining)
        return tuple(outputs)

    def _use_file_defaults(self, values: dict[str, Any]) -> None:
        known = {action.dest for action in self._actions}
        unknown = sorted(set(values) - known)
        if unknown:
            self.error(f"unknown keys in the arguments file: {', '.join(unknown)}")
        for action in self._actions:
            if action.dest in values:
                value = values[action.dest]
                if isinstance(value, str) and callable(action.type):
                    value = action.type(value)
                action.default = value
                action.required = False

    def _split_namespace(self, values: dict[str, Any]) -> list[Any]:
        outputs = []
        for dtype in self.dataclass_types:
            names = {f.name for f in dataclasses.fields(dtype) if f.init}
            outputs.append(dtype(**{k: v for k, v in values.items() if k in names}))
        return outputs

    def parse_dict(self, data: dict[str, Any], *, allow_extra_keys: bool = False) -> tuple[Any, ...]:
        """Fill the dataclasses from a dict; unknown keys are an error unless ``allow_extra_keys``."""
        known: set[str] = set()
        outputs = []
        for dtype in self.dataclass_types:
            names = {f.name for f in dataclasses.fields(dtype) if f.init}
            known |= names
            outputs.append(dtype(**{k: v for k, v in data.items() if k in names}))
        unknown = sorted(set(data) - known)
        if unknown and not allow_extra_keys:
            raise XfValueError(
                f"unknown keys {unknown}; the dataclasses "
                f"{[d.__name__ for d in self.dataclass_types]} accept {sorted(known)}."
            )
        return tuple(outputs)

    def parse_json_file(self, path: str | Path, *, allow_extra_keys: bool = False) -> tuple[Any, ...]:
        return self.parse_dict(_read_mapping_file(Path(path), kind="json"), allow_extra_keys=allow_extra_keys)

    def parse_yaml_file(self, path: str | Path, *, allow_extra_keys: bool = False) -> tuple[Any, ...]:
        return self.parse_dict(_read_mapping_file(Path(path), kind="yaml"), allow_extra_keys=allow_extra_keys)


def _read_mapping_file(path: Path, kind: str | None = None) -> dict[str, Any]:
    kind = kind or ("yaml" if path.suffix.lower() in {".yaml", ".yml"} else "json")
    try:
        text = path.read_text()
    except FileNotFoundError as e:
        from xf_core.errors import XfFileNotFoundError

        raise XfFileNotFoundError(f"no such arguments file: {path}", path=str(path)) from e
    try:
        if kind == "yaml":
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as e:
        raise XfValueError(f"{path} is not valid {kind.upper()}: {e}") from e
    if not isinstance(data, dict):
        raise XfValueError(
            f"{path} must hold a mapping of argument names to values, not {type(data).__name__}."
        )
    return data
