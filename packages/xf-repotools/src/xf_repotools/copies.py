"""``copies``: code marked ``# Copied from pkg.mod.Obj with A->B`` stays identical to its source.

The comment sits on the line above a ``def`` or ``class``. The check takes the source object (any module of the
repository, nested names like ``pkg.mod.Class.method`` too), applies the replacements (``A->B``; ``A->B
all-casing`` also replaces ``a->b`` and ``A->B`` upper-cased; several separated by commas), re-indents it to
the copy and compares. When the texts differ only by formatting they are both run through ruff (one batched
call for the whole repository) before deciding. ``--fix`` rewrites the copy from the source.
"""

from __future__ import annotations

import ast
import io
import re
import textwrap
import tokenize
from dataclasses import dataclass

from xf_repotools._core import Problem, Repo, register
from xf_repotools._formatting import format_snippets, reindent

__all__ = ["CopyBlock", "apply_replacements", "find_blocks", "parse_replacements"]

_MARK = "# Copied from "
_COPIED = re.compile(r"^(?P<indent>[ \t]*)# Copied from (?P<target>[\w.]+)(?:\s+with\s+(?P<with>.*?))?\s*$")
_VERSION = "copies-1"


@dataclass(frozen=True)
class CopyBlock:
    line: int  # 1-based line of the comment
    target: str
    replacements: tuple[tuple[str, str], ...]
    start: int  # 0-based index of the first copied line
    end: int  # 0-based index one past the last copied line
    indent: str


def parse_replacements(spec: str | None) -> tuple[tuple[str, str], ...]:
    if not spec:
        return ()
    pairs: list[tuple[str, str]] = []
    for part in spec.split(","):
        part = part.strip()
        all_casing = part.endswith(" all-casing")
        part = part.removesuffix(" all-casing").strip()
        if "->" not in part:
            continue
        old, new = (s.strip() for s in part.split("->", 1))
        pairs.append((old, new))
        if all_casing:
            pairs += [(old.lower(), new.lower()), (old.upper(), new.upper())]
    return tuple(pairs)


def apply_replacements(code: str, replacements: tuple[tuple[str, str], ...]) -> str:
    """All replacements at once (longest match first), so ``Bert->Roberta, bert->roberta`` does not cascade."""
    table = dict(replacements)
    if not table:
        return code
    pattern = re.compile("|".join(re.escape(k) for k in sorted(table, key=len, reverse=True)))
    return pattern.sub(lambda m: table[m.group(0)], code)


def _block_end(lines: list[str], start: int) -> int:
    """One past the last line of the def/class (and its decorators) starting at ``start``."""
    first = start
    while first < len(lines) and lines[first].lstrip().startswith("@"):
        first += 1
    if first >= len(lines):
        return len(lines)
    base = len(lines[first]) - len(lines[first].lstrip())
    last = first + 1
    for end in range(first + 1, len(lines)):
        text = lines[end]
        if not text.strip():
            continue
        indent = len(text) - len(text.lstrip())
        if indent <= base and not (indent == base and text.lstrip().startswith((")", "]", "}"))):
            break
        last = end + 1
    return last


def _comment_lines(text: str) -> set[int]:
    """0-based indexes of lines holding a real ``# Copied from`` comment (not text inside a string)."""
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, SyntaxError):
        return set()
    return {t.start[0] - 1 for t in tokens if t.type == tokenize.COMMENT and t.string.startswith(_MARK)}


def find_blocks(text: str) -> list[CopyBlock]:
    if _MARK not in text:
        return []
    lines = text.splitlines(keepends=True)
    comments = _comment_lines(text)
    blocks = []
    for i, line in enumerate(lines):
        match = _COPIED.match(line.rstrip("\n")) if i in comments else None
        if match is None or i + 1 >= len(lines):
            continue
        nxt = lines[i + 1].lstrip()
        if not nxt.startswith(("def ", "class ", "async def ", "@")):
            continue
        end = _block_end(lines, i + 1)
        blocks.append(
            CopyBlock(
                i + 1,
                match["target"],
                parse_replacements(match["with"]),
                i + 1,
                end,
                match["indent"],
            )
        )
    return blocks


def _locate(repo: Repo, modules: dict[str, str], target: str) -> tuple[str, list[str]] | None:
    """(file, object path inside it) for dotted ``target``, taking the longest module prefix."""
    parts = target.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        module = ".".join(parts[:cut])
        if module in modules:
            return modules[module], parts[cut:]
    return None


_TREES: dict[str, ast.Module] = {}


