"""``tests-fetcher``: the test files a diff affects, through the static import graph.

Every Python file's imports count, at any depth (imports inside functions too), across packages; a string
constant naming a module of the repository (``importlib.import_module("pkg.mod")``, lazy-export tables,
auto tables) counts as an import too. A changed file selects every test file that reaches it. A changed
``conftest.py`` selects the tests below it; a member's ``pyproject.toml`` or data file counts as a change of
all its Python files; documentation selects nothing. The "run everything" rules are :data:`RUN_ALL`.

Output: the test files, one a line; ``--json FILE`` writes ``{"base", "changed_files", "run_all",
"run_all_reason", "packages", "tests"}`` for the CI generator.
"""

from __future__ import annotations

import ast
import json
import subprocess
import tomllib
from dataclasses import dataclass
from pathlib import Path

from xf_repotools._core import Repo, module_name
from xf_repotools.errors import RepoToolsError
from xf_repotools.inits import lazy_table

__all__ = [
    "RUN_ALL",
    "Graph",
    "Selection",
    "affected_files",
    "changed_files",
    "import_graph",
    "main",
    "select",
]

# Path (exact file, or folder ending in "/") -> why a change there runs every test.
RUN_ALL: dict[str, str] = {
    "pyproject.toml": "the root pyproject (tool configuration, workspace members) changed",
    "uv.lock": "the lock file changed: any dependency may differ",
    "conftest.py": "the root conftest applies to every test",
    "ci/": "a CI file changed",
    ".ci/": "a CI file changed",
    ".github/": "a CI workflow changed",
}
DOC_SUFFIXES = (".md", ".rst", ".txt")
DOC_NAMES = {"LICENSE", "CHANGELOG.md", "README.md", ".gitignore", ".pre-commit-config.yaml"}


@dataclass(frozen=True)
class Selection:
    base: str
    changed_files: list[str]
    run_all: bool
    run_all_reason: str | None
    packages: list[str]
    tests: list[str]

    def as_dict(self) -> dict[str, object]:
        return {
            "base": self.base,
            "changed_files": self.changed_files,
            "run_all": self.run_all,
            "run_all_reason": self.run_all_reason,
            "packages": self.packages,
            "tests": self.tests,
        }


def is_test_file(rel: str) -> bool:
    name = rel.rsplit("/", 1)[-1]
    return name.endswith(".py") and (name.startswith("test_") or name.endswith("_test.py"))


def _imports(tree: ast.Module, here: str | None, is_package: bool) -> tuple[list[str], list[str]]:
    """(dotted names this module imports, any depth: ``a.b.c`` for ``from a.b import c``; for a package, its
    lazy table as ``name=module`` pairs)."""
    names: list[str] = []
    table = lazy_table(tree) if is_package else None
    lazy_nodes = set(map(id, table.values)) if table is not None else set()
    lazy: list[str] = []
    for key, value in zip(table.keys, table.values) if table is not None else ():
        if isinstance(key, ast.Constant) and isinstance(value, ast.Constant) and isinstance(value.value, str):
            target = (here or "") + value.value if value.value.startswith(".") else value.value
            lazy.append(f"{key.value}={target}")
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = (here or "").split(".")
                keep = len(parts) - node.level + (1 if is_package else 0)
                base = ".".join([*parts[: max(keep, 0)], *([base] if base else [])])
            names.append(base)
            names += [f"{base}.{a.name}" for a in node.names if a.name != "*"]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            value = node.value
            if id(node) in lazy_nodes:
                continue
            if "." in value and value.replace(".", "").replace("_", "").isalnum():
                names.append(value)
    return names, lazy


@dataclass
class Graph:
    """Per file: the modules it names (``final``), the packages it passes through (``parents``), and for a
    package ``__init__`` the modules its lazy-export table points to (``lazy``). ``from pkg import Name``
    where ``Name`` is in ``pkg``'s lazy table names the module behind ``Name``, with ``pkg`` passed through."""

    final: dict[str, set[str]]
    parents: dict[str, set[str]]
    lazy: dict[str, set[str]]
    raw: dict[str, set[str]]


def import_graph(repo: Repo) -> Graph:
    modules = repo.modules()
    files = set(repo.python_files())
    graph = Graph({}, {}, {}, {})
    data: dict[str, tuple[list[str], list[str]]] = {}
    for rel in sorted(files):
        key = f"tests-fetcher-3:{rel}:{repo.digest(rel)}"
        cached = repo.cache.get(key)
        if cached is None:
            try:
                tree = ast.parse(repo.read(rel))
            except SyntaxError:
                tree = ast.Module(body=[], type_ignores=[])
            names, lazy = _imports(tree, module_name(rel, files), rel.endswith("__init__.py"))
            cached = [sorted(set(names)), sorted(set(lazy))]
            repo.cache.put(key, cached)
        data[rel] = (cached[0], cached[1])
    lazy_names = {
        rel: {
            pair.split("=", 1)[0]: modules[pair.split("=", 1)[1]]
            for pair in lazy
            if pair.split("=", 1)[1] in modules
        }
        for rel, (_names, lazy) in data.items()
    }
    for rel, (names, _lazy) in data.items():
        final: set[str] = set()
        parents: set[str] = set()
        for name in names:
            parts = name.split(".")
            found = [(i, modules.get(".".join(parts[:i]))) for i in range(1, len(parts) + 1)]
            found = [(i, f) for i, f in found if f is not None and f != rel]
            if not found:
                continue
            depth, last = found[-1]
            through = lazy_names.get(last, {}).get(parts[depth]) if depth < len(parts) else None
            if through is not None and through != rel:
                final.add(through)
                parents.update(f for _, f in found)
            else:
                final.add(last)
                parents.update(f for _, f in found[:-1])
        graph.final[rel] = final
        graph.parents[rel] = parents - final
        graph.lazy[rel] = set(lazy_names.get(rel, {}).values())
        graph.raw[rel] = set(names)
    return graph


