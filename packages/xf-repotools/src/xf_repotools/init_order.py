"""``init-order``: lazy-export tables in ``__init__.py`` files are sorted (the generic form of transformers'
``custom_init_isort``).

A table passes when its names are sorted, or when each target module's names sit together and are sorted
within that group (the group order is the author's). The sort key is isort's: CONSTANTS, then Classes, then
functions, case-insensitive. ``--fix`` rewrites the table grouped by module in order of first appearance.
(``__all__`` literals are ruff's job: RUF022.)
"""

from __future__ import annotations

import ast

from xf_repotools._core import Problem, Repo, register
from xf_repotools.inits import lazy_table

__all__ = ["sort_key", "sorted_entries"]


def sort_key(name: str) -> tuple[int, str]:
    kind = 0 if name.isupper() else 1 if name[:1].isupper() else 2
    return kind, name.lower()


def sorted_entries(entries: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Entries grouped by target module (first-appearance order), names sorted within each group."""
    groups: dict[str, list[str]] = {}
    for name, target in entries:
        groups.setdefault(target, []).append(name)
    return [(name, target) for target, names in groups.items() for name in sorted(names, key=sort_key)]


def _is_sorted(entries: list[tuple[str, str]]) -> bool:
    names = [n for n, _ in entries]
    return names == sorted(names, key=sort_key) or entries == sorted_entries(entries)


def _tables(repo: Repo) -> list[tuple[str, ast.Dict, list[tuple[str, str]]]]:
    found = []
    for rel in repo.python_files():
        if not rel.endswith("__init__.py"):
            continue
        key = f"init-order-1:{repo.digest(rel)}"
        if repo.cache.get(key) is True:
            continue
        text = repo.read(rel)
        table = lazy_table(repo.parse(rel)) if "lazy_exports" in text else None
        if table is None or not all(
            isinstance(k, ast.Constant) and isinstance(v, ast.Constant)
            for k, v in zip(table.keys, table.values)
        ):
            repo.cache.put(key, True)
            continue
        entries = [(k.value, v.value) for k, v in zip(table.keys, table.values)]  # type: ignore[union-attr]
        if _is_sorted(entries):
            repo.cache.put(key, True)
            continue
        found.append((rel, table, entries))
    return found


@register("init-order", "lazy-export tables are sorted (grouped by module)", fix=lambda r: fix(r))
def check(repo: Repo) -> list[Problem]:
    problems = []
    for rel, table, entries in _tables(repo):
        names = [n for n, _ in entries]
        wrong = next((a for a, b in zip(names, [n for n, _ in sorted_entries(entries)]) if a != b), names[0])
        comments = "#" in (ast.get_source_segment(repo.read(rel), table) or "")
        problems.append(
            Problem(
                rel,
                table.lineno,
                f"lazy-export table is not sorted (first out of place: {wrong!r})"
                + ("; it has comments, so sort it by hand" if comments else ""),
                fixable=not comments,
            )
        )
    return problems


def fix(repo: Repo) -> list[str]:
    changed = []
    for rel, table, entries in _tables(repo):
        text = repo.read(rel)
        if "#" in (ast.get_source_segment(text, table) or ""):
            continue
        lines = text.splitlines(keepends=True)
        opening = lines[table.lineno - 1]
        indent = opening[: len(opening) - len(opening.lstrip())]
        prefix = opening[: table.col_offset]
        suffix = lines[(table.end_lineno or table.lineno) - 1][table.end_col_offset :]
        inner = indent + "    "
        body = "".join(f'{inner}"{name}": "{target}",\n' for name, target in sorted_entries(entries))
        closing = indent + "}"
        lines[table.lineno - 1 : table.end_lineno] = [prefix + "{\n" + body + closing + suffix]
        repo.write(rel, "".join(lines))
        changed.append(rel)
    return changed
