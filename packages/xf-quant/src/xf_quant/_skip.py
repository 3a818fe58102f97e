"""Which modules stay in full precision.

A skip name matches whole, consecutive components of a module path: ``"mlp"`` matches
``model.layers.0.mlp.down_proj``, ``"layers.1"`` matches ``model.layers.1.mlp`` but not ``model.layers.11.mlp``,
``"mlp.gate"`` does not match ``mlp.gate_proj``; ``"*"`` stands for any one component (``"layers.*.mlp"``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn

__all__ = ["default_skip_modules", "matches_module", "modules_to_not_convert", "unmatched_skip_modules"]


def _matches(parts: Sequence[str], pattern: Sequence[str]) -> bool:
    n = len(pattern)
    return any(
        all(p == "*" or p == q for p, q in zip(pattern, parts[i : i + n], strict=True))
        for i in range(len(parts) - n + 1)
    )


def matches_module(name: str, patterns: Iterable[str]) -> bool:
    """True when module path ``name`` matches one of ``patterns`` (whole path components, ``*`` wildcard)."""
    parts = name.split(".")
    return any(_matches(parts, pattern.strip(".").split(".")) for pattern in patterns if pattern)


def default_skip_modules(model: nn.Module, *, like_transformers: bool = False) -> list[str]:
    """The modules kept in full precision by default: the output head, the modules of tied weights, and the
    module owning the model's last parameter (a task head such as ``score`` or ``classifier``).

    ``like_transformers`` keeps the last parameter's module only when that parameter is a ``weight``, as
    transformers does (its head with a bias, e.g. BERT's ``pooler.dense``, ends up quantized); it is used to
    read checkpoints transformers quantized. These are full module paths: they match themselves and their
    children only.
    """
    names: set[str] = set()
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if head is not None:
        names.update(name for name, module in model.named_modules() if module is head)
    tied = getattr(model, "_tied_weights_keys", None) or {}
    if isinstance(tied, dict):
        names.update(k.rpartition(".")[0] for pair in tied.items() for k in pair)
    else:  # a list of tied parameter names
        names.update(k.rpartition(".")[0] for k in tied)
    params = [name for name, _ in model.named_parameters()]
    if params and (params[-1].endswith(".weight") or not like_transformers):
        names.add(params[-1].rpartition(".")[0])
    return sorted(n for n in names if n)


def modules_to_not_convert(model: nn.Module, skip_modules: Iterable[str] | None = None) -> list[str]:
    """:func:`default_skip_modules` plus the user's ``skip_modules`` (added to, never replacing, the default)."""
    return sorted(set(default_skip_modules(model)) | set(skip_modules or ()))


def unmatched_skip_modules(model: nn.Module, skip_modules: Iterable[str]) -> list[str]:
    """The entries of ``skip_modules`` that match no module of ``model`` (a misspelt name keeps nothing in full
    precision, silently)."""
    names = [name for name, _ in model.named_modules() if name]
    return [p for p in dict.fromkeys(skip_modules) if not any(matches_module(n, [p]) for n in names)]
