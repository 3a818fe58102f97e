"""``xf-repotools modular-detect FILE``: rank the existing model families by how much of FILE they already hold.

Each top-level class and function of FILE is compared with every definition of each family file (model files
under ``models/``, generated ``modeling_*`` files included, ``modular_*`` left out) after the family names are
replaced by a placeholder (so ``LlamaMLP`` and ``FooMLP`` compare equal); a family's score is the mean best
similarity over FILE's definitions (difflib ratio, 0..1). The best family is the one to write
``modular_<name>.py`` against; the per-definition matches say which classes can be inherited unchanged.
"""

from __future__ import annotations

import ast
import difflib
import re
from dataclasses import dataclass
from pathlib import Path

from xf_repotools._core import Repo
from xf_repotools.errors import RepoToolsError

__all__ = ["FamilyScore", "rank"]


@dataclass(frozen=True)
class FamilyScore:
    family: str  # file of the family, relative to the root
    score: float
    matches: dict[str, tuple[str, float]]  # definition in FILE -> (best definition in the family, ratio)


def _prefixes(tree: ast.Module) -> set[str]:
    """Family prefixes: ``Llama`` from ``LlamaConfig``, ``LlamaModel``, ``LlamaForCausalLM``."""
    found = set()
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            match = re.match(r"^([A-Z][A-Za-z0-9]*?)(Config|Model|For[A-Z]\w*|PreTrainedModel)$", node.name)
            if match:
                found.add(match.group(1))
    return found


def _definitions(text: str) -> dict[str, str]:
    tree = ast.parse(text)
    prefixes = sorted(_prefixes(tree), key=len, reverse=True)
    lines = text.splitlines(keepends=True)
    out = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            code = "".join(lines[node.lineno - 1 : node.end_lineno])
            name = node.name
            for prefix in prefixes:
                pattern = re.compile(
                    rf"{re.escape(prefix)}|{re.escape(prefix.lower())}|{re.escape(prefix.upper())}"
                )
                code = pattern.sub("FAMILY", code)
                name = pattern.sub("FAMILY", name)
            out[name] = code
    return out


def rank(repo: Repo, file: str) -> list[FamilyScore]:
    mine = _definitions(repo.read(file))
    if not mine:
        raise RepoToolsError(f"{file} defines no class or function to compare")
    scores = []
    for rel in repo.python_files():
        name = rel.rsplit("/", 1)[-1]
        if rel == file or "/models/" not in f"/{rel}" or name.startswith(("modular_", "__init__", "test_")):
            continue
        theirs = _definitions(repo.read(rel))
        if not theirs:
            continue
        matches = {}
        for key, code in mine.items():
            best = max(
                ((other, _ratio(code, other_code)) for other, other_code in theirs.items()),
                key=lambda x: x[1],
            )
            matches[key] = best
        score = sum(r for _, r in matches.values()) / len(matches)
        scores.append(FamilyScore(rel, score, matches))
    return sorted(scores, key=lambda s: -s.score)


def _ratio(a: str, b: str) -> float:
    matcher = difflib.SequenceMatcher(None, a.splitlines(), b.splitlines(), autojunk=False)
    return matcher.ratio()


def main(root: Path, file: Path, *, top: int) -> int:
    repo = Repo.open(root)
    path = (file if file.is_absolute() or (Path.cwd() / file).exists() else repo.root / file).resolve()
    try:
        rel = path.relative_to(repo.root).as_posix()
    except ValueError as e:
        raise RepoToolsError(f"{file} is not inside the repository {repo.root}; pass --root") from e
    for entry in rank(repo, rel)[:top]:
        print(f"{entry.score:.3f}  {entry.family}")
        for mine, (theirs, ratio) in sorted(entry.matches.items(), key=lambda m: -m[1][1]):
            print(f"         {ratio:.2f}  {mine} ~ {theirs}")
    return 0
