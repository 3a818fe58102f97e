"""Benchmark several commits side by side (the multi-commit orchestrator).

    uv run python benchmark/commits.py --commits main~5 main --benches import tokenize --rounds 3 \\
        --plot bench.png [--baseline main~5 --threshold 0.10] [--database-url postgresql://...]

Each commit is checked out into its own git worktree and synced (``uv sync --frozen --all-packages
--all-extras`` into the worktree's own ``.venv``; ``--no-sync`` runs the current interpreter with the commit's
``packages/*/src`` first on ``PYTHONPATH`` instead). Then, round after round, every selected bench
(``benchmark/<name>_bench.py`` of that commit, run with ``--bench-args``) runs at every commit, the commits
alternating so drift of the machine hits them alike. Every bench records through ``MetricsRecorder`` into one
results directory (CSV, and PostgreSQL with ``--database-url``), tagged with the commit.

The summary is a Markdown table: the median of every metric per commit and each commit's ratio to the first
(or to ``--baseline``); ``--plot`` also draws those ratios (PNG, matplotlib). A bench that exits non-zero is
recorded as failed and makes the run exit 1. With ``--baseline REV --threshold T`` a metric that got worse
than the baseline by more than ``T`` (times go up, ``*_per_s`` rates go down) fails the run too.
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # this file runs as a script or is loaded by path
from metrics import MetricsRecorder, read_results

ROOT = Path(__file__).resolve().parent.parent
BENCHES = ("import", "tokenize", "load", "generate", "pipeline", "quant", "train", "parallel", "repotools")


@dataclass(frozen=True)
class Checkout:
    sha: str
    tree: Path
    python: str
    env: dict[str, str]


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True).stdout.strip()


def checkout(repo: Path, commit: str, workdir: Path, *, sync: bool) -> Checkout:
    """A worktree of ``commit`` under ``workdir``, synced into its own venv unless ``sync`` is False."""
    sha = _git(repo, "rev-parse", "--short", commit)
    tree = workdir / sha
    if not tree.exists():
        _git(repo, "worktree", "add", "--detach", "-q", str(tree), sha)
    env = {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT"}}
    if sync:
        subprocess.run(
            ["uv", "sync", "--frozen", "--all-packages", "--all-extras", "-q"], cwd=tree, env=env, check=True
        )
        return Checkout(sha, tree, str(tree / ".venv" / "bin" / "python"), env)
    sources = [str(p) for p in sorted(tree.glob("packages/*/src"))]
    env["PYTHONPATH"] = os.pathsep.join([*sources, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return Checkout(sha, tree, sys.executable, env)


def run_bench(
    at: Checkout,
    bench: str,
    args: list[str],
    results: Path,
    database_url: str | None,
    round_index: int,
    benches_from: Path | None = None,
) -> bool:
    """Run one bench at one commit (the commit's own script, or the one in ``benches_from``, working on the
    commit's tree); a non-zero exit is recorded as a failed run (unless the bench's own recorder already did).
    Returns whether it passed."""
    script = (benches_from or at.tree / "benchmark") / f"{bench}_bench.py"
    env = {**at.env, "XF_BENCH_RESULTS": str(results), "XF_BENCH_COMMIT": at.sha}
    if database_url:
        env["XF_BENCH_DATABASE_URL"] = database_url
    before = {r["benchmark_id"] for r in read_results(results)["benchmarks"]}
    if script.exists():
        out = subprocess.run(
            [at.python, str(script), *args], cwd=at.tree, env=env, capture_output=True, text=True
        )
        code, stderr = out.returncode, out.stderr
    else:
        code, stderr = 2, f"{script.name} does not exist in {script.parent} (commit {at.sha})"
    if code == 0:
        return True
    new = [r for r in read_results(results)["benchmarks"] if r["benchmark_id"] not in before]
    if not any(r["status"] == "failed" for r in new):
        recorder = MetricsRecorder(
            bench, results_dir=results, database_url=database_url, commit=at.sha, sample_interval=None
        )
        recorder.finish("failed", f"exit {code}: {stderr.strip()[-2000:]}")
    print(f"FAILED {bench} at {at.sha} (round {round_index + 1}, exit {code}):\n{stderr.strip()[-2000:]}")
    return False


def medians_by_commit(results: Path) -> dict[tuple[str, str, str, str], dict[str, float]]:
    """(bench, labels, contender, metric) -> commit -> median value, over the runs that passed."""
    tables = read_results(results)
    runs = {r["benchmark_id"]: r for r in tables["benchmarks"]}
    values: dict[tuple[str, str, str, str], dict[str, list[float]]] = {}
    for m in tables["model_measurements"]:
        run = runs[m["benchmark_id"]]
        if run["status"] != "ok":
            continue
        labels = ",".join(f"{k}={v}" for k, v in sorted(m["labels"].items()))
        key = (run["name"], labels, m["contender"], m["metric"])
        values.setdefault(key, {}).setdefault(run["commit_id"], []).append(m["value"])
    return {key: {c: statistics.median(v) for c, v in by.items()} for key, by in values.items()}


def failures(results: Path) -> list[tuple[str, str, str]]:
    """(bench, commit, error) of every run that did not finish ok."""
    return [
        (r["name"], r["commit_id"], r["error"] or r["status"])
        for r in read_results(results)["benchmarks"]
        if r["status"] != "ok"
    ]


def table(
    medians: dict[tuple[str, str, str, str], dict[str, float]], commits: list[str], reference: str
) -> str:
    """Side-by-side medians per commit and each commit's ratio to ``reference``."""
    others = [c for c in commits if c != reference]
    head = ["bench", "labels", "contender", "metric", *commits, *(f"{c}/{reference}" for c in others)]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for (bench, labels, contender, metric), by in sorted(medians.items()):
        cells = [f"{by[c]:.4g}" if c in by else "–" for c in commits]
        ratios = [f"{by[c] / by[reference]:.3f}" if c in by and by.get(reference) else "–" for c in others]
        lines.append("| " + " | ".join([bench, labels, contender, metric, *cells, *ratios]) + " |")
    return "\n".join(lines)


