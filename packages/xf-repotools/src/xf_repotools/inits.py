"""``inits``: in every package ``__init__.py`` (sub-packages too), ``__all__``, the lazy-export table and the
definitions agree.

Each name in ``__all__`` is defined in the init or lazily exported; each lazily exported name is in ``__all__``,
is defined by the module the table points it to, and is imported from that module under ``if TYPE_CHECKING:``
(without it, type checkers and IDEs see the name as ``Any``). A typo in a lazy export only fails when a user touches
that name; this check finds it in CI. ``--fix`` does the mechanical part (adds lazily exported names missing
from a literal ``__all__``, drops duplicates); a dangling name is a human decision (the message says where).
"""

from __future__ import annotations

import ast
from pathlib import Path

from xf_repotools._core import Problem, Repo, register

__all__ = ["lazy_table", "problems", "run", "top_level_names"]

_VERSION = "inits-3"


def top_level_names(body: list[ast.stmt]) -> set[str]:
    names: set[str] = set()
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
        elif isinstance(node, ast.AnnAssign | ast.AugAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.If | ast.Try):
            names |= top_level_names(node.body)
            for handler in getattr(node, "handlers", []):
                names |= top_level_names(handler.body)
            names |= top_level_names(node.orelse)
    return names


def _dict_literals(tree: ast.Module) -> dict[str, ast.Dict]:
    found = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    found[target.id] = node.value
    return found


def lazy_table(tree: ast.Module) -> ast.Dict | None:
    """The dict literal passed to ``lazy_exports(__name__, ...)`` (inline or through a module-level name)."""
    dicts = _dict_literals(tree)
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and getattr(node.func, "id", getattr(node.func, "attr", None)) == "lazy_exports"
            and len(node.args) == 2
        ):
            arg = node.args[1]
            return arg if isinstance(arg, ast.Dict) else dicts.get(getattr(arg, "id", ""))
    return None


def _lazy_mapping(tree: ast.Module) -> dict[str, str]:
    table = lazy_table(tree)
    if table is None:
        return {}
    return {
        k.value: v.value
        for k, v in zip(table.keys, table.values)
        if isinstance(k, ast.Constant) and isinstance(v, ast.Constant)
    }


def _type_checking_imports(tree: ast.Module) -> dict[str, str]:
    """name -> module (relative ones with their dots) of the imports under top-level ``if TYPE_CHECKING:``."""
    found: dict[str, str] = {}
    for node in tree.body:
        if (
            isinstance(node, ast.If)
            and getattr(node.test, "id", getattr(node.test, "attr", None)) == "TYPE_CHECKING"
        ):
            for statement in node.body:
                if isinstance(statement, ast.ImportFrom):
                    module = "." * statement.level + (statement.module or "")
                    found.update({(a.asname or a.name): module for a in statement.names})
    return found


def _all_names(tree: ast.Module) -> tuple[list[str], ast.Assign | None]:
    dicts = _dict_literals(tree)
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in node.targets):
            names: list[str] = []
            for element in getattr(node.value, "elts", []):
                if isinstance(element, ast.Constant):
                    names.append(element.value)
                elif isinstance(element, ast.Starred):
                    inner = element.value
                    if isinstance(inner, ast.Call) and inner.args:
                        inner = inner.args[0]
                    source = dicts.get(getattr(inner, "id", ""))
                    if source is not None:
                        names += [k.value for k in source.keys if isinstance(k, ast.Constant)]
            return names, node
    return [], None


def _package_of(rel: str, modules: dict[str, str]) -> str | None:
    return next((name for name, path in modules.items() if path == rel), None)


def _inits(repo: Repo) -> list[str]:
    return [f for f in repo.python_files() if f.endswith("__init__.py") and "/tests/" not in f"/{f}"]


