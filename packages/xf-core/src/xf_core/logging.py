"""Logging and progress bars for xf. Library code never prints; it logs or shows a bar.

All xf loggers hang under the ``xf`` logger. Its level comes from ``XF_VERBOSITY`` (default: warning) or
:func:`set_verbosity`. Progress bars are tqdm bars on stderr; ``XF_DISABLE_PROGRESS=1`` or
:func:`disable_progress_bars` turns them off, and when stderr is not a terminal (CI logs) a bar writes
one line when it ends instead of a line per update.
"""

from __future__ import annotations

import functools
import logging
import sys
import threading
from collections.abc import Iterable
from typing import Any, TypeVar

from xf_core.constants import disable_progress_env, verbosity_env

__all__ = [
    "disable_progress_bars",
    "enable_progress_bars",
    "get_logger",
    "get_verbosity",
    "progress_bar",
    "progress_bars_enabled",
    "set_verbosity",
]

T = TypeVar("T")

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}
_lock = threading.Lock()
_configured = False
_progress_override: bool | None = None


def _root() -> logging.Logger:
    global _configured
    root = logging.getLogger("xf")
    if not _configured:
        with _lock:
            if not _configured:
                handler = logging.StreamHandler()
                handler.setFormatter(logging.Formatter("[%(levelname)s|%(name)s] %(message)s"))
                root.addHandler(handler)
                root.propagate = False
                name = verbosity_env()
                if name is not None and name not in _LEVELS:
                    raise ValueError(f"XF_VERBOSITY={name!r} is not one of {', '.join(_LEVELS)}.")
                root.setLevel(_LEVELS[name] if name else logging.WARNING)
                _configured = True
    return root


def get_logger(name: str) -> logging.Logger:
    """The logger for an xf module: ``get_logger(__name__)`` gives ``xf.<module path>``."""
    _root()
    return logging.getLogger(name if name == "xf" or name.startswith("xf.") else f"xf.{name}")


def set_verbosity(level: int | str) -> None:
    """Set the level of every xf logger: a ``logging`` level or one of debug/info/warning/error/critical."""
    if isinstance(level, str):
        if level.lower() not in _LEVELS:
            raise ValueError(f"verbosity {level!r} is not one of {', '.join(_LEVELS)}.")
        level = _LEVELS[level.lower()]
    _root().setLevel(level)


def get_verbosity() -> int:
    return _root().getEffectiveLevel()


def disable_progress_bars() -> None:
    global _progress_override
    _progress_override = False


def enable_progress_bars() -> None:
    global _progress_override
    _progress_override = True


def progress_bars_enabled() -> bool:
    if _progress_override is not None:
        return _progress_override
    return not disable_progress_env()


def progress_bar(
    iterable: Iterable[T] | None = None,
    *,
    total: int | float | None = None,
    desc: str | None = None,
    unit: str = "it",
    disable: bool | None = None,
    **kwargs: Any,
) -> Any:
    """A tqdm bar on stderr, off when progress bars are disabled; one line per bar when not on a terminal."""
    from tqdm import tqdm

    off = (not progress_bars_enabled()) if disable is None else disable
    cls = tqdm if off or _stderr_is_tty() else _log_bar_class()
    if cls is not tqdm:
        kwargs.setdefault("ascii", True)
    return cls(iterable, total=total, desc=desc, unit=unit, disable=off, file=sys.stderr, **kwargs)


@functools.cache
def _log_bar_class() -> type:
    """A tqdm that draws only once, when it closes: one line per bar in a log file."""
    from tqdm import tqdm

    class LogBar(tqdm):
        _final = False

        def display(self, msg: str | None = None, pos: int | None = None) -> bool:
            return super().display(msg, pos) if self._final else True

        def close(self) -> None:
            if not self.disable:
                self._final = True
            super().close()

    return LogBar


def _stderr_is_tty() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False
