"""Import bitsandbytes on first use (it takes seconds) and check its version once."""

from __future__ import annotations

import functools
from types import ModuleType

from xf_core import deps
from xf_core.errors import MissingDependencyError, XfDependencyVersionError
from xf_quant.errors import BitsAndBytesVersionError

__all__ = ["BNB_MIN_VERSION", "check_bnb", "import_bnb"]

# Keep in step with the bitsandbytes range in packages/xf-quant/pyproject.toml.
BNB_MIN_VERSION = "0.45.0"
_PURPOSE = "4-bit and 8-bit quantization"


_checked: str | None = None


def check_bnb() -> str:
    """The installed bitsandbytes version; raise when it is missing or older than :data:`BNB_MIN_VERSION`.

    Reads the distribution metadata only (no import). A passing check is remembered by :func:`import_bnb`,
    which runs once per quantized tensor.
    """
    global _checked
    try:
        version = deps.check_version("bitsandbytes", f">={BNB_MIN_VERSION}", purpose=_PURPOSE)
    except XfDependencyVersionError as e:
        raise BitsAndBytesVersionError(e.installed, e.required) from None
    _checked = version
    return version


@functools.cache
def _import() -> ModuleType:
    import bitsandbytes

    return bitsandbytes


def import_bnb() -> ModuleType:
    """``bitsandbytes``, imported once, after :func:`check_bnb`."""
    if _checked is None:
        check_bnb()
    try:
        return _import()
    except ModuleNotFoundError as e:  # metadata present but the module is not importable
        raise MissingDependencyError(
            "bitsandbytes", purpose=_PURPOSE, install=f"pip install -U 'bitsandbytes>={BNB_MIN_VERSION}'"
        ) from e
