"""xf-core: the foundation of xf. Never imports torch.

Hub/local file resolution, errors, logging and progress bars, lazy imports, dependency checks, the
dataclass argument parser, testing helpers (``xf_core.testing``) and the ``xf`` command.
"""

from importlib import metadata as _metadata

from xf_core._atomic import atomic_directory, check_interrupted_save, os_error
from xf_core._hub import HubOptions, is_local_path, resolve_file, resolve_files
from xf_core.argparser import ArgumentParser
from xf_core.errors import (
    MissingDependencyError,
    XfConfigError,
    XfDependencyVersionError,
    XfError,
    XfFileNotFoundError,
    XfOSError,
    XfValueError,
)
from xf_core.lazy import is_available, lazy_exports, require
from xf_core.logging import get_logger, progress_bar, set_verbosity

__version__ = _metadata.version("xf-core")

__all__ = [
    "ArgumentParser",
    "HubOptions",
    "MissingDependencyError",
    "XfConfigError",
    "XfDependencyVersionError",
    "XfError",
    "XfFileNotFoundError",
    "XfOSError",
    "XfValueError",
    "__version__",
    "atomic_directory",
    "check_interrupted_save",
    "get_logger",
    "is_available",
    "is_local_path",
    "lazy_exports",
    "os_error",
    "progress_bar",
    "require",
    "resolve_file",
    "resolve_files",
    "set_verbosity",
]
