"""``layers``: each member's declared dependencies on its siblings follow the layer order.

The order comes from the root pyproject's import-linter ``layers`` contracts (``[tool.importlinter]``; top
layer first, ``a | b`` for independent siblings) when there are any, else from the rule in xf's README, kept
here as data. Import-linter checks the imports themselves; this checker checks what each
``packages/*/pyproject.toml`` declares, so a forbidden dependency fails before any code imports it.
"""

from __future__ import annotations

import re
import tomllib

from packaging.requirements import InvalidRequirement, Requirement

from xf_repotools._core import Problem, Repo, register

__all__ = ["README_RULE", "allowed_dependencies"]

# The README's layer rule: member -> the members it builds on directly. Tools on top may use any member.
README_RULE: dict[str, set[str]] = {
    "xf-core": set(),
    "xf-tokenize": {"xf-core"},
    "xf-load": {"xf-core"},
    "xf-quant": {"xf-load"},
    "xf-train": {"xf-load"},
    "xf-parallel": {"xf-train"},
    "xf-pipeline": {"xf-tokenize", "xf-load"},
}
TOOLS = {"xf-repotools"}


def _closure(direct: dict[str, set[str]]) -> dict[str, set[str]]:
    out = {}
    for name in direct:
        seen: set[str] = set()
        todo = list(direct[name])
        while todo:
            dep = todo.pop()
            if dep not in seen:
                seen.add(dep)
                todo += direct.get(dep, set())
        out[name] = seen
    return out


def _dist(module: str) -> str:
    return module.strip().split(".")[0].replace("_", "-")


def allowed_dependencies(repo: Repo) -> dict[str, set[str]] | None:
    """Member -> every member it may depend on; None when the repository has no layer rule."""
    contracts = repo.pyproject().get("tool", {}).get("importlinter", {}).get("contracts", [])
    layered = [c for c in contracts if c.get("type") == "layers"]
    if layered:
        allowed: dict[str, set[str]] = {}
        for contract in layered:
            levels = [[_dist(m) for m in re.split(r"[|:]", layer)] for layer in contract.get("layers", [])]
            for i, level in enumerate(levels):
                below = {d for lower in levels[i + 1 :] for d in lower}
                for dist in level:
                    allowed.setdefault(dist, set()).update(below)
        return allowed
    if (repo.root / "packages/xf-core/pyproject.toml").is_file():
        return _closure(README_RULE)
    return None


@register("layers", "members depend only on members below them (import-linter's layer order)")
def check(repo: Repo) -> list[Problem]:
    allowed = allowed_dependencies(repo)
    if allowed is None:
        return []
    members = {}
    for path in sorted(repo.root.glob("packages/*/pyproject.toml")):
        data = tomllib.loads(path.read_text())
        members[data["project"]["name"].lower().replace("_", "-")] = path
    problems = []
    for name, path in members.items():
        rel = path.relative_to(repo.root).as_posix()
        text = path.read_text()
        project = tomllib.loads(text)["project"]
        lines = [*project.get("dependencies", [])]
        for extra in project.get("optional-dependencies", {}).values():
            lines += extra
        for line in lines:
            try:
                dep = Requirement(line).name.lower().replace("_", "-")
            except InvalidRequirement:
                continue
            if dep not in members or name in TOOLS:
                continue
            if name not in allowed:
                problems.append(Problem(rel, 1, f"{name} is not in the layer order; add it", fixable=False))
                break
            if dep not in allowed[name]:
                lineno = next((i for i, t in enumerate(text.splitlines(), 1) if f'"{dep}' in t), 1)
                problems.append(
                    Problem(
                        rel,
                        lineno,
                        f"{name} depends on {dep}, which is not below it in the layer order "
                        f"(allowed: {', '.join(sorted(allowed[name])) or 'none'})",
                        fixable=False,
                    )
                )
    return problems
