"""Run one CI test job: pick this shard's test files by recorded durations, run pytest, apply the flaky policy.

    uv run python ci/pytest_job.py --report test-results/x.xml [--shard 2/3] [--no-skips] -- PATH... [PYTEST ARGS]

- **Shards**: the test files under the given paths are dealt into N shards by their recorded durations
  (``ci/durations.json``, seconds per file; an unrecorded file counts as the median), longest first onto the
  lightest shard, so every shard takes about as long. Shard ``i`` runs its files only.
- **Flaky policy**: when at most :data:`MAX_RERUNS` tests fail, they are rerun once, alone; a test that then
  passes is reported as flaky (``FLAKY:`` lines and ``<report>.flaky.json``) and does not fail the job. More
  failures than that are a real breakage: no rerun.
- ``--no-skips``: a skipped test fails the job (the install matrix: a cell that cannot run is a failure).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAX_RERUNS = 3
PYTEST = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]


def test_files(paths: list[str], root: Path = ROOT) -> list[str]:
    """The ``test_*.py`` files under ``paths`` (files and node ids are kept as given), repo-relative."""
    found = []
    for p in paths:
        path = root / p.split("::")[0]
        if path.is_dir():
            found += sorted(
                str(f.relative_to(root)) for f in path.rglob("test_*.py") if ".venv" not in f.parts
            )
        else:
            found.append(p)
    return found


def split(files: list[str], durations: dict[str, float], shards: int) -> list[list[str]]:
    """Deal ``files`` into ``shards`` groups of about equal recorded duration (longest first, lightest shard)."""
    known = [durations[f] for f in files if f in durations]
    default = statistics.median(known) if known else 1.0
    groups: list[list[str]] = [[] for _ in range(shards)]
    loads = [0.0] * shards
    for f in sorted(files, key=lambda f: (-durations.get(f, default), f)):
        i = loads.index(min(loads))
        groups[i].append(f)
        loads[i] += durations.get(f, default)
    return [sorted(g) for g in groups]


def outcomes(report: Path) -> dict[str, str]:
    """Node id (``path::[Class::]name``) -> passed / failed / skipped, from a JUnit XML report (xunit1)."""
    result = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        file = case.get("file", "")
        module = file.removesuffix(".py").replace("/", ".")
        inner = case.get("classname", "").removeprefix(module).strip(".")
        node = "::".join(p for p in [file, *inner.split("."), case.get("name", "")] if p)
        if case.find("failure") is not None or case.find("error") is not None:
            result[node] = "failed"
        elif case.find("skipped") is not None:
            result[node] = "skipped"
        else:
            result[node] = "passed"
    return result


def run(paths: list[str], extra: list[str], report: Path, root: Path = ROOT) -> int:
    report.parent.mkdir(parents=True, exist_ok=True)
    command = [*PYTEST, f"--junitxml={report}", "-o", "junit_family=xunit1", *paths, *extra]
    print("+ " + " ".join(command[1:]), flush=True)
    return subprocess.run(command, cwd=root).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--report", type=Path, required=True, help="JUnit XML report to write")
    parser.add_argument("--shard", default="1/1", help="I/N: run the I-th of N shards")
    parser.add_argument("--no-skips", action="store_true", help="a skipped test fails the job")
    parser.add_argument("--durations", type=Path, default=ROOT / "ci" / "durations.json")
    parser.add_argument("--root", type=Path, default=ROOT, help="where pytest runs (default: the repo root)")
    parser.add_argument("paths", nargs="+", help="-- PATH... then pytest options (anything starting with -)")
    args = parser.parse_args(argv)
    paths = [p for p in args.paths if not p.startswith("-")]
    extra = [p for p in args.paths if p.startswith("-")]
    index, count = (int(x) for x in args.shard.split("/"))
    if count > 1:
        durations = json.loads(args.durations.read_text()) if args.durations.exists() else {}
        paths = split(test_files(paths, args.root), durations, count)[index - 1]
        print(f"shard {index}/{count}: {len(paths)} test files", flush=True)
        if not paths:
            return 0
    report = args.report if args.report.is_absolute() else args.root / args.report
    code = run(paths, extra, report, args.root)
    if code not in (0, 1):  # 2+: interrupted, usage or collection errors, nothing collected: never rerun
        return code
    failed = [n for n, o in outcomes(report).items() if o == "failed"] if report.exists() else []
    if code == 1 and 0 < len(failed) <= MAX_RERUNS:
        print(f"flaky policy: rerunning {len(failed)} failed test(s) once", flush=True)
        rerun_report = report.with_suffix(".rerun.xml")
        code = run(failed, extra, rerun_report, args.root)
        if code == 0:
            for node in failed:
                print(f"FLAKY: {node} failed, then passed on its rerun")
            report.with_suffix(".flaky.json").write_text(json.dumps(failed, indent=2) + "\n")
    elif code == 1:
        print(f"{len(failed)} tests failed: more than {MAX_RERUNS}, so not rerun (not flakiness)")
    if code == 0 and args.no_skips:
        skipped = [n for n, o in outcomes(report).items() if o == "skipped"]
        if skipped:
            print(f"--no-skips: {len(skipped)} skipped test(s) fail this job: {', '.join(skipped)}")
            return 1
    return code


if __name__ == "__main__":
    os.environ.setdefault("XF_DISABLE_PROGRESS", "1")
    sys.exit(main())
