"""``versions``: each member's ``__version__`` equals its pyproject version (a literal, or read from the
installed metadata with ``importlib.metadata.version("<the member's own name>")``), its CHANGELOG has a heading
for it, and the ranges siblings declare on it include it.

Versions and CHANGELOGs are release decisions, so there is no ``--fix``; the message says which file to edit.
"""

from __future__ import annotations

import ast
import re
import tomllib

from packaging.requirements import InvalidRequirement, Requirement
from packaging.version import InvalidVersion, Version

from xf_repotools._core import Problem, Repo, register

__all__ = ["member_versions"]


def member_versions(repo: Repo) -> dict[str, tuple[str, str]]:
    """Member name -> (pyproject path, version)."""
    out = {}
    for path in sorted(repo.root.glob("packages/*/pyproject.toml")):
        project = tomllib.loads(path.read_text()).get("project", {})
        if "name" in project and "version" in project:
            out[project["name"]] = (path.relative_to(repo.root).as_posix(), project["version"])
    return out


def _dunder_version(text: str) -> tuple[str, int, bool] | None:
    """(value, line, from_metadata): a literal's value, or the distribution name a ``version(NAME)`` call reads."""
    for node in ast.parse(text).body:
        if isinstance(node, ast.Assign) and any(
            getattr(t, "id", None) == "__version__" for t in node.targets
        ):
            value = node.value
            if isinstance(value, ast.Constant):
                return str(value.value), node.lineno, False
            if (
                isinstance(value, ast.Call)
                and getattr(value.func, "attr", getattr(value.func, "id", None)) == "version"
                and len(value.args) == 1
                and isinstance(value.args[0], ast.Constant)
            ):
                return str(value.args[0].value), node.lineno, True
    return None


@register("versions", "__version__ equals the pyproject version, CHANGELOG has it, sibling ranges include it")
def check(repo: Repo) -> list[Problem]:
    versions = member_versions(repo)
    problems = []
    for name, (pyproject, version) in versions.items():
        member = pyproject.rsplit("/", 1)[0]
        init = f"{member}/src/{name.replace('-', '_')}/__init__.py"
        if repo.exists(init):
            found = _dunder_version(repo.read(init))
            if found is None:
                problems.append(Problem(init, 1, f"no __version__; set it to {version!r}", fixable=False))
            elif found[2] and found[0] != name:
                problems.append(
                    Problem(
                        init,
                        found[1],
                        f"__version__ reads the metadata of {found[0]!r}, not of {name!r}; pass {name!r}",
                        fixable=False,
                    )
                )
            elif not found[2] and found[0] != version:
                problems.append(
                    Problem(
                        init,
                        found[1],
                        f"__version__ is {found[0]!r} but {pyproject} says {version!r}; make them equal",
                        fixable=False,
                    )
                )
        changelog = f"{member}/CHANGELOG.md"
        if repo.exists(changelog):
            heading = re.compile(rf"^#+\s*\[?v?{re.escape(version)}\]?(\s|$)", re.M)
            if not heading.search(repo.read(changelog)):
                problems.append(Problem(changelog, 1, f"no heading for version {version}", fixable=False))
        else:
            problems.append(
                Problem(changelog, 1, f"missing; add it with a heading for {version}", fixable=False)
            )
        text = (repo.root / pyproject).read_text()
        for i, line in enumerate(text.splitlines(), 1):
            for literal in re.findall(r'"([^"]+)"', line):
                try:
                    req = Requirement(literal)
                except InvalidRequirement:
                    continue
                dep = req.name.lower().replace("_", "-")
                if dep not in versions or not req.specifier:
                    continue
                try:
                    if not req.specifier.contains(Version(versions[dep][1]), prereleases=True):
                        problems.append(
                            Problem(
                                pyproject,
                                i,
                                f"{name} requires {literal} but {dep} is {versions[dep][1]}; widen the range",
                                fixable=False,
                            )
                        )
                except InvalidVersion:
                    continue
    return problems
