"""xf-repotools: the full check on this repository and on a synthetic 500-module repository, cold and cached;
and the tests-fetcher's precision/recall on this repository's history.

    uv run python benchmark/repotools_bench.py                 # timings (goal: copies on 500 modules < 5 s
                                                               #          cold, < 0.5 s cached)
    uv run python benchmark/repotools_bench.py --fetcher 60    # precision/recall over the last 60 commits

Timings are medians of ``--rounds`` runs, each in a fresh process (``harness.fresh_process``); "cold" uses an
empty cache, "cached" a cache filled by one earlier run on unchanged files.

Precision/recall: the reference is what running the tests loads. Each test file is collected by pytest in a
forked child of a process that imported only third-party packages (``--collect-only``: module-level imports, conftests, lazy exports touched at import) and the
repository files in ``sys.modules`` afterwards are its dependencies. For each commit, the test files whose
dependencies (or themselves) include a changed Python file are the ones that could change outcome; the
fetcher's selection for the same changed files (graph at HEAD) is compared with them. Commits that trigger a
run-all rule are counted apart.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from harness import fresh_process

ROOT = Path(__file__).resolve().parents[1]


def synthetic_repo(root: Path, modules: int = 500) -> Path:
    """``modules`` modules in one package: a base module and copies of its functions (half of them)."""
    pkg = root / "pkg"
    pkg.mkdir(parents=True, exist_ok=True)
    (pkg / "__init__.py").write_text("")
    funcs = "".join(
        f"def compute_{i}(x, scale=1.0):\n    # Base scales value {i}\n    y = x * scale + {i}\n"
        f"    return [v for v in range(int(y))]\n\n\n"
        for i in range(20)
    )
    (pkg / "base.py").write_text(funcs)
    for m in range(modules - 2):
        i = m % 20
        body = f"import math\n\n\nCONST_{m} = {m}\n\n\n"
        if m % 2 == 0:
            body += (
                f"# Copied from pkg.base.compute_{i} with Base->Mod{m}\n"
                f"def compute_{i}(x, scale=1.0):\n    # Mod{m} scales value {i}\n    y = x * scale + {i}\n"
                f"    return [v for v in range(int(y))]\n\n\n"
            )
        body += f"class Thing{m}:\n    def run(self):\n        return math.sqrt(CONST_{m})\n"
        (pkg / f"mod_{m}.py").write_text(body)
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    return root


def _timed_check(root: str, names: list[str] | None, cache: str) -> float:
    import io

    os.environ["XF_REPOTOOLS_CACHE"] = cache
    from xf_repotools.check import run_checks

    start = time.perf_counter()
    run_checks(Path(root), names, keep_going=True, stream=io.StringIO())
    return time.perf_counter() - start


def _cold_and_cached(root: Path, names: list[str] | None, rounds: int) -> tuple[float, float]:
    cold, cached = [], []
    for _ in range(rounds):
        cache = tempfile.mkdtemp(prefix="xf-repotools-bench-")
        cold.append(fresh_process(_timed_check, str(root), names, cache))
        cached.append(fresh_process(_timed_check, str(root), names, cache))
        shutil.rmtree(cache, ignore_errors=True)
    return statistics.median(cold), statistics.median(cached)


def timings(rounds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        synth = synthetic_repo(Path(tmp))
        rows = [
            ("copies, synthetic 500 modules", synth, ["copies"]),
            ("full check, synthetic 500 modules", synth, None),
            ("copies, this repository", ROOT, ["copies"]),
            ("full check, this repository", ROOT, None),
        ]
        print(f"{'what':38} {'cold s':>8} {'cached s':>9}")
        for label, root, names in rows:
            cold, cached = _cold_and_cached(root, names, rounds)
            print(f"{label:38} {cold:8.3f} {cached:9.3f}")


class _Outcomes:
    """pytest plugin: counts test outcomes (passed/failed/skipped/error) in a child."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def pytest_runtest_logreport(self, report: Any) -> None:
        if report.when == "call" or report.outcome != "passed":
            key = "error" if report.when != "call" and report.outcome == "failed" else report.outcome
            self.counts[key] = self.counts.get(key, 0) + 1


def _child(pytest: Any, test: str, result: Path, *, run: bool, timeout: int) -> None:
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.chdir(ROOT)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    before = set(sys.modules)
    outcomes = _Outcomes()

    def dump(*_args: object) -> None:
        files = set()
        for name, module in list(sys.modules.items()):
            path = os.path.abspath(getattr(module, "__file__", None) or "/")
            if name not in before and path.startswith(f"{ROOT}/") and "/.venv/" not in path:
                files.add(os.path.relpath(path, ROOT))
        result.write_text(json.dumps({"files": sorted(files), "outcomes": outcomes.counts}))
        os._exit(0)

    signal.signal(signal.SIGALRM, dump)
    signal.alarm(timeout)
    mode = [] if run else ["--collect-only"]
    pytest.main(["-q", *mode, "-p", "no:cacheprovider", test], plugins=[outcomes])
    dump()


