"""``module-size``: no Python module under ``packages/*/src`` is longer than the limit (600 lines by default).

A module that grows past the limit is doing more than one job; the fix is to split it by concern (for
example file I/O, pure helpers and the public class into sibling modules), not to raise the limit. The limit
comes from ``[tool.xf-repotools.module-size] max-lines`` in the root ``pyproject.toml`` when set.
"""

from __future__ import annotations

from xf_repotools._core import Problem, Repo, register
from xf_repotools.errors import RepoToolsError

__all__ = ["DEFAULT_MAX_LINES", "max_lines", "oversized_modules"]

DEFAULT_MAX_LINES = 600


def max_lines(repo: Repo) -> int:
    """The limit: ``[tool.xf-repotools.module-size] max-lines``, else :data:`DEFAULT_MAX_LINES`."""
    value = repo.config("module-size").get("max-lines", DEFAULT_MAX_LINES)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise RepoToolsError(
            f"pyproject.toml: [tool.xf-repotools.module-size] max-lines must be a whole number >= 1, got "
            f"{value!r}; set it to a positive int or remove it (default {DEFAULT_MAX_LINES})."
        )
    return value


def oversized_modules(repo: Repo, limit: int) -> list[tuple[str, int]]:
    """``(path, line count)`` of every module under ``packages/*/src`` longer than ``limit`` lines, by path."""
    found = []
    for rel in repo.python_files():
        parts = rel.split("/")
        if len(parts) < 4 or parts[0] != "packages" or parts[2] != "src":
            continue
        count = len(repo.read(rel).splitlines())
        if count > limit:
            found.append((rel, count))
    return found


@register("module-size", f"no module under packages/*/src is longer than {DEFAULT_MAX_LINES} lines")
def check(repo: Repo) -> list[Problem]:
    limit = max_lines(repo)
    return [
        Problem(
            rel,
            limit + 1,
            f"module is {count} lines, over the limit of {limit}; split it by concern into smaller sibling "
            "modules (keep the public names importable from where they are now)",
            fixable=False,
        )
        for rel, count in oversized_modules(repo, limit)
    ]
