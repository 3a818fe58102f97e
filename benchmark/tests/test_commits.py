"""The multi-commit orchestrator end to end, on a small fixture repository of two commits: worktrees, uv sync,
alternating runs recorded through the MetricsRecorder, the Markdown table, the PNG plot, a failing bench and
the regression gate."""

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1]
UV = shutil.which("uv")

SPEED_BENCH = """
import json, sys
from pathlib import Path
from metrics import MetricsRecorder

work = float(Path(__file__).with_name("speed.txt").read_text())
with MetricsRecorder("speed", sample_interval=None) as recorder:
    recorder.record("xf", {"work_s": work, "tokens_per_s": 100.0 / work}, size="small")
    print(sys.executable)
"""

BROKEN_BENCH = """
from pathlib import Path
from metrics import MetricsRecorder

with MetricsRecorder("broken", sample_interval=None) as recorder:
    recorder.record("xf", {"load_s": 1.0})
    if Path(__file__).with_name("broken.txt").read_text().strip() == "yes":
        raise RuntimeError("the bench broke at this commit")
"""


def _load(name):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


commits = _load("commits")
metrics = sys.modules["metrics"]


def _git(repo, *args):
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t"}
    env["GIT_COMMITTER_EMAIL"] = "t@t"
    return subprocess.run(
        ["git", *args], cwd=repo, env=env, capture_output=True, text=True, check=True
    ).stdout


@pytest.fixture(scope="module")
def fixture_repo(tmp_path_factory):
    """Two commits: the second makes ``speed`` twice as slow and breaks ``broken``."""
    repo = tmp_path_factory.mktemp("repo")
    (repo / "benchmark").mkdir()
    (repo / "pyproject.toml").write_text(
        '[project]\nname = "fixture"\nversion = "0"\nrequires-python = ">=3.11"\ndependencies = []\n\n'
        "[tool.uv]\npackage = false\n"
    )
    shutil.copy(BENCH / "metrics.py", repo / "benchmark" / "metrics.py")
    (repo / "benchmark" / "speed_bench.py").write_text(SPEED_BENCH)
    (repo / "benchmark" / "broken_bench.py").write_text(BROKEN_BENCH)
    (repo / "benchmark" / "speed.txt").write_text("1.0")
    (repo / "benchmark" / "broken.txt").write_text("no")
    env = {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT"}}
    subprocess.run([UV, "lock", "-q", "--offline"], cwd=repo, env=env, check=True)
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "first")
    (repo / "benchmark" / "speed.txt").write_text("2.0")
    (repo / "benchmark" / "broken.txt").write_text("yes")
    _git(repo, "commit", "-q", "-am", "second: slower, broken")
    shas = [_git(repo, "rev-parse", "--short", rev).strip() for rev in ("HEAD~1", "HEAD")]
    return repo, shas


@pytest.mark.skipif(UV is None, reason="needs uv")
def test_two_commits_end_to_end_with_a_failing_bench(fixture_repo, tmp_path, capsys):
    repo, (first, second) = fixture_repo
    results, png = tmp_path / "results", tmp_path / "plot.png"
    argv = [
        "--repo",
        str(repo),
        "--commits",
        "HEAD~1",
        "HEAD",
        "--benches",
        "speed",
        "broken",
        "--rounds",
        "2",
    ]
    code = commits.main([*argv, "--results", str(results), "--plot", str(png)])
    out = capsys.readouterr().out
    assert code == 1  # the broken bench failed at the second commit
    assert "| speed | size=small | xf | work_s | 1 | 2 | 2.000 |" in out
    assert "| speed | size=small | xf | tokens_per_s | 100 | 50 | 0.500 |" in out
    assert "| broken |  | xf | load_s | 1 | – | – |" in out
    assert f"failed: broken at {second}: RuntimeError: the bench broke at this commit" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    runs = metrics.read_results(results)["benchmarks"]
    # Every bench ran at every commit in every round, the commits alternating and each in its synced venv.
    assert [(r["name"], r["commit_id"]) for r in runs] == [
        ("speed", first),
        ("speed", second),
        ("broken", first),
        ("broken", second),
        ("speed", second),
        ("speed", first),
        ("broken", second),
        ("broken", first),
    ]
    assert [r["status"] for r in runs if r["commit_id"] == second and r["name"] == "broken"] == ["failed"] * 2
    assert _git(repo, "worktree", "list").count("\n") == 1  # the worktrees are gone
    assert not (repo / ".venv").exists()  # synced into the worktrees, not the repo


@pytest.mark.skipif(UV is None, reason="needs uv")
def test_a_bench_that_crashes_before_recording_is_recorded_failed(fixture_repo, tmp_path, capsys):
    repo, (first, _) = fixture_repo
    argv = ["--repo", str(repo), "--commits", "HEAD~1", "--benches", "missing", "--no-sync"]
    assert commits.main([*argv, "--results", str(tmp_path)]) == 1
    (run,) = metrics.read_results(tmp_path)["benchmarks"]
    assert (run["name"], run["commit_id"], run["status"]) == ("missing", first, "failed")
    assert "missing_bench.py does not exist" in run["error"]


@pytest.mark.skipif(UV is None, reason="needs uv")
def test_the_regression_gate_fails_past_the_threshold_only(fixture_repo, tmp_path, capsys):
    repo, (first, second) = fixture_repo
    argv = [
        "--repo",
        str(repo),
        "--commits",
        "HEAD",
        "--benches",
        "speed",
        "--baseline",
        "HEAD~1",
        "--no-sync",
    ]
    assert commits.main([*argv, "--threshold", "0.5", "--results", str(tmp_path / "a")]) == 1
    out = capsys.readouterr().out
    assert f"speed xf work_s [size=small] at {second}: 2.000x of {first}" in out
    assert f"speed xf tokens_per_s [size=small] at {second}: 0.500x of {first}" not in out  # exactly 50 %
    assert commits.main([*argv, "--threshold", "1.5", "--results", str(tmp_path / "b")]) == 0
    assert "regression past" not in capsys.readouterr().out


CWD_SPEED_BENCH = """
from pathlib import Path
from metrics import MetricsRecorder

work = float((Path.cwd() / "benchmark" / "speed.txt").read_text())  # the commit's tree, not this folder
with MetricsRecorder("cwdspeed", sample_interval=None) as recorder:
    recorder.record("xf", {"work_s": work})
"""


@pytest.mark.skipif(UV is None, reason="needs uv")
def test_benches_from_runs_one_folders_script_at_every_commit(fixture_repo, tmp_path, capsys):
    repo, _ = fixture_repo
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    shutil.copy(BENCH / "metrics.py", scripts / "metrics.py")
    (scripts / "cwdspeed_bench.py").write_text(CWD_SPEED_BENCH)  # exists at neither commit
    argv = ["--repo", str(repo), "--commits", "HEAD~1", "HEAD", "--benches", "cwdspeed", "--no-sync"]
    assert commits.main([*argv, "--benches-from", str(scripts), "--results", str(tmp_path / "r")]) == 0
    assert "| cwdspeed |  | xf | work_s | 1 | 2 | 2.000 |" in capsys.readouterr().out
