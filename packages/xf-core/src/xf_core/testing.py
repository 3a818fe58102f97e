"""Helpers for the tests of every xf package: markers, environment patching, subprocess import probes, and
a builder for Hugging Face cache layouts (so offline resolution is tested without a network)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

from xf_core.constants import run_slow
from xf_core.lazy import is_available

__all__ = [
    "imported_modules",
    "make_hf_cache",
    "patch_env",
    "requires_gpu",
    "requires_torch",
    "slow",
    "temporary_directory",
]


def _pytest():  # pytest is a test-time dependency only
    import pytest

    return pytest


def _has_gpu() -> bool:
    if not is_available("torch"):
        return False
    import torch

    return torch.cuda.is_available()


_Test = TypeVar("_Test", bound=Callable[..., Any])


def slow(func: _Test) -> _Test:
    """Mark a test slow: skipped unless ``XF_RUN_SLOW=1``."""
    pytest = _pytest()
    func = pytest.mark.slow(func)
    return pytest.mark.skipif(not run_slow(), reason="slow test; set XF_RUN_SLOW=1 to run")(func)


def requires_torch(func: _Test) -> _Test:
    """Skip the test when torch is not installed."""
    pytest = _pytest()
    func = pytest.mark.requires_torch(func)
    return pytest.mark.skipif(not is_available("torch"), reason="needs torch")(func)


def requires_gpu(func: _Test) -> _Test:
    """Skip the test when no CUDA device is visible."""
    pytest = _pytest()
    func = pytest.mark.requires_gpu(func)
    return pytest.mark.skipif(not _has_gpu(), reason="needs a CUDA GPU")(func)


@contextlib.contextmanager
def patch_env(**values: str | None) -> Iterator[None]:
    """Set (or with None, unset) environment variables for the duration of the block."""
    saved = {name: os.environ.get(name) for name in values}
    try:
        for name, value in values.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def temporary_directory(prefix: str = "xf-test-") -> Iterator[Path]:
    """A fresh directory, removed afterwards."""
    import tempfile

    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def imported_modules(code: str, *, env: Mapping[str, str] | None = None) -> set[str]:
    """Run ``code`` in a fresh interpreter and return the names in its ``sys.modules`` afterwards."""
    probe = f"{code}\nimport json as _j, sys as _s\n_s.stdout.write(_j.dumps(sorted(_s.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **(env or {})},
    )
    return set(json.loads(result.stdout.splitlines()[-1]))


def make_hf_cache(
    cache_dir: str | os.PathLike[str],
    repo_id: str,
    files: Mapping[str, str | bytes],
    *,
    revision: str = "main",
    commit: str = "0123456789abcdef0123456789abcdef01234567",
    repo_type: str = "model",
) -> Path:
    """Lay out ``files`` as the Hugging Face cache would after downloading them; return the snapshot dir.

    ``cache_dir`` is the hub cache (``$HF_HOME/hub``). Blobs are stored once and linked from the snapshot,
    and ``refs/<revision>`` points at ``commit``, exactly as ``huggingface_hub`` writes them.
    """
    import hashlib

    repo_dir = Path(cache_dir) / f"{repo_type}s--{repo_id.replace('/', '--')}"
    snapshot = repo_dir / "snapshots" / commit
    (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
    (repo_dir / "refs" / revision).write_text(commit)
    for name, content in files.items():
        data = content.encode() if isinstance(content, str) else content
        blob = repo_dir / "blobs" / hashlib.sha256(data).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        target = snapshot / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists() or target.is_symlink():
            target.unlink()
        os.symlink(os.path.relpath(blob, target.parent), target)
    return snapshot
