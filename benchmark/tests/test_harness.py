"""The benchmark harness: alternation, medians, ratios, the recorder, and the multi-commit runner."""

import importlib.util
import os
import sys
from pathlib import Path

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


def test_harness_reexports_the_one_recorder():
    import inspect

    assert Path(inspect.getfile(harness.MetricsRecorder)) == BENCH / "metrics.py"
