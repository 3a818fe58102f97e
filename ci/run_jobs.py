"""Run the CI jobs of ``ci/jobs.py`` here, one after another (what ``.ci/run`` calls after ``uv sync``).

    uv run python ci/run_jobs.py [--all | --base REV | --selection FILE] [--only NAME...] [--list]

The same jobs as the generated GitHub/CircleCI configs, run on this machine's workspace venv: only the jobs
for its Python version run here (the others are listed as left to CI). Prints a timing summary and exits 1
when any job failed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import jobs as model
from generate import add_selection_arguments, selection_from_args

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_selection_arguments(parser)
    parser.add_argument("--only", nargs="+", help="run only these jobs (names as --list prints them)")
    parser.add_argument("--list", action="store_true", help="print the jobs and run nothing")
    args = parser.parse_args(argv)
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    selected = model.jobs_for(selection_from_args(args))
    if args.only:
        unknown = set(args.only) - {job.name for job in selected}
        if unknown:
            parser.error(f"no such job in this selection: {', '.join(sorted(unknown))}")
        selected = [job for job in selected if job.name in args.only]
    here = [job for job in selected if job.python == python]
    elsewhere = [job.name for job in selected if job.python != python]
    if args.list:
        for job in selected:
            print(f"{job.name:40} {'here' if job in here else 'CI only'}  {' && '.join(job.commands)}")
        return 0
    if elsewhere:
        print(f"left to CI (Python {python} here): {', '.join(elsewhere)}")
    timings = []
    for job in here:
        print(f"\n=== {job.name} ===", flush=True)
        start = time.perf_counter()
        ok = all(subprocess.run(["bash", "-c", c], cwd=ROOT).returncode == 0 for c in job.commands)
        timings.append((job.name, ok, time.perf_counter() - start))
    print("\n| job | result | seconds |\n|---|---|---|")
    for name, ok, seconds in timings:
        print(f"| {name} | {'ok' if ok else 'FAILED'} | {seconds:.0f} |")
    failed = [name for name, ok, _ in timings if not ok]
    print(
        f"\n{len(timings) - len(failed)} jobs passed, {len(failed)} failed{': ' + ', '.join(failed) if failed else ''}"
    )
    passed, failures, skipped = _test_counts([name for name, _, _ in timings])
    # The last line, in the plain form CI reads: every test of every job together.
    print(f"tests: {passed} passed, {failures} failed, {skipped} skipped")
    return 1 if failed else 0


def _test_counts(job_names: list[str]) -> tuple[int, int, int]:
    """(passed, failed or errored, skipped) summed over the JUnit reports the jobs wrote in test-results/."""
    import xml.etree.ElementTree as ET

    passed = failures = skipped = 0
    for name in job_names:
        report = ROOT / "test-results" / f"{name}.xml"
        if not report.is_file():
            continue
        for suite in ET.parse(report).getroot().iter("testsuite"):
            total = int(suite.get("tests", 0))
            bad = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
            skip = int(suite.get("skipped", 0))
            passed += total - bad - skip
            failures += bad
            skipped += skip
    return passed, failures, skipped


if __name__ == "__main__":
    sys.exit(main())
