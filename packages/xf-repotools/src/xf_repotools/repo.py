"""``repo``: every model family is registered in the auto tables, has tests and a README entry.

A family is a module ``<pkg>/models/<name>.py`` (or a folder ``<pkg>/models/<name>/``). It is registered when
the package's ``auto.py`` names its dotted module; its tests are ``tests/**/test_<name>*.py`` of the same
member (the folder above ``src/``); its README entry is the member's README naming it. Paths can be set under
``[tool.xf-repotools.repo]`` (``models``, ``auto``, ``tests``, ``readme``). No ``--fix``: each is a human edit.
"""

from __future__ import annotations

import re

from xf_repotools._core import Problem, Repo, module_name, register

__all__ = ["families"]


def families(repo: Repo) -> dict[str, list[str]]:
    """models folder -> family names found in it."""
    config = repo.config("repo")
    found: dict[str, set[str]] = {}
    for rel in repo.python_files():
        parts = rel.split("/")
        if "models" not in parts[:-1] or "tests" in parts:
            continue
        i = len(parts) - 1 - parts[::-1].index("models")
        folder = "/".join(parts[:i])
        if config.get("models") and folder != config["models"]:
            continue
        rest = parts[i + 1 :]
        name = rest[0][:-3] if len(rest) == 1 else rest[0]
        if name.startswith("_") or not name.isidentifier():
            continue
        found.setdefault(folder, set()).add(name)
    return {k: sorted(v) for k, v in found.items()}


def _member_dir(folder: str) -> str:
    parts = folder.split("/")
    return "/".join(parts[: parts.index("src")]) if "src" in parts else ""


@register("repo", "model families are registered in the auto tables, tested and in the README")
def check(repo: Repo) -> list[Problem]:
    config = repo.config("repo")
    files = set(repo.python_files())
    all_files = repo.files()
    problems = []
    for folder, names in families(repo).items():
        member = _member_dir(folder)
        prefix = f"{member}/" if member else ""
        auto = config.get("auto", f"{folder}/auto.py")
        tests = config.get("tests", f"{prefix}tests")
        readme = config.get("readme", f"{prefix}README.md")
        auto_text = repo.read(auto) if auto in files else None
        readme_text = repo.read(readme).lower() if repo.exists(readme) else ""
        package = module_name(f"{folder}/__init__.py", files) or folder.split("/")[-1]
        for name in names:
            rel = next(
                (
                    f
                    for f in (f"{folder}/models/{name}.py", f"{folder}/models/{name}/__init__.py")
                    if f in files
                ),
                None,
            )
            rel = rel or f"{folder}/models/{name}"
            dotted = f"{package}.models.{name}"
            if auto_text is not None and dotted not in auto_text and f".models.{name}" not in auto_text:
                problems.append(
                    Problem(
                        rel, 1, f"family {name!r} is not registered in {auto} (add {dotted})", fixable=False
                    )
                )
            pattern = re.compile(rf"(^|/)test_{re.escape(name)}[\w]*\.py$")
            if not any(f.startswith(tests + "/") and pattern.search(f) for f in all_files):
                problems.append(
                    Problem(rel, 1, f"family {name!r} has no tests ({tests}/test_{name}.py)", fixable=False)
                )
            if not re.search(rf"\b{re.escape(name)}\b", readme_text):
                problems.append(
                    Problem(rel, 1, f"family {name!r} is not mentioned in {readme}", fixable=False)
                )
    return problems
