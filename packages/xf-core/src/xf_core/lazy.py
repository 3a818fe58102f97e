"""Lazy imports: keep ``import xf_<pkg>`` cheap and load heavy modules on first use.

Two small tools, both explicit:

* :func:`lazy_exports` gives a package ``__init__`` a module-level ``__getattr__``/``__dir__`` from a plain
  dict ``{public name: submodule}``; the submodule is imported the first time the name is used.
* :func:`require` imports an optional dependency (torch, bitsandbytes, accelerate, ...) when a feature
  needs it, and raises :class:`MissingDependencyError` naming the package to install when it is absent.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

from xf_core.errors import MissingDependencyError

__all__ = ["is_available", "lazy_exports", "require"]

# Import name -> the distribution to ``pip install`` when they differ.
_DIST_NAMES = {"yaml": "pyyaml", "jinja2": "jinja2", "sentencepiece": "sentencepiece"}


def is_available(module: str) -> bool:
    """True when ``module`` can be imported, without importing it."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def require(
    module: str, *, purpose: str | None = None, package: str | None = None, min_version: str | None = None
) -> ModuleType:
    """Import and return ``module``; if it is missing raise :class:`MissingDependencyError`.

    ``package`` is the distribution name to install (defaults to the top-level module name);
    ``min_version`` also checks the installed version.
    """
    dist = package or _DIST_NAMES.get(module.split(".")[0], module.split(".")[0])
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name is not None and module != e.name and not module.startswith(e.name + "."):
            raise  # the module exists but one of *its* imports is missing: show that, not a wrong hint
        raise MissingDependencyError(dist, purpose=purpose) from e
    if min_version is not None:
        from xf_core.deps import check_version

        check_version(dist, f">={min_version}", purpose=purpose)
    return mod


def lazy_exports(
    package: str, exports: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Module ``__getattr__`` and ``__dir__`` for ``package`` that import ``exports[name]`` on first use.

    ``exports`` maps a public name to the submodule that defines it, relative (``"._auto"``) or absolute::

        __getattr__, __dir__ = lazy_exports(__name__, {"AutoTokenizer": "._auto"})
    """
    cache: dict[str, Any] = {}

    def __getattr__(name: str) -> Any:
        if name in cache:
            return cache[name]
        target = exports.get(name)
        if target is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(target, package), name)
        cache[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(exports) | set(cache))

    return __getattr__, __dir__
