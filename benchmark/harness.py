"""Shared machinery of the benchmarks: fresh processes, alternating rounds, medians, ratios, and (re-exported
from ``metrics.py``) the ``MetricsRecorder`` every benchmark records through and ``benchmark/commits.py`` reads
back.

Every benchmark compares contenders (xf, transformers, a hand-written floor, ...) side by side in one run:
each measurement happens in a fresh spawned interpreter, the contenders alternate round by round (so drift of
the machine hits all of them alike), and the medians are compared as ratios against a baseline.
"""

from __future__ import annotations

import multiprocessing
import os
import resource
import statistics
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # so `metrics` imports however this file was loaded
from metrics import MetricsRecorder, read_results

__all__ = [
    "MetricsRecorder",
    "alternate",
    "fresh_process",
    "git_commit",
    "medians",
    "peak_rss_bytes",
    "ratio_table",
    "read_results",
    "sample_texts",
]

Metrics = dict[str, float]

# Short English words, the default vocabulary of sample_texts (the text benches share it).
WORDS = [
    "the",
    "a",
    "of",
    "and",
    "to",
    "in",
    "is",
    "was",
    "for",
    "on",
    "that",
    "with",
    "as",
    "by",
    "at",
    "from",
    "model",
    "language",
    "fast",
    "pipeline",
    "sentence",
    "embedding",
    "search",
    "query",
    "document",
    "cat",
    "dog",
    "market",
    "city",
    "river",
    "music",
    "science",
    "history",
]


def sample_texts(n: int, *, max_words: int, words: Sequence[str] = WORDS, seed: int = 0) -> list[str]:
    """``n`` texts of 4 to ``max_words`` words drawn from ``words``; the same every run for a given seed."""
    import random

    rng = random.Random(seed)
    return [" ".join(rng.choice(words) for _ in range(rng.randint(4, max_words))) for _ in range(n)]


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