def higher_is_better(metric: str) -> bool:
    return metric.endswith("_per_s") or "throughput" in metric


def regressions(
    medians: dict[tuple[str, str, str, str], dict[str, float]], baseline: str, threshold: float
) -> list[str]:
    """Each metric of each commit that is worse than ``baseline`` by more than ``threshold`` (0.1 = 10 %)."""
    found = []
    for (bench, labels, contender, metric), by in sorted(medians.items()):
        base = by.get(baseline)
        if not base:
            continue
        for commit, value in by.items():
            ratio = value / base
            worse = ratio < 1 - threshold if higher_is_better(metric) else ratio > 1 + threshold
            if commit != baseline and worse:
                found.append(
                    f"{bench} {contender} {metric} [{labels}] at {commit}: {ratio:.3f}x of {baseline}"
                )
    return found


def plot(
    medians: dict[tuple[str, str, str, str], dict[str, float]], commits: list[str], reference: str, path: Path
) -> None:
    """Ratio to ``reference`` of every metric, one line per (bench, contender, metric, labels)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(6, 1.5 * len(commits)), 4.5))
    for (bench, labels, contender, metric), by in sorted(medians.items()):
        if not by.get(reference):
            continue
        xs = [i for i, c in enumerate(commits) if c in by]
        label = f"{bench} {contender} {metric}" + (f" [{labels}]" if labels else "")
        ax.plot(xs, [by[commits[i]] / by[reference] for i in xs], marker="o", label=label)
    ax.axhline(1.0, color="grey", linewidth=0.8)
    ax.set_xticks(range(len(commits)), commits)
    ax.set_ylabel(f"median / median at {reference}")
    ax.set_title("benchmarks across commits")
    ax.legend(fontsize="x-small", loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--commits", nargs="+", required=True, help="commits to compare, oldest first")
    parser.add_argument(
        "--benches", nargs="+", default=["import"], help=f"bench names (known: {', '.join(BENCHES)})"
    )
    parser.add_argument("--rounds", type=int, default=1, help="runs of every bench at every commit")
    parser.add_argument("--bench-args", default="", help="arguments for every bench script, one string")
    parser.add_argument("--results", type=Path, help="results directory (default: a temporary one)")
    parser.add_argument("--database-url", default=os.environ.get("XF_BENCH_DATABASE_URL"))
    parser.add_argument("--plot", type=Path, help="write a PNG of the ratios here")
    parser.add_argument("--baseline", help="commit the ratios and the regression gate compare with")
    parser.add_argument(
        "--threshold", type=float, help="fail when a metric is this much worse than --baseline"
    )
    parser.add_argument("--repo", type=Path, default=ROOT, help="git repository (default: this one)")
    parser.add_argument(
        "--benches-from",
        type=Path,
        help="run the bench scripts of this folder (e.g. benchmark) at every commit, instead of each commit's "
        "own: for commits whose scripts predate the recorder or take other arguments",
    )
    parser.add_argument(
        "--no-sync", dest="sync", action="store_false", help="use this venv, not a synced one"
    )
    args = parser.parse_args(argv)
    if args.threshold is not None and not args.baseline:
        parser.error("--threshold needs --baseline")
    commits = list(args.commits)
    if args.baseline and args.baseline not in commits:
        commits.insert(0, args.baseline)
    bench_args = shlex.split(args.bench_args)
    repo = args.repo.resolve()
    benches_from = args.benches_from.resolve() if args.benches_from else None
    with tempfile.TemporaryDirectory(prefix="xf-bench-") as tmp:
        results = args.results or Path(tmp) / "results"
        results.mkdir(parents=True, exist_ok=True)
        trees = []
        try:
            for commit in commits:
                trees.append(checkout(repo, commit, Path(tmp), sync=args.sync))
            start = time.perf_counter()
            for round_index in range(args.rounds):
                rotation = round_index % len(trees)
                for bench in args.benches:
                    for at in trees[rotation:] + trees[:rotation]:  # alternate which commit goes first
                        run_bench(
                            at, bench, bench_args, results, args.database_url, round_index, benches_from
                        )
            print(
                f"{args.rounds} round(s) of {len(args.benches)} bench(es) at {len(trees)} commit(s) "
                f"in {time.perf_counter() - start:.1f} s; results in {results}\n"
            )
        finally:
            for at in trees:
                subprocess.run(["git", "worktree", "remove", "--force", str(at.tree)], cwd=repo, check=False)
        shas = [at.sha for at in trees]
        reference = shas[commits.index(args.baseline)] if args.baseline else shas[0]
        medians = medians_by_commit(results)
        print(table(medians, shas, reference))
        if args.plot:
            plot(medians, shas, reference, args.plot)
            print(f"\nplot: {args.plot}")
        failed = failures(results)
        for bench, commit, error in failed:
            print(f"\nfailed: {bench} at {commit}: {error.splitlines()[-1] if error else ''}")
        worse = regressions(medians, reference, args.threshold) if args.threshold is not None else []
        for line in worse:
            print(f"\nregression past {args.threshold:.0%}: {line}")
    return 1 if failed or worse else 0


if __name__ == "__main__":
    sys.exit(main())
