"""Tools for chat templates given as Python functions: a JSON schema from type hints and the docstring.

The function needs a type hint on every argument and a Google-style docstring with a description of each
argument (``Args:``); ``(choices: [...])`` at the end of an argument's description becomes an ``enum``.
The schema has the shape transformers' ``get_json_schema`` gives, so templates render the same.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import re
import types
from collections.abc import Callable
from enum import Enum
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from xf_tokenize.errors import ChatTemplateError

__all__ = ["function_schema"]

_SCALARS = {int: "integer", float: "number", str: "string", bool: "boolean", type(None): "null"}
_PLAIN: dict[Any, dict[str, Any]] = {
    **{kind: {"type": name} for kind, name in _SCALARS.items()},
    list: {"type": "array"},
    tuple: {"type": "array"},
    dict: {"type": "object"},
    Any: {},
}
_DESCRIPTION = re.compile(r"^(.*?)\s*(?:Args:|Returns:|Raises:|\Z)", re.DOTALL)
_ARGS = re.compile(r"\n\s*Args:\n(.*?)\s*(?:Returns:|Raises:|\Z)", re.DOTALL)
_RETURNS = re.compile(r"\n\s*Returns:\n\s*(.*?)\s*(?:Raises:|\Z)", re.DOTALL)
_ARG_LINE = re.compile(r"^([ \t]*)(\w+)(?:[ \t]*\([^()\n]*\))?:\s*(.*)$")
_CHOICES = re.compile(r"\(choices:\s*(.*?)\)\s*$", re.IGNORECASE)


def function_schema(func: Callable[..., Any]) -> dict[str, Any]:
    """``{"type": "function", "function": {name, description, parameters[, return]}}`` for ``func``."""
    name = getattr(func, "__name__", "operation")
    doc = inspect.getdoc(func)
    if not doc:
        raise ChatTemplateError(f"tool {name} has no docstring; describe it and its arguments (Google style)")
    doc = doc.strip()
    description, arg_docs, returns_doc = _parse_docstring(doc)
    parameters = _parameters_schema(func, name)
    returns = parameters["properties"].pop("return", None)
    if returns is not None and returns_doc is not None:
        returns["description"] = returns_doc
    for arg, schema in parameters["properties"].items():
        if arg not in arg_docs:
            raise ChatTemplateError(
                f"the docstring of tool {name} does not describe argument {arg!r} under Args:"
            )
        text = arg_docs[arg]
        choices = _CHOICES.search(text)
        if choices:
            schema["enum"] = [c.strip() if isinstance(c, str) else c for c in json.loads(choices.group(1))]
            text = text[: choices.start()].strip()
        schema["description"] = text
    function: dict[str, Any] = {"name": name, "description": description, "parameters": parameters}
    if returns is not None:
        function["return"] = returns
    return {"type": "function", "function": function}


def _parse_docstring(doc: str) -> tuple[str | None, dict[str, str], str | None]:
    """(description, {argument: description}, returns) of a Google-style docstring."""
    head = _DESCRIPTION.search(doc)
    block = _ARGS.search(doc)
    returns = _RETURNS.search(doc)
    args: dict[str, str] = {}
    if block is not None:
        lines = [line for line in block.group(1).split("\n") if line.strip()]
        current: str | None = None
        indent = ""
        for line in lines:
            match = _ARG_LINE.match(line)
            # A "name:" line starts a new argument unless it is indented deeper than the current one.
            if match and (current is None or len(match.group(1)) <= len(indent)):
                current, indent = match.group(2), match.group(1)
                args[current] = match.group(3)
            elif current is not None:
                args[current] += "\n" + line
        args = {k: re.sub(r"\s*\n+\s*", " ", v.strip()) for k, v in args.items()}
    return (
        head.group(1).strip() if head else None,
        args,
        returns.group(1).strip() if returns else None,
    )


def _parameters_schema(func: Callable[..., Any], name: str) -> dict[str, Any]:
    hints = get_type_hints(func)
    signature = inspect.signature(func)
    first = next(iter(signature.parameters), None)
    implicit = (
        first
        if first in ("self", "cls") and signature.parameters[first].annotation is inspect.Parameter.empty
        else None
    )
    required = []
    for arg, param in signature.parameters.items():
        if arg == implicit:
            continue
        if param.annotation is inspect.Parameter.empty:
            raise ChatTemplateError(f"argument {arg!r} of tool {name} has no type hint")
        if param.default is inspect.Parameter.empty:
            required.append(arg)
    properties: dict[str, Any] = {}
    for arg, hint in hints.items():
        if arg == implicit:
            continue
        if arg == "return":
            with contextlib.suppress(ChatTemplateError):  # most templates ignore the return type
                properties["return"] = _hint_schema(hint)
        else:
            properties[arg] = _hint_schema(hint)
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    return schema


def _enum_schema(values: list[Any], what: str) -> dict[str, Any]:
    if not values:
        raise ChatTemplateError(f"{what} has no values, so nothing could match it")
    if any(type(v) not in _SCALARS for v in values):
        raise ChatTemplateError(f"{what} has values that are not JSON scalars (int, float, str, bool, None)")
    kinds = list(dict.fromkeys(_SCALARS[type(v)] for v in values))
    return {"type": kinds[0] if len(kinds) == 1 else kinds, "enum": values}


def _hint_schema(hint: Any) -> dict[str, Any]:
    """The JSON schema of one type hint (scalars, Enum, Literal, Union/Optional, list, tuple, dict)."""
    origin, args = get_origin(hint), get_args(hint)
    if origin is None:
        if isinstance(hint, type) and issubclass(hint, Enum):
            return _enum_schema([member.value for member in hint], f"the Enum {hint.__name__}")
        if hint in _PLAIN:
            return dict(_PLAIN[hint])
        raise ChatTemplateError(
            f"cannot write the type hint {hint!r} as a JSON schema; use int, float, str, bool, Enum, Literal, "
            "or list/tuple/dict/Union of those, or pass the tool as a JSON schema dict"
        )
    if origin is Union or origin is types.UnionType:
        parts = [_hint_schema(a) for a in args if a is not type(None)]
        if len(parts) == 1:
            out = parts[0]
        elif all(set(p) == {"type"} and isinstance(p["type"], str) for p in parts):
            names = sorted({p["type"] for p in parts})
            out = {"type": names[0] if len(names) == 1 else names}
        else:
            out = {"anyOf": parts}
        if type(None) in args:
            out["nullable"] = True
        return out
    if origin is Literal and args:
        return _enum_schema(list(args), "the Literal")
    if origin is list:
        return {"type": "array", "items": _hint_schema(args[0])} if args else {"type": "array"}
    if origin is tuple:
        if not args:
            return {"type": "array"}
        if len(args) == 1 or ... in args:
            raise ChatTemplateError(
                f"the type hint {hint} is a one-element or variable-length tuple; use list[...] instead"
            )
        return {"type": "array", "prefixItems": [_hint_schema(a) for a in args]}
    if origin is dict:
        out = {"type": "object"}
        if len(args) == 2:
            out["additionalProperties"] = _hint_schema(args[1])
        return out
    raise ChatTemplateError(f"cannot write the type hint {hint!r} as a JSON schema")
