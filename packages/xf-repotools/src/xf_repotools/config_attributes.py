"""``config-attributes``: every field of each model config is read by that model's code (or allowed).

Model files are the Python files under a ``models`` folder; a config is a class there whose name ends in
``Config`` with annotated fields. A field counts as read when the model file (outside the field declarations; the config's own ``validate`` counts), or a
shared module of the same package outside ``models/`` (the loading and generation code every model runs on),
uses ``.field`` or the string ``"field"``. Fields kept only so ``config.json`` round-trips are listed, with
the reason, under ``[tool.xf-repotools.config-attributes] allow = {"GPT2Config.summary_type" = "why"}`` in
the root pyproject (``"*.field"`` allows a field of every config). Nothing here is mechanical: no ``--fix``.
"""

from __future__ import annotations

import ast

from xf_repotools._core import Problem, Repo, register

__all__ = ["config_fields", "used_names"]


def config_fields(cls: ast.ClassDef) -> dict[str, int]:
    """Annotated field name -> line, ClassVars and private names left out."""
    fields = {}
    for node in cls.body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            if "ClassVar" in ast.unparse(node.annotation) or node.target.id.startswith("_"):
                continue
            fields[node.target.id] = node.lineno
    return fields


def used_names(tree: ast.AST, *, skip: set[ast.AST] = frozenset()) -> set[str]:  # type: ignore[assignment]
    found: set[str] = set()
    stack = [tree]
    while stack:
        node = stack.pop()
        if node in skip:
            continue
        if isinstance(node, ast.Attribute):
            found.add(node.attr)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.isidentifier():
            found.add(node.value)
        stack.extend(ast.iter_child_nodes(node))
    return found


def _model_files(repo: Repo) -> list[str]:
    return [
        f
        for f in repo.python_files()
        if "/models/" in f"/{f}" and "/tests/" not in f"/{f}" and not f.endswith("__init__.py")
    ]


def _shared_names(repo: Repo, model_file: str, memo: dict[str, set[str]]) -> set[str]:
    package_dir = f"/{model_file}"[1 : f"/{model_file}".index("/models/")]
    if package_dir not in memo:
        names: set[str] = set()
        for rel in repo.python_files():
            if rel.startswith(package_dir + "/") and "/models/" not in rel[len(package_dir) :]:
                key = f"config-attributes-1:names:{repo.digest(rel)}"
                cached = repo.cache.get(key)
                if cached is None:
                    cached = sorted(used_names(repo.parse(rel)))
                    repo.cache.put(key, cached)
                names.update(cached)
        memo[package_dir] = names
    return memo[package_dir]


@register("config-attributes", "every model config field is read by the model's code (or allowed)")
def check(repo: Repo) -> list[Problem]:
    allow = repo.config("config-attributes").get("allow", {})
    shared: dict[str, set[str]] = {}
    problems = []
    for rel in _model_files(repo):
        text = repo.read(rel)
        if "Config" not in text:
            continue
        tree = repo.parse(rel)
        configs = [
            n
            for n in tree.body
            if isinstance(n, ast.ClassDef) and n.name.endswith("Config") and config_fields(n)
        ]
        if not configs:
            continue
        # the field declarations do not count; the config's own methods (validate, ...) do
        declarations = {n for c in configs for n in c.body if isinstance(n, ast.AnnAssign)}
        read = used_names(tree, skip=declarations) | _shared_names(repo, rel, shared)
        for cls in configs:
            for field, line in config_fields(cls).items():
                if field in read or f"{cls.name}.{field}" in allow or f"*.{field}" in allow:
                    continue
                problems.append(
                    Problem(
                        rel,
                        line,
                        f"{cls.name}.{field} is never read by the model code; use it, drop it, or allow it with "
                        f"a reason in [tool.xf-repotools.config-attributes] allow",
                        fixable=False,
                    )
                )
    return problems