def _check_init(repo: Repo, rel: str, package: str, modules: dict[str, str]) -> list[Problem]:
    tree = repo.parse(rel)
    names, node = _all_names(tree)
    lazy = _lazy_mapping(tree)
    line = node.lineno if node else 1
    top_level = rel.count("/") >= 2 and rel.split("/")[-3] == "src"
    if node is None:
        if lazy or top_level:
            return [Problem(rel, 1, "no __all__; list the public names", fixable=False)]
        return []
    found = []
    defined = top_level_names(tree.body)
    for name in names:
        if name not in defined and name not in lazy:
            found.append(
                Problem(
                    rel,
                    line,
                    f"__all__ lists {name!r}, which is neither defined nor lazily exported",
                    fixable=False,
                )
            )
    top = package.split(".")[0]
    typed = _type_checking_imports(tree)
    for name, target in sorted(lazy.items()):
        if name not in names:
            found.append(Problem(rel, line, f"{name!r} is lazily exported but missing from __all__"))
        if typed.get(name) != target:
            found.append(
                Problem(
                    rel,
                    line,
                    f"{name!r} is lazily exported from {target} but not imported from it under `if "
                    f"TYPE_CHECKING:`, so type checkers see it as Any; add `from {target} import {name}` there",
                    fixable=False,
                )
            )
        absolute = package + target if target.startswith(".") else target
        module = modules.get(absolute)
        if module is None:
            if absolute.split(".")[0] == top:
                found.append(
                    Problem(rel, line, f"{name!r} points to {target}, which does not exist", fixable=False)
                )
            continue
        if name not in top_level_names(repo.parse(module).body):
            found.append(
                Problem(rel, line, f"{name!r} points to {module}, which does not define it", fixable=False)
            )
    if len(names) != len(set(names)):
        found.append(Problem(rel, line, "__all__ lists a name twice"))
    return found


def _problems(repo: Repo) -> list[Problem]:
    modules = repo.modules()
    found = []
    for rel in _inits(repo):
        package = _package_of(rel, modules)
        if package is None:
            continue
        tree_key = f"{_VERSION}:{rel}:{repo.digest(rel)}"
        # the verdict also depends on the modules the table points to
        lazy = repo.cache.get(tree_key + ":targets")
        if lazy is None:
            lazy = sorted(set(_lazy_mapping(repo.parse(rel)).values()))
            repo.cache.put(tree_key + ":targets", lazy)
        deps = []
        for target in lazy:
            absolute = package + target if target.startswith(".") else target
            deps.append(repo.digest(modules[absolute]) if absolute in modules else "-")
        key = f"{tree_key}:{':'.join(deps)}"
        cached = repo.cache.get(key)
        if cached == []:
            continue
        result = _check_init(repo, rel, package, modules)
        repo.cache.put(key, [p.message for p in result])
        found += result
    return found


@register(
    "inits", "__all__, lazy-export tables and definitions agree in every __init__.py", fix=lambda r: fix(r)
)
def check(repo: Repo) -> list[Problem]:
    return _problems(repo)


def fix(repo: Repo) -> list[str]:
    changed = []
    for rel in sorted({p.path for p in _problems(repo) if p.fixable}):
        text = repo.read(rel)
        tree = repo.parse(rel)
        names, node = _all_names(tree)
        if node is None or not isinstance(node.value, ast.List):
            continue
        lazy = _lazy_mapping(tree)
        elements, seen = [], set()
        for element in node.value.elts:
            if isinstance(element, ast.Constant):
                if element.value in seen:
                    continue
                seen.add(element.value)
            elements.append(ast.get_source_segment(text, element) or "")
        elements += [repr(n).replace("'", '"') for n in sorted(set(lazy) - set(names))]
        lines = text.splitlines(keepends=True)
        start, end = node.lineno - 1, node.end_lineno or node.lineno
        one_line = f"__all__ = [{', '.join(elements)}]\n"
        new = (
            one_line
            if len(one_line) <= 100
            else "__all__ = [\n" + "".join(f"    {e},\n" for e in elements) + "]\n"
        )
        lines[start:end] = [new]
        repo.write(rel, "".join(lines))
        changed.append(rel)
    return changed


def problems(root: Path) -> list[str]:
    """``file:line: message`` for every init problem under ``root`` (no cache)."""
    return [f"{p.path}:{p.line}: {p.message}" for p in _problems(Repo.open(root, use_cache=False))]


def run(root: Path, *, fix: bool) -> int:
    """The ``inits`` checker alone (kept for ``xf-repotools inits``)."""
    from xf_repotools.check import run_checks

    return run_checks(root, ["inits"], fix=fix)
