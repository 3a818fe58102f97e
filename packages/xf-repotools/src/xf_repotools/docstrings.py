"""``docstrings``: the ``Args:`` section of a public function's docstring matches its signature.

Only docstrings that have an ``Args:`` (or ``Arguments:``/``Parameters:``) section are checked: every
parameter (but ``self``/``cls``; ``*args``/``**kwargs`` optional) has an entry and every entry names a
parameter. ``--fix`` drops entries for parameters that are gone and adds an entry, built from the signature
(type and default), for each undocumented one, in signature order.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

from xf_repotools._core import Problem, Repo, register

__all__ = ["ArgsSection", "args_section"]

_HEADER = re.compile(r"^(?P<indent>\s*)(Args|Arguments|Parameters):\s*$")
_ENTRY = re.compile(r"^(?P<indent>\s*)(?P<name>\*{0,2}\w+)\s*(\([^)]*\))?\s*:")


@dataclass
class ArgsSection:
    header: int  # 0-based line index in the file
    entry_indent: str
    entries: dict[str, tuple[int, int]]  # name -> (first line, one past last line), 0-based
    end: int  # one past the last line of the section


def args_section(lines: list[str], start: int, stop: int) -> ArgsSection | None:
    """The Args section in ``lines[start:stop]`` (a docstring's lines), or None."""
    for i in range(start, stop):
        header = _HEADER.match(lines[i].rstrip("\n"))
        if header is None:
            continue
        base = len(header["indent"])
        entries: dict[str, tuple[int, int]] = {}
        entry_indent = None
        current = None
        end = i + 1
        for j in range(i + 1, stop):
            text = lines[j].rstrip("\n")
            if j == stop - 1 and text.strip() in ('"""', "'''"):
                break
            if not text.strip():
                continue
            indent = len(text) - len(text.lstrip())
            if indent <= base:
                break
            match = _ENTRY.match(text)
            if match and (entry_indent is None or len(match["indent"]) == len(entry_indent)):
                entry_indent = match["indent"]
                name = match["name"].lstrip("*")
                current = name
                entries[name] = (j, j + 1)
            elif current is not None:
                entries[current] = (entries[current][0], j + 1)
            end = j + 1
        return ArgsSection(i, entry_indent or " " * (base + 4), entries, end)
    return None


def _params(node: ast.FunctionDef | ast.AsyncFunctionDef, is_method: bool) -> list[ast.arg]:
    args = node.args
    positional = [*args.posonlyargs, *args.args]
    if is_method and positional and positional[0].arg in ("self", "cls", "mcs"):
        positional = positional[1:]
    return [*positional, *args.kwonlyargs]


def _functions(tree: ast.Module):
    def walk(body: list[ast.stmt], in_class: bool, public: bool):
        for node in body:
            if isinstance(node, ast.ClassDef):
                yield from walk(node.body, True, public and not node.name.startswith("_"))
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                name_public = not node.name.startswith("_") or node.name == "__init__"
                if public and name_public:
                    yield node, in_class

    yield from walk(tree.body, False, True)


def _findings(repo: Repo, rel: str) -> list[tuple[ast.FunctionDef, bool, ArgsSection, list[str], list[str]]]:
    text = repo.read(rel)
    if not re.search(r"^\s*(Args|Arguments|Parameters):\s*$", text, re.M):
        return []
    lines = text.splitlines(keepends=True)
    found = []
    for node, is_method in _functions(repo.parse(rel)):
        doc = node.body[0] if node.body else None
        if not (
            isinstance(doc, ast.Expr)
            and isinstance(doc.value, ast.Constant)
            and isinstance(doc.value.value, str)
        ):
            continue
        section = args_section(lines, doc.lineno - 1, doc.end_lineno or doc.lineno)
        if section is None:
            continue
        params = [a.arg for a in _params(node, is_method)]
        optional = {a.arg for a in (node.args.vararg, node.args.kwarg) if a is not None}
        missing = [p for p in params if p not in section.entries]
        extra = [e for e in section.entries if e not in params and e not in optional]
        if missing or extra:
            found.append((node, is_method, section, missing, extra))
    return found


def _files(repo: Repo) -> list[str]:
    return [
        f
        for f in repo.python_files()
        if "/tests/" not in f"/{f}" and not f.split("/")[-1].startswith("test_")
    ]


@register("docstrings", "Args sections of public functions match their signatures", fix=lambda r: fix(r))
def check(repo: Repo) -> list[Problem]:
    problems = []
    for rel in _files(repo):
        key = f"docstrings-1:{repo.digest(rel)}"
        if repo.cache.get(key) == []:
            continue
        found = []
        for node, _m, section, missing, extra in _findings(repo, rel):
            for name in missing:
                found.append(Problem(rel, node.lineno, f"{node.name}(): parameter {name!r} is not in Args"))
            for name in extra:
                line = section.entries[name][0] + 1
                found.append(Problem(rel, line, f"{node.name}(): Args documents {name!r}, not a parameter"))
        repo.cache.put(key, [p.message for p in found])
        problems += found
    return problems


def _entry(arg: ast.arg, default: ast.expr | None, indent: str) -> str:
    kind = f" ({ast.unparse(arg.annotation)})" if arg.annotation is not None else ""
    what = f"Defaults to `{ast.unparse(default)}`." if default is not None else "Required."
    return f"{indent}{arg.arg}{kind}: {what}\n"


def _defaults(node: ast.FunctionDef) -> dict[str, ast.expr]:
    positional = [*node.args.posonlyargs, *node.args.args]
    out = dict(zip([a.arg for a in positional][::-1], node.args.defaults[::-1]))
    out.update({a.arg: d for a, d in zip(node.args.kwonlyargs, node.args.kw_defaults) if d is not None})
    return out


def fix(repo: Repo) -> list[str]:
    changed = []
    for rel in _files(repo):
        found = _findings(repo, rel)
        if not found:
            continue
        lines = repo.read(rel).splitlines(keepends=True)
        # bottom-up so earlier line numbers stay valid
        for node, is_method, section, _missing, extra in sorted(found, key=lambda f: -f[0].lineno):
            params = _params(node, is_method)
            defaults = _defaults(node)
            blocks = {name: lines[a:b] for name, (a, b) in section.entries.items() if name not in extra}
            order = [p.arg for p in params] + [n for n in blocks if n not in {p.arg for p in params}]
            by_name = {p.arg: p for p in params}
            body: list[str] = []
            for name in order:
                if name in blocks:
                    body += blocks[name]
                elif name in by_name:
                    body.append(_entry(by_name[name], defaults.get(name), section.entry_indent))
            first = min([a for a, _ in section.entries.values()], default=section.header + 1)
            lines[first : max(section.end, first)] = body
        repo.write(rel, "".join(lines))
        changed.append(rel)
    return changed
