"""Plan CI jobs from what changed: each changed package, plus every package that depends on it.

    uv run python ci/plan.py --since main          # print the jobs as JSON
    uv run python ci/plan.py --since main --run    # run them one after another

The package graph comes from the members' pyproject files (``xf-*`` dependencies), so a change to xf-core
tests everything above it, while a change to xf-quant tests xf-quant alone. Files outside ``packages/`` that
every job depends on (root pyproject.toml, uv.lock, ci/, .ci/) select everything. ``ci/test.sh`` (what CI runs)
always runs every job; this is for quick local runs and for splitting CI.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tomllib
from dataclasses import asdict, dataclass
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
EVERYTHING = ("pyproject.toml", "uv.lock", "ci/", ".ci/")


@dataclass(frozen=True)
class Job:
    name: str
    paths: tuple[str, ...]

    @property
    def command(self) -> list[str]:
        return ["uv", "run", "pytest", "-q", "-p", "no:cacheprovider", *self.paths]


def package_graph(root: Path) -> dict[str, set[str]]:
    """Member name -> the xf members it depends on directly."""
    graph = {}
    for pyproject in sorted(root.glob("packages/*/pyproject.toml")):
        project = tomllib.loads(pyproject.read_text())["project"]
        deps = {Requirement(r).name for r in project.get("dependencies", [])}
        graph[project["name"]] = {d for d in deps if d.startswith("xf-")}
    return graph


def dependents(graph: dict[str, set[str]], changed: set[str]) -> set[str]:
    """``changed`` plus every member that depends on one of them, directly or not."""
    affected = set(changed)
    grew = True
    while grew:
        grew = False
        for name, deps in graph.items():
            if name not in affected and deps & affected:
                affected.add(name)
                grew = True
    return affected


def plan(changed_files: list[str], root: Path = ROOT) -> list[Job]:
    graph = package_graph(root)
    if any(f == e or (e.endswith("/") and f.startswith(e)) for f in changed_files for e in EVERYTHING):
        packages, integration, bench = set(graph), True, True
    else:
        touched = {f.split("/")[1] for f in changed_files if f.startswith("packages/") and f.count("/") >= 2}
        packages = dependents(graph, touched & set(graph))
        integration = bool(packages) or any(f.startswith("tests-integration/") for f in changed_files)
        bench = any(f.startswith("benchmark/") for f in changed_files)
    jobs = [Job(name, (f"packages/{name}",)) for name in sorted(packages)]
    if integration:
        jobs.append(Job("integration", ("tests-integration",)))
    if bench:
        jobs.append(Job("benchmark", ("benchmark",)))
    return jobs


def changed_since(ref: str, root: Path = ROOT) -> list[str]:
    committed = subprocess.run(
        ["git", "diff", "--name-only", f"{ref}...HEAD"], cwd=root, capture_output=True, text=True, check=True
    ).stdout.split()
    local = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    return sorted(set(committed) | {line[3:].split(" -> ")[-1] for line in local})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--since", help="git ref to diff against (committed and uncommitted changes)")
    source.add_argument("--files", nargs="*", help="the changed files, relative to the repo root")
    parser.add_argument("--run", action="store_true", help="run the jobs instead of printing them")
    args = parser.parse_args(argv)
    files = args.files if args.files is not None else changed_since(args.since)
    jobs = plan(files)
    if not args.run:
        print(json.dumps([{**asdict(job), "command": job.command} for job in jobs], indent=2))
        return 0
    failed = [job.name for job in jobs if subprocess.run(job.command, cwd=ROOT).returncode != 0]
    print(
        f"{len(jobs) - len(failed)} jobs passed, {len(failed)} failed{': ' + ', '.join(failed) if failed else ''}"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