def _truth(
    tests: list[str], *, run: bool = False, timeout: int = 300, store: Path | None = None
) -> dict[str, list[str]]:
    """Per test file, the repository files loaded by collecting it. Third-party packages (pytest, torch,
    transformers, ...) are imported once in this process; each test file is collected in a forked child, and
    the repository modules new in its ``sys.modules`` afterwards are that file's dependencies. ``run`` runs
    the tests instead of only collecting them (imports inside test functions count too), each file stopped
    after ``timeout`` seconds with what it loaded so far; outcome counts go under the key ``"#outcomes"``."""
    import importlib

    import pytest

    for heavy in ("numpy", "torch", "safetensors", "tokenizers", "transformers", "jinja2", "huggingface_hub"):
        with contextlib.suppress(ImportError):
            importlib.import_module(heavy)
    loaded = [getattr(m, "__file__", None) or "" for m in list(sys.modules.values())]
    assert not any(f.startswith(f"{ROOT}/packages/") for f in loaded), "xf was imported before the forks"
    out: dict[str, list[str]] = json.loads(store.read_text()) if store is not None and store.exists() else {}
    totals: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i, test in enumerate(tests):
            if test in out:  # resumed
                continue
            result = Path(tmp) / f"{i}.json"
            pid = os.fork()
            if pid == 0:  # child: collect (or run), then list the repository files that loaded
                try:
                    _child(pytest, test, result, run=run, timeout=timeout)
                finally:
                    os._exit(0)
            os.waitpid(pid, 0)
            data = json.loads(result.read_text()) if result.exists() else {"files": [], "outcomes": {}}
            out[test] = data["files"]
            for key, n in data["outcomes"].items():
                totals[key] = totals.get(key, 0) + n
            out[f"#outcomes:{test}"] = [f"{k}={v}" for k, v in data["outcomes"].items()]
            if store is not None:
                store.write_text(json.dumps(out, indent=1))
            print(
                f"  {i + 1}/{len(tests)} {test}: {len(out[test])} files {data['outcomes']}", file=sys.stderr
            )
    return out


def fetcher_precision_recall(
    commits: int,
    truth_file: Path | None,
    *,
    run: bool,
    shard: str | None = None,
    fallback: Path | None = None,
    restrict: bool = False,
) -> None:
    listed = subprocess.run(["git", "ls-files", "*.py"], cwd=ROOT, capture_output=True, text=True, check=True)
    tests = [f for f in listed.stdout.split() if f.rsplit("/", 1)[-1].startswith("test_")]
    if shard is not None:  # "K/N": this process takes every N-th test file from the K-th
        k, n = map(int, shard.split("/"))
        tests = tests[k::n]
    # resumes from truth_file; computed before xf is imported here: each fork must load it itself
    if (restrict or fallback is not None) and truth_file is not None:
        truth = json.loads(truth_file.read_text())  # evaluate what is stored; compute nothing
    else:
        truth = _truth(tests, run=run, store=truth_file)
    if shard is not None:
        return
    if restrict:  # evaluate on the test files the reference has reached only
        tests = [t for t in tests if t in truth]
    elif fallback is not None:  # test files the reference has not reached yet: their collect-only reference
        extra = json.loads(fallback.read_text())
        missing = [t for t in extra if not t.startswith("#") and t not in truth]
        truth.update({t: extra[t] for t in missing})
        print(f"{len(missing)} test files use the --fallback reference")
    from xf_repotools._core import Repo
    from xf_repotools.tests_fetcher import select

    repo = Repo.open(ROOT, use_cache=False)
    revs = subprocess.run(
        ["git", "rev-list", "--first-parent", f"--max-count={commits}", "HEAD"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    python = set(repo.python_files())
    tp = fp = fn = 0
    run_all = skipped = 0
    for rev in revs:
        changed = subprocess.run(
            ["git", "diff-tree", "--no-commit-id", "--name-only", "-r", "--no-renames", f"{rev}^", rev],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.split()
        selection = select(repo, changed)
        if selection.run_all:
            run_all += 1
            continue
        delta = {f for f in changed if f in python}
        if not delta:
            skipped += 1
            continue
        true = {t for t in tests if t in delta or delta & set(truth.get(t, []))}
        chosen = set(selection.tests) & set(tests)  # the evaluated test files only
        tp += len(true & chosen)
        fp += len(chosen - true)
        fn += len(true - chosen)
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    evaluated = len(revs) - run_all - skipped
    print(f"commits: {len(revs)} (evaluated {evaluated}, run-all {run_all}, no Python change {skipped})")
    print(f"selected test files: {tp + fp}, reference: {tp + fn}, both: {tp}")
    print(f"precision {precision:.3f}  recall {recall:.3f}")
    totals: dict[str, int] = {}
    for key, values in truth.items():
        if key.startswith("#outcomes:"):
            for item in values:
                name, n = item.split("=")
                totals[name] = totals.get(name, 0) + int(n)
    if totals:
        print("reference run outcomes:", totals)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--fetcher", type=int, metavar="COMMITS", help="measure tests-fetcher precision/recall"
    )
    parser.add_argument("--truth", type=Path, help="reuse/store the per-test dependency reference (JSON)")
    parser.add_argument(
        "--reference", choices=["collect", "run"], default="collect", help="collect the tests, or run them"
    )
    parser.add_argument(
        "--shard", help="K/N: only compute (and store) the reference for every N-th test file"
    )
    parser.add_argument("--fallback", type=Path, help="reference for the test files --truth lacks")
    parser.add_argument("--restrict", action="store_true", help="evaluate only the test files --truth holds")
    args = parser.parse_args()
    if args.fetcher:
        fetcher_precision_recall(
            args.fetcher,
            args.truth,
            run=args.reference == "run",
            shard=args.shard,
            fallback=args.fallback,
            restrict=args.restrict,
        )
    else:
        timings(args.rounds)


if __name__ == "__main__":
    main()
