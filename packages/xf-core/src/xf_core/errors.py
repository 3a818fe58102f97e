"""Exceptions shared by every xf package.

Each one subclasses the nearest builtin, so ``except FileNotFoundError`` keeps working, and carries the
facts a caller needs (the file, the key, the package) as attributes. Messages say what to do next.
"""

from __future__ import annotations

__all__ = [
    "MissingDependencyError",
    "XfConfigError",
    "XfDependencyVersionError",
    "XfError",
    "XfFileNotFoundError",
    "XfOSError",
    "XfValueError",
]


class XfError(Exception):
    """Base class of every error xf raises on purpose."""


class XfFileNotFoundError(XfError, FileNotFoundError):
    """A file or directory that was asked for is not there (locally, in the cache, or on the Hub)."""

    def __init__(self, message: str, *, path: str | None = None, filename: str | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.filename = filename

    def __str__(self) -> str:
        return str(self.args[0])


class XfOSError(XfError, OSError):
    """Reading or writing ``path`` failed at the OS level (disk full, permission, read-only); the message
    names the path and what to do. ``errno`` is the OS error number."""

    def __init__(self, message: str, *, path: str, errno_: int | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.filename = path
        self.errno = errno_

    def __str__(self) -> str:
        return str(self.args[0])


class XfValueError(XfError, ValueError):
    """An argument or input value is wrong; the message names it and the accepted values."""


class XfConfigError(XfValueError):
    """A configuration file or value is invalid; ``key`` and ``file`` name where."""

    def __init__(self, message: str, *, key: str | None = None, file: str | None = None) -> None:
        super().__init__(message)
        self.key = key
        self.file = file


class MissingDependencyError(XfError, ImportError):
    """An optional dependency is not installed; ``package`` is what to install."""

    def __init__(self, package: str, *, purpose: str | None = None, install: str | None = None) -> None:
        self.package = package
        self.install: str = install or f"pip install {package}"
        needed = f" for {purpose}" if purpose else ""
        super().__init__(
            f"{package} is required{needed} but is not installed; install it with `{self.install}`."
        )
        self.name: str | None = package


class XfDependencyVersionError(XfError, ImportError):
    """An installed dependency is outside the version range xf needs."""

    def __init__(self, package: str, installed: str, required: str, *, purpose: str | None = None) -> None:
        self.package = package
        self.installed = installed
        self.required = required
        needed = f" for {purpose}" if purpose else ""
        super().__init__(
            f"{package}{required} is required{needed}, but {package}=={installed} is installed; "
            f"run `pip install '{package}{required}'`."
        )
