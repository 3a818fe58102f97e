"""Every environment variable xf reads, in one place. Read at call time, never at import."""

from __future__ import annotations

import os

__all__ = ["disable_progress_env", "hf_hub_offline", "run_slow", "verbosity_env"]

_TRUE = {"1", "true", "yes", "on"}


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in _TRUE


def hf_hub_offline() -> bool:
    """``HF_HUB_OFFLINE`` (or the older ``TRANSFORMERS_OFFLINE``): never touch the network."""
    return _flag("HF_HUB_OFFLINE") or _flag("TRANSFORMERS_OFFLINE")


def verbosity_env() -> str | None:
    """``XF_VERBOSITY``: debug, info, warning (default), error or critical."""
    value = os.environ.get("XF_VERBOSITY")
    return value.strip().lower() if value else None


def disable_progress_env() -> bool:
    """``XF_DISABLE_PROGRESS`` (or ``HF_HUB_DISABLE_PROGRESS_BARS``): no progress bars at all."""
    return _flag("XF_DISABLE_PROGRESS") or _flag("HF_HUB_DISABLE_PROGRESS_BARS")


def run_slow() -> bool:
    """``XF_RUN_SLOW``: run tests marked slow."""
    return _flag("XF_RUN_SLOW")
