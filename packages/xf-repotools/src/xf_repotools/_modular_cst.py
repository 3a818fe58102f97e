"""The libcst half of ``modular``: parse a modular file and its parents, merge, rename, emit (imported only
when a repository has ``modular_*.py`` files, so checkers that do not need libcst never load it)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable

import libcst as cst

from xf_repotools._core import Repo
from xf_repotools._formatting import format_snippets
from xf_repotools.errors import RepoToolsError

__all__ = ["convert"]


def _dotted(node: cst.BaseExpression | None) -> str:
    if node is None:
        return ""
    if isinstance(node, cst.Name):
        return node.value
    if isinstance(node, cst.Attribute):
        return f"{_dotted(node.value)}.{node.attr.value}"
    return ""


def _resolve(
    repo: Repo, modular: str, node: cst.ImportFrom, modules: dict[str, str], is_parent_module
) -> str | None:
    """The repository file a ``from X import ...`` names, if it is a parent family module."""
    dots = len(node.relative)
    name = _dotted(node.module)
    if dots:
        package = modular.rsplit("/", 1)[0].split("/")
        here = next((m for m, f in modules.items() if f == modular), "")
        base = here.split(".")[:-dots] if here else []
        name = ".".join([*base, name] if name else base)
        del package
    rel = modules.get(name)
    return rel if rel is not None and is_parent_module(rel) else None


def _names_used(node: cst.CSTNode) -> set[str]:
    found: set[str] = set()

    class Visitor(cst.CSTVisitor):
        def visit_Name(self, n: cst.Name) -> None:
            found.add(n.value)

    node.visit(Visitor())
    return found


def _defined_name(stmt: cst.CSTNode) -> list[str]:
    if isinstance(stmt, cst.ClassDef | cst.FunctionDef):
        return [stmt.name.value]
    if isinstance(stmt, cst.SimpleStatementLine):
        out = []
        for small in stmt.body:
            if isinstance(small, cst.Assign):
                out += [t.target.value for t in small.targets if isinstance(t.target, cst.Name)]
            elif isinstance(small, cst.AnnAssign) and isinstance(small.target, cst.Name):
                out.append(small.target.value)
        return out
    return []


def _is_import(stmt: cst.CSTNode) -> bool:
    return isinstance(stmt, cst.SimpleStatementLine) and any(
        isinstance(s, cst.Import | cst.ImportFrom) for s in stmt.body
    )


def _member_name(stmt: cst.CSTNode) -> str | None:
    names = _defined_name(stmt)
    return names[0] if names else None


def _renames(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Prefix renames from (modular class, parent class) name pairs, longest first, with case variants."""
    counts: Counter[tuple[str, str]] = Counter()
    for new, old in pairs:
        i = 0
        while i < min(len(new), len(old)) and new[-1 - i] == old[-1 - i]:
            i += 1
        a, b = old[: len(old) - i], new[: len(new) - i]
        if a and b and a != b:
            counts[(a, b)] += 1
    out: list[tuple[str, str]] = []
    for old, new in sorted(counts, key=lambda p: -len(p[0])):
        out += [(old, new), (old.lower(), new.lower()), (old.upper(), new.upper())]
    return out


def _rename(code: str, renames: list[tuple[str, str]]) -> str:
    for old, new in renames:
        code = (
            re.sub(rf"(?<![A-Za-z0-9]){re.escape(old)}", new, code)
            if old.islower()
            else code.replace(old, new)
        )
    return code


def _merge(parent: cst.ClassDef, child: cst.ClassDef, parent_names: set[str]) -> cst.ClassDef:
    child_members = {name: stmt for stmt in child.body.body if (name := _member_name(stmt)) is not None}
    child_doc = child.get_docstring() is not None
    body: list[cst.BaseStatement] = []
    used: set[str] = set()
    for i, stmt in enumerate(parent.body.body):
        if i == 0 and child_doc and parent.get_docstring() is not None:
            continue
        name = _member_name(stmt)
        if name in child_members:
            body.append(child_members[name])  # type: ignore[arg-type]
            used.add(name)
        else:
            body.append(stmt)  # type: ignore[arg-type]
    extra = [s for s in child.body.body if _member_name(s) not in used]
    if child_doc:
        body.insert(0, extra.pop(0))  # type: ignore[arg-type]
    extra = [
        s for s in extra if not (isinstance(s, cst.SimpleStatementLine) and isinstance(s.body[0], cst.Pass))
    ]
    bases = [*parent.bases, *[b for b in child.bases if _dotted(b.value) not in parent_names]]
    return parent.with_changes(
        name=child.name, bases=bases, body=parent.body.with_changes(body=[*body, *extra])
    )


