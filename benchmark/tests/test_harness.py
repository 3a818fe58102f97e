"""The benchmark harness: alternation, medians, ratios, the recorder, and the multi-commit runner."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1]


def _load(name):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


harness = _load("harness")


def test_alternate_rotates_the_order_each_round():
    calls = []
    results = harness.alternate(
        ["a", "b", "c"], 3, lambda who: calls.append(who) or {"x": len(calls)}, fresh=False
    )
    assert calls == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]
    assert [r["x"] for r in results["a"]] == [1, 6, 8]


def test_fresh_process_runs_in_another_interpreter():
    assert harness.fresh_process(os.getpid) != os.getpid()


def test_medians_and_ratio_table():
    summary = harness.medians({"xf": [{"t": 1.0}, {"t": 3.0}, {"t": 2.0}], "hf": [{"t": 4.0}, {"t": 4.0}]})
    assert summary == {"xf": {"t": 2.0}, "hf": {"t": 4.0}}
    table = harness.ratio_table(summary, baseline="hf", metrics=["t"])
    assert table.splitlines()[-1] == "| t | 2 | 4 | 0.500 |"


def test_recorder_appends_json_lines_and_summarizes(tmp_path, monkeypatch):
    monkeypatch.setenv("XF_BENCH_RESULTS", str(tmp_path / "r.jsonl"))
    monkeypatch.setenv("XF_BENCH_COMMIT", "abc123")
    recorder = harness.MetricsRecorder("demo")
    recorder.record_all({"xf": [{"s": 1.0}, {"s": 3.0}], "hf": [{"s": 5.0}]}, batch=8)
    recorder.record("xf", {"s": 100.0}, batch=1)
    rows = harness.read_rows(tmp_path / "r.jsonl")
    assert len(rows) == 4 and {r["commit"] for r in rows} == {"abc123"}
    assert rows[0]["benchmark"] == "demo" and rows[0]["labels"] == {"batch": 8}
    assert recorder.summary(batch=8) == {"xf": {"s": 2.0}, "hf": {"s": 5.0}}
    assert json.loads((tmp_path / "r.jsonl").read_text().splitlines()[-1])["metrics"] == {"s": 100.0}


def test_commits_summary_compares_medians_per_commit():
    commits = _load("commits")
    rows = [
        {"benchmark": "b", "labels": {"n": 1}, "contender": "xf", "metrics": {"t": v}, "commit": c}
        for c, v in [("old", 2.0), ("old", 4.0), ("new", 1.5)]
    ]
    table = commits.summarize(rows, ["old", "new"])
    assert table.splitlines()[-1] == "| b | n=1 | xf | t | 3 | 1.5 | 0.500 |"


@pytest.mark.skipif(not (BENCH.parent / ".git").exists(), reason="needs the git checkout")
def test_commits_runs_a_committed_benchmark_at_head(tmp_path):
    results = tmp_path / "rows.jsonl"
    out = subprocess.run(
        [
            sys.executable,
            str(BENCH / "commits.py"),
            "--commits",
            "HEAD",
            "--results",
            str(results),
            "--",
            "benchmark/harness_selftest.py",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=BENCH.parent,
    )
    rows = harness.read_rows(results)
    assert rows and all(r["benchmark"] == "selftest" for r in rows)
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=BENCH.parent
    )
    assert rows[0]["commit"] == head.stdout.strip()
    assert "| selftest |" in out.stdout