def affected_files(graph: Graph, seeds: set[str]) -> set[str]:
    """Files whose behaviour may change: a named module changed, a package passed through changed eagerly,
    or (for a package ``__init__``) a module of its lazy table changed. Importing ``pkg.sub`` runs
    ``pkg/__init__`` but not its lazy table, so a lazy target does not reach ``pkg.sub``'s users."""
    eager = set(seeds)
    lazy: set[str] = set()
    changed = True
    while changed:
        changed = False
        for rel in graph.final:
            if rel not in eager and (graph.final[rel] & (eager | lazy) or graph.parents[rel] & eager):
                eager.add(rel)
                changed = True
            if rel not in lazy and rel not in eager and graph.lazy[rel] & (eager | lazy):
                lazy.add(rel)
                changed = True
    return eager | lazy


def changed_files(root: Path, base: str) -> list[str]:
    """Files that differ between the merge base of ``base`` and HEAD and the working tree (plus untracked)."""

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout
        except subprocess.CalledProcessError as e:
            raise RepoToolsError(f"git {' '.join(args)} failed in {root}: {e.stderr.strip()}") from e

    merge_base = git("merge-base", base, "HEAD").strip()
    diff = git("diff", "--name-only", "--no-renames", merge_base).splitlines()
    untracked = git("ls-files", "--others", "--exclude-standard").splitlines()
    return sorted({f for f in [*diff, *untracked] if f})


def _members(repo: Repo) -> dict[str, str]:
    """Member folder (``packages/xf-load``) -> distribution name."""
    out = {}
    for rel in repo.files():
        parts = rel.split("/")
        if len(parts) == 3 and parts[0] == "packages" and parts[2] == "pyproject.toml":
            try:
                out[f"packages/{parts[1]}"] = tomllib.loads(repo.read(rel))["project"]["name"]
            except (KeyError, tomllib.TOMLDecodeError):
                out[f"packages/{parts[1]}"] = parts[1]
    return out


def _member_of(rel: str, members: dict[str, str]) -> str | None:
    return next((name for folder, name in members.items() if rel.startswith(folder + "/")), None)


def _run_all_reason(changed: list[str]) -> str | None:
    for rel in changed:
        for rule, reason in RUN_ALL.items():
            if rel == rule or (rule.endswith("/") and rel.startswith(rule)):
                return f"{rel}: {reason}"
    return None


def select(repo: Repo, changed: list[str], *, base: str = "") -> Selection:
    members = _members(repo)
    tests_all = [f for f in repo.python_files() if is_test_file(f)]
    reason = _run_all_reason(changed)
    if reason is not None:
        return Selection(base, changed, True, reason, sorted(set(members.values())), tests_all)

    graph = import_graph(repo)
    python = set(graph.final)
    seeds: set[str] = set()
    conftest_dirs: set[str] = set()
    deleted_modules: set[str] = set()
    for rel in changed:
        name = rel.rsplit("/", 1)[-1]
        if rel.endswith(".py"):
            if rel in python:
                seeds.add(rel)
            else:
                dotted = module_name(rel, python | {rel})
                if dotted:
                    deleted_modules.add(dotted)
            continue
        if name in DOC_NAMES or rel.endswith(DOC_SUFFIXES):
            continue
        member = next((folder for folder in members if rel.startswith(folder + "/")), None)
        if member is not None:  # a member's pyproject or data file: all of its Python files
            seeds |= {f for f in python if f.startswith(member + "/")}
        else:  # data beside scripts: the tests of that top-level folder
            top = rel.split("/", 1)[0]
            seeds |= {f for f in tests_all if f.startswith(top + "/")}
    for rel, names in graph.raw.items():
        if names & deleted_modules:
            seeds.add(rel)
    affected = affected_files(graph, seeds)
    for rel in affected:
        if rel.rsplit("/", 1)[-1] == "conftest.py":
            conftest_dirs.add(rel.rsplit("/", 1)[0] if "/" in rel else "")
    tests = {t for t in tests_all if t in affected}
    tests |= {t for t in tests_all for d in conftest_dirs if not d or t.startswith(d + "/")}
    packages = {m for rel in [*changed, *tests] if (m := _member_of(rel, members)) is not None}
    return Selection(base, changed, False, None, sorted(packages), sorted(tests))


def main(root: Path, *, base: str, json_out: str | None) -> int:
    repo = Repo.open(root)
    selection = select(repo, changed_files(repo.root, base), base=base)
    repo.cache.save()
    for test in selection.tests:
        print(test)
    if json_out:
        Path(json_out).write_text(json.dumps(selection.as_dict(), indent=2) + "\n")
    return 0
