"""``deps-table``: xf-core's dependency version table is generated from the members' pyproject files.

The check fails naming the stale file when the table differs from what the pyproject files declare; ``--fix``
rewrites it. A repository without the table (any repository but xf) has nothing to check.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement

from xf_repotools._core import Problem, Repo, register

__all__ = ["TABLE_PATH", "collect", "render", "run"]

TABLE_PATH = Path("packages/xf-core/src/xf_core/_deps_table.py")

_HEADER = '''"""Version ranges of every third-party dependency of the xf packages.

Generated from packages/*/pyproject.toml by `uv run xf-repotools deps-table --fix`; do not edit by hand.
"""

DEPS: dict[str, str] = {
'''


def collect(root: Path) -> dict[str, str]:
    """Dependency name -> version range, merged over every member (ranges of the same name are joined)."""
    specs: dict[str, set[str]] = {}
    for pyproject in sorted(root.glob("packages/*/pyproject.toml")):
        project = tomllib.loads(pyproject.read_text())["project"]
        requirements = list(project.get("dependencies", []))
        for extra in project.get("optional-dependencies", {}).values():
            requirements += extra
        for line in requirements:
            req = Requirement(line)
            name = req.name.lower().replace("_", "-")
            if name.startswith("xf-"):
                continue
            specs.setdefault(name, set()).update(str(s) for s in req.specifier)
    return {name: ",".join(sorted(parts)) for name, parts in sorted(specs.items())}


def render(root: Path) -> str:
    body = "".join(f'    "{name}": "{spec}",\n' for name, spec in collect(root).items())
    return _HEADER + body + "}\n"


@register("deps-table", "xf-core's dependency table matches packages/*/pyproject.toml", fix=lambda r: fix(r))
def check(repo: Repo) -> list[Problem]:
    path = repo.root / TABLE_PATH
    if not path.exists() and not list(repo.root.glob("packages/xf-core/pyproject.toml")):
        return []
    current = path.read_text() if path.exists() else ""
    if current == render(repo.root):
        return []
    return [Problem(TABLE_PATH.as_posix(), 1, "out of date with packages/*/pyproject.toml")]


def fix(repo: Repo) -> list[str]:
    if not check(repo):
        return []
    path = repo.root / TABLE_PATH
    path.parent.mkdir(parents=True, exist_ok=True)
    repo.write(TABLE_PATH.as_posix(), render(repo.root))
    return [TABLE_PATH.as_posix()]


def run(root: Path, *, fix: bool) -> int:
    """The ``deps-table`` checker alone (kept for ``xf-repotools deps-table``)."""
    from xf_repotools.check import run_checks

    return run_checks(root, ["deps-table"], fix=fix)
