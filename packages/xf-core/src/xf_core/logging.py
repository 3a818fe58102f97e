"""Logging and progress bars for xf. Library code never prints; it logs or shows a bar.

An xf module logs through ``get_logger(__name__)``: its logger is named after the module (``xf_load._loading``)
and hangs under its package's logger (``xf_load``, ``xf_pipeline``, ...), so an application addresses one
package with ``logging.getLogger("xf_load")``; names outside the xf packages go under ``xf``. Each of those
package loggers starts with xf's default handler (one line per record on stderr), the level from
``XF_VERBOSITY`` (default: warning) and no propagation, as transformers' library logger does.
:func:`set_verbosity` sets every package's level; :func:`enable_propagation` hands records to the root logger
(and so to the application's handlers, pytest's caplog, ...); :func:`disable_default_handler` drops xf's own
output; :func:`add_handler`/:func:`remove_handler` attach a handler to every package logger.

Progress bars are tqdm bars on stderr; ``XF_DISABLE_PROGRESS=1`` or :func:`disable_progress_bars` turns them
off, and when stderr is not a terminal (CI logs) a bar writes one line when it ends instead of a line per
update.
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
    "add_handler",
    "disable_default_handler",
    "disable_progress_bars",
    "disable_propagation",
    "enable_default_handler",
    "enable_progress_bars",
    "enable_propagation",
    "get_logger",
    "get_verbosity",
    "library_loggers",
    "progress_bar",
    "progress_bars_enabled",
    "remove_handler",
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
_lock = threading.RLock()
_roots: dict[str, logging.Logger] = {}  # the package loggers configured so far, by name
_verbosity: int | None = None  # None: not read from XF_VERBOSITY yet
_propagate = False
_default_handler_on = True
_extra_handlers: list[logging.Handler] = []
_progress_override: bool | None = None


@functools.cache
def _default_handler() -> logging.Handler:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("[%(levelname)s|%(name)s] %(message)s"))
    return handler


def _level() -> int:
    global _verbosity
    if _verbosity is None:
        name = verbosity_env()
        if name is not None and name not in _LEVELS:
            raise ValueError(f"XF_VERBOSITY={name!r} is not one of {', '.join(_LEVELS)}.")
        _verbosity = _LEVELS[name] if name else logging.WARNING
    return _verbosity


def _package_logger(top: str) -> logging.Logger:
    """The package logger ``top`` (``xf_load``, or ``xf`` for other names), set up with xf's settings once."""
    found = _roots.get(top)
    if found is not None:
        return found
    with _lock:
        if top not in _roots:
            logger = logging.getLogger(top)
            logger.addHandler(logging.NullHandler())  # without the default handler: silence, not lastResort
            if _default_handler_on:
                logger.addHandler(_default_handler())
            for handler in _extra_handlers:
                logger.addHandler(handler)
            logger.propagate = _propagate
            if logger.level == logging.NOTSET:  # a level the application set first is kept
                logger.setLevel(_level())
            _roots[top] = logger
        return _roots[top]


def _top(name: str) -> str:
    top = name.partition(".")[0]
    return top if top == "xf" or top.startswith("xf_") else "xf"


def get_logger(name: str) -> logging.Logger:
    """The logger for an xf module: ``get_logger(__name__)`` gives the logger named ``__name__`` (e.g.
    ``xf_load._loading``) under its package logger (``xf_load``); another name ``n`` gives ``xf.n``."""
    top = _top(name)
    _package_logger(top)
    return logging.getLogger(name if top != "xf" or name == "xf" or name.startswith("xf.") else f"xf.{name}")


def library_loggers() -> dict[str, logging.Logger]:
    """The package loggers set up so far (``xf_core``, ``xf_load``, ...), by name."""
    with _lock:
        return dict(_roots)


def _each_root() -> list[logging.Logger]:
    _package_logger("xf")
    with _lock:
        return list(_roots.values())


def set_verbosity(level: int | str) -> None:
    """Set the level of every xf package logger: a ``logging`` level or one of debug/info/warning/error/
    critical. Package loggers set up later start at this level too."""
    global _verbosity
    if isinstance(level, str):
        if level.lower() not in _LEVELS:
            raise ValueError(f"verbosity {level!r} is not one of {', '.join(_LEVELS)}.")
        level = _LEVELS[level.lower()]
    with _lock:
        _verbosity = level
        for logger in _each_root():
            logger.setLevel(level)


def get_verbosity() -> int:
    """The level :func:`set_verbosity` (or ``XF_VERBOSITY``) gave the xf package loggers."""
    return _level()


def enable_propagation() -> None:
    """Hand xf's records on to the root logger too, so the application's handlers (and pytest's caplog) see
    them; call :func:`disable_default_handler` as well to stop xf printing them a second time."""
    _set_propagation(True)


def disable_propagation() -> None:
    """Keep xf's records to xf's own handlers (the default)."""
    _set_propagation(False)


def _set_propagation(on: bool) -> None:
    global _propagate
    with _lock:
        _propagate = on
        for logger in _each_root():
            logger.propagate = on


def enable_default_handler() -> None:
    """Print xf's records on stderr again (the default)."""
    _set_default_handler(True)


def disable_default_handler() -> None:
    """Stop xf printing its records itself; they go only to handlers added with :func:`add_handler` or, after
    :func:`enable_propagation`, to the application's."""
    _set_default_handler(False)


def _set_default_handler(on: bool) -> None:
    global _default_handler_on
    with _lock:
        _default_handler_on = on
        for logger in _each_root():
            if on:
                logger.addHandler(_default_handler())
            else:
                logger.removeHandler(_default_handler())


def add_handler(handler: logging.Handler) -> None:
    """Attach ``handler`` to every xf package logger, now and set up later."""
    with _lock:
        if handler not in _extra_handlers:
            _extra_handlers.append(handler)
        for logger in _each_root():
            logger.addHandler(handler)


def remove_handler(handler: logging.Handler) -> None:
    """Detach a handler given to :func:`add_handler`."""
    with _lock:
        if handler in _extra_handlers:
            _extra_handlers.remove(handler)
        for logger in _each_root():
            logger.removeHandler(handler)


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
