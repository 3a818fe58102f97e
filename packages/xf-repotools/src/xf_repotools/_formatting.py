"""Format many code snippets with ruff in one batched call (never one subprocess per snippet)."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

from xf_repotools.errors import RepoToolsError

__all__ = ["format_snippets", "reindent"]


def _ruff() -> str:
    try:
        from ruff.__main__ import find_ruff_bin  # type: ignore[import-untyped]
    except ImportError:
        return "ruff"
    try:
        return str(find_ruff_bin())
    except FileNotFoundError:
        return "ruff"


def reindent(code: str, indent: str) -> str:
    return "".join(indent + line if line.strip() else line for line in code.splitlines(keepends=True))


def format_snippets(snippets: list[str], *, root: Path, sort_imports: bool = False) -> list[str]:
    """Each snippet (any indentation) formatted with the root's ruff settings, indentation kept.

    A snippet ruff cannot parse is returned unchanged. ``sort_imports`` also sorts the import block and drops
    unused imports first (``ruff check --select I,F401 --fix``), for whole generated files.
    """
    if not snippets:
        return []
    config = next(
        (root / n for n in ("ruff.toml", ".ruff.toml", "pyproject.toml") if (root / n).is_file()), None
    )
    with tempfile.TemporaryDirectory(prefix="xf-repotools-") as tmp:
        paths, indents = [], []
        for i, snippet in enumerate(snippets):
            dedented = textwrap.dedent(snippet)
            first = next((ln for ln in snippet.splitlines() if ln.strip()), "")
            indents.append(first[: len(first) - len(first.lstrip())])
            path = Path(tmp) / f"s{i}.py"
            path.write_text(dedented)
            paths.append(path)
        cmd = [_ruff(), "format", "--quiet", "--no-cache"]
        if config is not None and (config.name != "pyproject.toml" or "[tool.ruff" in config.read_text()):
            cmd += ["--config", str(config)]
        try:
            if sort_imports:
                lint = [
                    cmd[0],
                    "check",
                    "--quiet",
                    "--no-cache",
                    "--select",
                    "I,F401",
                    "--fix",
                    "--exit-zero",
                ]
                subprocess.run([*lint, *cmd[4:], *map(str, paths)], capture_output=True, check=False)
            subprocess.run([*cmd, *map(str, paths)], capture_output=True, text=True, check=False)
        except FileNotFoundError as e:
            raise RepoToolsError(
                f"ruff is not installed ({sys.executable}); install xf-repotools with its dependencies"
            ) from e
        return [reindent(p.read_text(), ind) for p, ind in zip(paths, indents)]
