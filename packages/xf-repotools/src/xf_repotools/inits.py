"""Check every package ``__init__.py``: each name in ``__all__`` must exist, and lazily exported names must be
defined by the module that ``lazy_exports`` points them to.

A typo in a lazy export only fails when a user touches that name; this check finds it in CI. There is no
``--fix``: which name is right is a human decision (the message says where); ruff keeps ``__all__`` sorted.
"""

from __future__ import annotations

import ast
from pathlib import Path

__all__ = ["problems", "run"]


def _top_level_names(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in tree.body:
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
            names |= _top_level_names(ast.Module(body=node.body, type_ignores=[]))
    return names


def _dict_literals(tree: ast.Module) -> dict[str, ast.Dict]:
    found = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    found[target.id] = node.value
    return found


def _lazy_mapping(tree: ast.Module) -> dict[str, str]:
    dicts = _dict_literals(tree)
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and getattr(node.func, "id", None) == "lazy_exports"
            and len(node.args) == 2
        ):
            arg = node.args[1]
            mapping = arg if isinstance(arg, ast.Dict) else dicts.get(getattr(arg, "id", ""))
            if mapping is not None:
                return {
                    ast.literal_eval(k): ast.literal_eval(v) for k, v in zip(mapping.keys, mapping.values)
                }
    return {}


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
                        names += [ast.literal_eval(k) for k in source.keys]
            return names, node
    return [], None


def _module_file(src: Path, package: str, target: str) -> Path | None:
    """The file of module ``target`` (absolute, or relative to ``package``) inside ``src``; None if third-party."""
    if target.startswith("."):
        target = package + target
    parts = target.split(".")
    base = src.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def problems(root: Path) -> list[str]:
    found = []
    for init in sorted(root.glob("packages/*/src/*/__init__.py")):
        src, package = init.parent.parent, init.parent.name
        rel = init.relative_to(root)
        tree = ast.parse(init.read_text())
        names, node = _all_names(tree)
        line = node.lineno if node else 1
        if node is None:
            found.append(f"{rel}:1: no __all__; list the public names")
            continue
        defined = _top_level_names(tree)
        lazy = _lazy_mapping(tree)
        for name in names:
            if name not in defined and name not in lazy:
                found.append(
                    f"{rel}:{line}: __all__ lists {name!r}, which is neither defined nor lazily exported"
                )
        for name, target in sorted(lazy.items()):
            if name not in names:
                found.append(f"{rel}:{line}: {name!r} is lazily exported but missing from __all__")
            module = _module_file(src, package, target)
            if module is None:
                if target.startswith((".", package)):
                    found.append(f"{rel}:{line}: {name!r} points to {target}, which does not exist")
                continue
            if name not in _top_level_names(ast.parse(module.read_text())):
                found.append(
                    f"{rel}:{line}: {name!r} points to {module.relative_to(root)}, which does not define it"
                )
        if len(names) != len(set(names)):
            found.append(f"{rel}:{line}: __all__ lists a name twice")
    return found


def run(root: Path, *, fix: bool) -> int:
    del fix  # nothing here can be fixed mechanically: the right name is a human decision
    found = problems(root)
    for problem in found:
        print(f"{problem}; fix the name by hand (ruff sorts __all__)")
    return 1 if found else 0