def _source_code(repo: Repo, rel: str, names: list[str]) -> str | None:
    key = f"{rel}:{repo.digest(rel)}"
    tree = _TREES.get(key)
    if tree is None:
        tree = _TREES[key] = repo.parse(rel)
    body: list[ast.stmt] = tree.body
    node: ast.AST | None = None
    for name in names:
        node = next(
            (
                n
                for n in body
                if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and n.name == name
            ),
            None,
        )
        if node is None:
            return None
        body = node.body  # type: ignore[attr-defined]
    assert node is not None
    lines = repo.read(rel).splitlines(keepends=True)
    first = min([d.lineno for d in node.decorator_list] + [node.lineno]) - 1  # type: ignore[attr-defined]
    return textwrap.dedent("".join(lines[first : node.end_lineno]))  # type: ignore[attr-defined]


def _expected(repo: Repo, modules: dict[str, str], block: CopyBlock) -> tuple[str | None, str | None]:
    """(expected text of the copy, or None; error message, or None)."""
    located = _locate(repo, modules, block.target)
    if located is None:
        return None, f"copied from {block.target}, but no module of the repository defines it"
    rel, names = located
    code = _source_code(repo, rel, names)
    if code is None:
        return None, f"copied from {block.target}, but {rel} has no {'.'.join(names)}"
    code = apply_replacements(code, block.replacements)
    if not code.endswith("\n"):
        code += "\n"
    return reindent(code, block.indent), None


def _candidates(repo: Repo) -> list[str]:
    found = []
    for rel in repo.python_files():
        key = f"{_VERSION}:has:{repo.digest(rel)}"
        has = repo.cache.get(key)
        if has is None:
            has = _MARK in repo.read(rel)
            repo.cache.put(key, has)
        if has:
            found.append(rel)
    return found


def _sources_digest(repo: Repo, modules: dict[str, str], rel: str) -> str:
    key = f"{_VERSION}:targets:{repo.digest(rel)}"
    targets = repo.cache.get(key)
    if targets is None:
        targets = [block.target for block in find_blocks(repo.read(rel))]
        repo.cache.put(key, targets)
    parts = [repo.digest(rel)]
    for target in targets:
        located = _locate(repo, modules, target)
        parts.append(repo.digest(located[0]) if located else "-")
    return ":".join(parts)


def _analyse(repo: Repo, files: list[str]) -> dict[str, list[tuple[CopyBlock, str | None, str | None]]]:
    """rel -> [(block, expected text or None, error or None)] for the blocks that differ from their source."""
    modules = repo.modules()
    raw: dict[str, list[tuple[CopyBlock, str | None, str | None, str]]] = {}
    to_format: list[str] = []
    for rel in files:
        repo.parse(rel)  # a file that does not parse is reported as such, not as a broken copy
        lines = repo.read(rel).splitlines(keepends=True)
        for block in find_blocks(repo.read(rel)):
            expected, error = _expected(repo, modules, block)
            current = "".join(lines[block.start : block.end])
            if error is None and expected is not None and expected.rstrip() == current.rstrip():
                continue
            raw.setdefault(rel, []).append((block, expected, error, current))
            if expected is not None:
                to_format += [expected, current]
    formatted = iter(format_snippets(to_format, root=repo.root))
    result: dict[str, list[tuple[CopyBlock, str | None, str | None]]] = {}
    for rel, items in raw.items():
        for block, expected, error, _current in items:
            if expected is not None:
                expected, current = next(formatted), next(formatted)
                if expected.rstrip() == current.rstrip():
                    continue
            result.setdefault(rel, []).append((block, expected, error))
    return result


def _stale_files(repo: Repo) -> tuple[list[str], dict[str, str]]:
    """Files with copy blocks whose cached verdict is missing or not clean; and their cache keys."""
    modules = repo.modules()
    todo, keys = [], {}
    for rel in _candidates(repo):
        key = f"{_VERSION}:verdict:{rel}:{_sources_digest(repo, modules, rel)}"
        keys[rel] = key
        if repo.cache.get(key) != []:
            todo.append(rel)
    return todo, keys


@register("copies", "`# Copied from` blocks equal their source after the replacements", fix=lambda r: fix(r))
def check(repo: Repo) -> list[Problem]:
    todo, keys = _stale_files(repo)
    problems = []
    found = _analyse(repo, todo)
    for rel in todo:
        items = found.get(rel, [])
        file_problems = [
            Problem(
                rel,
                block.line,
                error or f"copy of {block.target} differs from its source",
                fixable=error is None,
            )
            for block, _expected, error in items
        ]
        repo.cache.put(keys[rel], [p.line for p in file_problems])
        problems += file_problems
    return problems


def fix(repo: Repo) -> list[str]:
    todo, _keys = _stale_files(repo)
    changed = []
    for rel, items in _analyse(repo, todo).items():
        lines = repo.read(rel).splitlines(keepends=True)
        edits = [(b, e) for b, e, err in items if err is None and e is not None]
        for block, expected in sorted(edits, key=lambda x: -x[0].start):
            lines[block.start : block.end] = expected.splitlines(keepends=True)
        if edits:
            repo.write(rel, "".join(lines))
            changed.append(rel)
    return changed
