"""Run one benchmark script at several commits and compare them (the multi-commit benchmark runner).

    uv run python benchmark/commits.py --commits main~5 main -- benchmark/load_bench.py --rounds 3

Each commit is checked out into a temporary git worktree; the script *of that commit* runs with that
commit's package sources first on ``PYTHONPATH`` (the workspace venv supplies the third-party packages), and
records its rows through ``harness.MetricsRecorder`` into one JSON-lines file. The summary prints the median of
every metric per commit and contender, and each commit's ratio to the first one.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from harness import read_rows  # benchmark/ is on sys.path: this file runs as a script

ROOT = Path(__file__).resolve().parent.parent


def run_at_commit(commit: str, script_and_args: list[str], results: Path, workdir: Path) -> str:
    sha = subprocess.run(
        ["git", "rev-parse", "--short", commit], cwd=ROOT, capture_output=True, text=True, check=True
    )
    sha = sha.stdout.strip()
    tree = workdir / sha
    subprocess.run(["git", "worktree", "add", "--detach", "-q", str(tree), sha], cwd=ROOT, check=True)
    try:
        sources = [str(p) for p in sorted(tree.glob("packages/*/src"))]
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([*sources, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
            "XF_BENCH_RESULTS": str(results),
            "XF_BENCH_COMMIT": sha,
        }
        script, *args = script_and_args
        subprocess.run([sys.executable, str(tree / script), *args], cwd=tree, env=env, check=True)
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, check=False)
    return sha


def summarize(rows: list[dict], commits: list[str]) -> str:
    table: dict[tuple[str, str, str, str], dict[str, list[float]]] = {}
    for row in rows:
        labels = ",".join(f"{k}={v}" for k, v in sorted(row["labels"].items()))
        for metric, value in row["metrics"].items():
            key = (row["benchmark"], labels, row["contender"], metric)
            table.setdefault(key, {}).setdefault(row["commit"], []).append(value)
    lines = ["| benchmark | labels | contender | metric | " + " | ".join(commits) + " | last/first |"]
    lines.append("|---" * (5 + len(commits)) + "|")
    for (bench, labels, contender, metric), by_commit in sorted(table.items()):
        values = [statistics.median(by_commit[c]) if c in by_commit else float("nan") for c in commits]
        ratio = values[-1] / values[0] if values[0] else float("nan")
        cells = " | ".join(f"{v:.4g}" for v in values)
        lines.append(f"| {bench} | {labels} | {contender} | {metric} | {cells} | {ratio:.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--commits", nargs="+", required=True, help="commits to compare, oldest first")
    parser.add_argument("--results", type=Path, help="JSON-lines file to write (default: a temporary one)")
    parser.add_argument(
        "script", nargs=argparse.REMAINDER, help="-- SCRIPT [ARGS...], relative to the repo root"
    )
    args = parser.parse_args(argv)
    script = [a for a in args.script if a != "--"]
    if not script:
        parser.error("give the benchmark script after --")
    with tempfile.TemporaryDirectory(prefix="xf-bench-") as tmp:
        results = args.results or Path(tmp) / "results.jsonl"
        shas = [run_at_commit(c, script, results, Path(tmp)) for c in args.commits]
        print(summarize(read_rows(results), shas))
    return 0


if __name__ == "__main__":
    sys.exit(main())