def convert(repo: Repo, modular: str, *, banner: str, is_parent_module: Callable[[str], bool]) -> str:
    """The generated ``modeling_*`` text for the repository file ``modular`` (relative to the root)."""
    try:
        module = cst.parse_module(repo.read(modular))
    except cst.ParserSyntaxError as e:
        raise RepoToolsError(f"{modular}: cannot parse ({e.message}); fix the syntax first") from e
    modules = repo.modules()
    parent_files: list[str] = []
    imported: dict[str, str] = {}  # local name -> parent file
    own_imports: list[cst.CSTNode] = []
    for stmt in module.body:
        if not _is_import(stmt):
            continue
        small = stmt.body[0]  # type: ignore[attr-defined]
        parent = (
            _resolve(repo, modular, small, modules, is_parent_module)
            if isinstance(small, cst.ImportFrom)
            else None
        )
        if parent is None:
            own_imports.append(stmt)
            continue
        if parent not in parent_files:
            parent_files.append(parent)
        if isinstance(small.names, cst.ImportStar):
            raise RepoToolsError(f"{modular}: `from ... import *` of a parent family; import the names used")
        for alias in small.names:
            imported[(alias.asname.name.value if alias.asname else alias.name.value)] = parent  # type: ignore[union-attr]
    if not parent_files:
        raise RepoToolsError(
            f"{modular}: imports nothing from a parent family (a models/ or modeling_* module)"
        )

    parents = {rel: cst.parse_module(repo.read(rel)) for rel in parent_files}
    defs: dict[str, tuple[str, cst.CSTNode]] = {}  # parent top-level name -> (file, node)
    for rel, tree in parents.items():
        for stmt in tree.body:
            for name in _defined_name(stmt):
                defs.setdefault(name, (rel, stmt))

    own = [s for i, s in enumerate(module.body) if not _is_import(s) and not (i == 0 and _is_docstring(s))]
    pairs, merged = [], {}
    for stmt in own:
        if isinstance(stmt, cst.ClassDef):
            for base in stmt.bases:
                base_name = _dotted(base.value)
                if (
                    base_name in imported
                    and base_name in defs
                    and isinstance(defs[base_name][1], cst.ClassDef)
                ):
                    pairs.append((stmt.name.value, base_name))
                    merged[base_name] = _merge(defs[base_name][1], stmt, set(imported))  # type: ignore[arg-type]
                    break
    renames = _renames(pairs)

    needed: set[str] = set()
    todo = [n for s in own for n in _names_used(s) if n in defs] + list(merged)
    while todo:
        name = todo.pop()
        if name in needed:
            continue
        needed.add(name)
        todo += [n for n in _names_used(defs[name][1]) if n in defs and n not in needed]
    own_names = {n for s in own for n in _defined_name(s)}

    pieces: list[str] = []
    emitted: set[int] = set()
    for tree in parents.values():
        for stmt in tree.body:
            names = _defined_name(stmt)
            if not names or id(stmt) in emitted or not any(n in needed for n in names):
                continue
            emitted.add(id(stmt))
            name = names[0]
            if name in merged:
                pieces.append(_rename(tree.code_for_node(merged[name]), renames))
            elif _rename(name, renames) not in own_names:
                pieces.append(_rename(tree.code_for_node(stmt), renames))
    merged_children = {child for child, _ in pairs}
    for stmt in own:
        if isinstance(stmt, cst.ClassDef) and stmt.name.value in merged_children:
            continue
        pieces.append(_rename(module.code_for_node(stmt), renames))

    imports: list[str] = []
    for tree in parents.values():
        for stmt in tree.body:
            if _is_import(stmt):
                imports.append(tree.code_for_node(stmt))
    for stmt in own_imports:
        imports.append(module.code_for_node(stmt))
    imports = list(dict.fromkeys(i.strip() + "\n" for i in imports))
    future = [i for i in imports if "__future__" in i]
    rest = [i for i in imports if "__future__" not in i]
    doc = module.body[0] if module.body and _is_docstring(module.body[0]) else None
    head = module.code_for_node(doc).strip() + "\n\n" if doc is not None else ""
    code = (
        banner.format(source=modular.rsplit("/", 1)[-1])
        + head
        + "".join(future)
        + "".join(rest)
        + "\n\n"
        + "\n\n".join(p.strip("\n") + "\n" for p in pieces)
    )
    return format_snippets([code], root=repo.root, sort_imports=True)[0]


def _is_docstring(stmt: cst.CSTNode) -> bool:
    return (
        isinstance(stmt, cst.SimpleStatementLine)
        and isinstance(stmt.body[0], cst.Expr)
        and isinstance(stmt.body[0].value, cst.SimpleString | cst.ConcatenatedString)
    )
