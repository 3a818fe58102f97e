"""Shared machinery of the benchmarks: fresh processes, alternating rounds, medians, ratios, and a metrics
recorder that the multi-commit runner (``benchmark/commits.py``) reads back.

Every benchmark compares contenders (xf, transformers, a hand-written floor, ...) side by side in one run:
each measurement happens in a fresh spawned interpreter, the contenders alternate round by round (so drift of
the machine hits all of them alike), and the medians are compared as ratios against a baseline.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

__all__ = [
    "MetricsRecorder",
    "alternate",
    "fresh_process",
    "git_commit",
    "medians",
    "peak_rss_bytes",
    "ratio_table",
]

Metrics = dict[str, float]


def fresh_process(fn: Callable[..., Any], *args: Any) -> Any:
    """Run ``fn(*args)`` in a new spawned interpreter and return its (picklable) result."""
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def alternate(
    contenders: Sequence[str], rounds: int, measure: Callable[[str], Metrics], *, fresh: bool = True
) -> dict[str, list[Metrics]]:
    """Measure every contender ``rounds`` times, rotating the order each round; ``measure(name)`` runs in a
    fresh process unless ``fresh=False``."""
    results: dict[str, list[Metrics]] = {name: [] for name in contenders}
    for r in range(rounds):
        order = list(contenders[r % len(contenders) :]) + list(contenders[: r % len(contenders)])
        for name in order:
            results[name].append(fresh_process(measure, name) if fresh else measure(name))
    return results


def medians(results: Mapping[str, Sequence[Metrics]]) -> dict[str, Metrics]:
    """Per contender, the median of each metric over its rounds."""
    return {
        name: {metric: statistics.median(run[metric] for run in runs) for metric in runs[0]}
        for name, runs in results.items()
        if runs
    }


def ratio_table(
    summary: Mapping[str, Metrics], *, baseline: str, metrics: Sequence[str], contender: str = "xf"
) -> str:
    """A Markdown table of the medians with ``contender / baseline`` ratios per metric."""
    names = list(summary)
    lines = [
        "| metric | " + " | ".join(names) + f" | {contender}/{baseline} |",
        "|---" * (len(names) + 2) + "|",
    ]
    for metric in metrics:
        cells = [f"{summary[n][metric]:.4g}" for n in names]
        ratio = (
            summary[contender][metric] / summary[baseline][metric]
            if summary[baseline][metric]
            else float("nan")
        )
        lines.append(f"| {metric} | " + " | ".join(cells) + f" | {ratio:.3f} |")
    return "\n".join(lines)


def peak_rss_bytes() -> int:
    """Peak resident memory of this process so far (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def git_commit(cwd: str | os.PathLike[str] | None = None) -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


class MetricsRecorder:
    """Collects one row per measurement and appends them as JSON lines.

    The file is ``path``, else ``$XF_BENCH_RESULTS`` (set by ``benchmark/commits.py``), else nothing is written
    and the rows only feed :meth:`summary`. Each row carries the benchmark name, the commit
    (``$XF_BENCH_COMMIT`` or ``git rev-parse``), the contender, free-form labels and the metrics.
    """

    def __init__(self, benchmark: str, *, path: str | os.PathLike[str] | None = None) -> None:
        self.benchmark = benchmark
        target = path or os.environ.get("XF_BENCH_RESULTS")
        self.path = Path(target) if target else None
        self.commit = os.environ.get("XF_BENCH_COMMIT") or git_commit(Path(__file__).parent)
        self.rows: list[dict[str, Any]] = []

    def record(self, contender: str, metrics: Mapping[str, float], **labels: Any) -> None:
        row = {
            "benchmark": self.benchmark,
            "commit": self.commit,
            "contender": contender,
            "labels": labels,
            "metrics": dict(metrics),
            "time": time.time(),
            "machine": platform.node(),
        }
        self.rows.append(row)
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a") as f:
                f.write(json.dumps(row) + "\n")

    def record_all(self, results: Mapping[str, Sequence[Metrics]], **labels: Any) -> None:
        for contender, runs in results.items():
            for run in runs:
                self.record(contender, run, **labels)

    def summary(self, **labels: Any) -> dict[str, Metrics]:
        """Medians per contender over the rows whose labels include ``labels``."""
        grouped: dict[str, list[Metrics]] = {}
        for row in self.rows:
            if all(row["labels"].get(k) == v for k, v in labels.items()):
                grouped.setdefault(row["contender"], []).append(row["metrics"])
        return medians(grouped)


def read_rows(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The rows a :class:`MetricsRecorder` appended to ``path``."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
