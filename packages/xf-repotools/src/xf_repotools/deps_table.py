"""Generate xf-core's dependency version table from the members' pyproject files, or check it is current.

``uv run xf-repotools deps-table`` exits 1 and names the stale file when the table differs from what the
pyproject files declare; ``--fix`` rewrites it.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement

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


def run(root: Path, *, fix: bool) -> int:
    path = root / TABLE_PATH
    expected = render(root)
    current = path.read_text() if path.exists() else ""
    if current == expected:
        return 0
    if fix:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(expected)
        tmp.replace(path)
        print(f"rewrote {TABLE_PATH}")
        return 0
    print(
        f"{TABLE_PATH}:1: out of date with packages/*/pyproject.toml; run `uv run xf-repotools deps-table --fix`"
    )
    return 1
