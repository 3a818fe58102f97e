"""``xf-repotools check [NAME ...]``: run the registered checkers, print ``path:line: message (fix: ...)``.

Exit status: 0 clean, 1 problems found. Without ``--keep-going`` the run stops after the first checker that
finds problems; with ``--fix`` each checker first repairs what is mechanical, then checks again.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Literal, TextIO

from xf_repotools._core import CHECKERS, Problem, Repo
from xf_repotools.errors import SourceSyntaxError, UnknownCheckerError

__all__ = ["ORDER", "load_checkers", "run_checks"]

# Checker name -> module that registers it, in the order `check` runs them (cheap ones first).
ORDER = {
    "copies": "xf_repotools.copies",
    "inits": "xf_repotools.inits",
    "init-order": "xf_repotools.init_order",
    "docstrings": "xf_repotools.docstrings",
    "config-attributes": "xf_repotools.config_attributes",
    "repo": "xf_repotools.repo",
    "deps-table": "xf_repotools.deps_table",
    "modular": "xf_repotools.modular",
    "layers": "xf_repotools.layers",
    "versions": "xf_repotools.versions",
    "module-size": "xf_repotools.module_size",
}


def load_checkers(names: list[str] | None = None) -> list[str]:
    """Import the checker modules for ``names`` (all when None); raise UnknownCheckerError for a bad name."""
    names = names or list(ORDER)
    for name in names:
        if name not in ORDER:
            raise UnknownCheckerError(name, list(ORDER))
    for name in names:
        importlib.import_module(ORDER[name])
    return names


def run_checks(
    root: Path,
    names: list[str] | None = None,
    *,
    fix: bool = False,
    output: Literal["text", "json"] = "text",
    keep_going: bool = False,
    use_cache: bool = True,
    stream: TextIO | None = None,
) -> int:
    stream = stream or sys.stdout
    names = load_checkers(names)
    repo = Repo.open(root, use_cache=use_cache)
    problems: list[Problem] = []
    fixed: list[str] = []
    ran: list[str] = []
    try:
        for name in names:
            checker = CHECKERS[name]
            try:
                if fix and checker.fix is not None:
                    fixed += checker.fix(repo)
                found = checker.check(repo)
            except SourceSyntaxError as e:
                found = [Problem(e.path, e.line, f"cannot parse ({e.reason}); fix the syntax", name, False)]
            ran.append(name)
            problems += found
            if found and not keep_going:
                break
    finally:
        repo.cache.save()
    if output == "json":
        payload = {"checked": ran, "fixed": fixed, "problems": [p.as_dict() for p in problems]}
        stream.write(json.dumps(payload, indent=2) + "\n")
    else:
        for path in fixed:
            stream.write(f"fixed {path}\n")
        for problem in problems:
            stream.write(problem.render() + "\n")
    return 1 if problems else 0
