"""Helpers for tests of repository tools: build a fixture repository from a dict of files, run git in it."""

from __future__ import annotations

import os
import subprocess
import textwrap
from pathlib import Path

__all__ = ["git", "write_files"]


def write_files(root: Path, files: dict[str, str]) -> Path:
    """Write ``{relative path: text}`` under ``root`` (text is dedented); return ``root``."""
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))
    return root


def git(root: Path, *args: str, date: str | None = None) -> str:
    """Run ``git args`` in ``root`` with a fixed identity (and commit ``date``, ISO, if given); return stdout."""
    env_args = ["-c", "user.name=xf", "-c", "user.email=xf@example.com", "-c", "commit.gpgsign=false"]
    env = {**os.environ, "GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date} if date else None
    out = subprocess.run(
        ["git", *env_args, *args], cwd=root, capture_output=True, text=True, check=True, env=env
    )
    return out.stdout
