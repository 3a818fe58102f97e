"""The job model, the two generated configs (validated against the real schemas by check-jsonschema, which
ships them, so this runs offline), and the test-job runner's shards, flaky policy and skip rule."""

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

CI = Path(__file__).resolve().parents[1]


def _load(name):
    spec = importlib.util.spec_from_file_location(name, CI / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


jobs = _load("jobs")
generate = _load("generate")
pytest_job = _load("pytest_job")
CHECK_JSONSCHEMA = shutil.which("check-jsonschema", path=str(Path(sys.executable).parent))


@pytest.fixture(autouse=True)
def no_recorded_durations(monkeypatch):
    """Job names do not depend on whatever ``ci/durations.json`` holds (one shard each unless a test says)."""
    monkeypatch.setattr(jobs, "load_durations", lambda root=None: {})


def names(files=(), **selection):
    chosen = jobs.from_diff(list(files)) if files else jobs.Selection.from_json(selection)
    return [job.name for job in jobs.jobs_for(chosen)]


def test_a_leaf_change_runs_its_package_on_each_python_and_its_install_cell():
    assert names(["packages/xf-quant/src/xf_quant/_convert.py"]) == [
        "checks",
        "test-xf-quant-py311",
        "test-xf-quant-py312",
        "test-xf-quant-py313",
        "install-quant",
        "integration",
    ]


def test_a_tokenize_change_reaches_pipeline_and_the_cells_that_install_tokenize():
    got = names(["packages/xf-tokenize/src/xf_tokenize/_fast.py"])
    assert [n for n in got if n.startswith("test-") and n.endswith("py311")] == [
        "test-xf-pipeline-py311",
        "test-xf-tokenize-py311",
    ]
    assert [n for n in got if n.startswith("install-")] == [
        "install-tokenize",
        "install-load-tokenize",
        "install-pipeline",
    ]
    assert "tooling" not in got


def test_shared_files_run_everything_and_docs_outside_packages_only_the_checks():
    everything = names(["uv.lock"])
    assert {"tooling", "integration", *(f"install-{c}" for c in jobs.INSTALL_CELLS)} <= set(everything)
    assert len([n for n in everything if n.startswith("test-")]) == 3 * len(jobs.members())
    assert names(["README.md"]) == ["checks"]
    assert names(["benchmark/commits.py"]) == ["checks", "tooling"]


def test_a_tests_fetcher_selection_runs_its_tests_only():
    selection = {
        "base": "main",
        "changed_files": ["packages/xf-load/src/xf_load/rope.py"],
        "run_all": False,
        "run_all_reason": None,
        "packages": ["xf-load"],
        "tests": ["packages/xf-load/tests/test_rope.py"],
    }
    chosen = jobs.jobs_for(jobs.Selection.from_json(selection))
    (py311,) = [job for job in chosen if job.name == "test-xf-load-py311"]
    assert py311.commands[0].endswith("-- packages/xf-load/tests/test_rope.py")
    assert "install-load-tokenize" in [j.name for j in chosen] and "install-tokenize" not in [
        j.name for j in chosen
    ]


def test_declared_pythons_prefer_classifiers_then_requires_python():
    assert jobs.declared_pythons({"requires-python": ">=3.12"}) == ("3.12", "3.13")
    classified = {"requires-python": ">=3.11", "classifiers": ["Programming Language :: Python :: 3.11"]}
    assert jobs.declared_pythons(classified) == ("3.11",)


def test_long_packages_are_sharded_by_recorded_durations(monkeypatch):
    durations = {f"packages/xf-load/tests/test_{i}.py": 100.0 for i in range(6)}
    monkeypatch.setattr(jobs, "load_durations", lambda root=None: durations)
    got = names(["packages/xf-load/src/xf_load/x.py"])
    assert [n for n in got if n.startswith("test-xf-load-py311")] == [
        "test-xf-load-py311-1of3",
        "test-xf-load-py311-2of3",
        "test-xf-load-py311-3of3",
    ]
    assert "test-xf-quant-py311" in got  # 0 recorded seconds: one shard


def test_split_balances_recorded_durations():
    durations = {"a": 10.0, "b": 6.0, "c": 5.0, "d": 4.0, "e": 1.0}
    shards = pytest_job.split([*list(durations), "new"], durations, 2)
    loads = [sum(durations.get(f, 5.0) for f in shard) for shard in shards]
    assert sorted(f for s in shards for f in s) == ["a", "b", "c", "d", "e", "new"]
    assert abs(loads[0] - loads[1]) <= 1.0


@pytest.mark.skipif(CHECK_JSONSCHEMA is None, reason="check-jsonschema is a dev dependency")
@pytest.mark.parametrize(
    ("fmt", "schema"), [("github", "vendor.github-workflows"), ("circleci", "vendor.circle-ci")]
)
@pytest.mark.parametrize("files", [None, ["packages/xf-train/src/xf_train/_trainer.py"]])
def test_both_formats_pass_their_schemas_and_hold_the_same_jobs(fmt, schema, files, tmp_path):
    selection = jobs.everything() if files is None else jobs.from_diff(files)
    model = jobs.jobs_for(selection)
    path = tmp_path / "ci.yml"
    path.write_text(generate.render(fmt, model))
    out = subprocess.run(
        [CHECK_JSONSCHEMA, "--builtin-schema", schema, str(path)], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr
    config = yaml.safe_load(path.read_text())
    assert list(config["jobs"]) == [job.name for job in model]
    text = path.read_text()
    if fmt == "github":
        assert "hashFiles('uv.lock')" in text
        tooling = config["jobs"].get("tooling")
        assert tooling is None or any("ci/postgres.py start" in s.get("run", "") for s in tooling["steps"])
    else:
        assert 'checksum "uv.lock"' in text and config["workflows"]["ci"]["jobs"] == [
            job.name for job in model
        ]
    for job in model:
        assert all(command in text for command in job.commands)


def test_generate_cli_reads_a_selection_file_and_writes_the_output(tmp_path):
    selection = tmp_path / "selection.json"
    selection.write_text(json.dumps({"run_all": False, "packages": ["xf-repotools"], "changed_files": []}))
    out = tmp_path / "workflow.yml"
    assert generate.main(["--format", "github", "--selection", str(selection), "--output", str(out)]) == 0
    assert list(yaml.safe_load(out.read_text())["jobs"]) == [
        "checks",
        "test-xf-repotools-py311",
        "test-xf-repotools-py312",
        "test-xf-repotools-py313",
        "install-repotools",
        "integration",
    ]


@pytest.fixture
def suite(tmp_path):
    """A tiny pytest project: one test that fails only on its first run, and a skipped one."""
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_flaky.py").write_text(
        "from pathlib import Path\n"
        "def test_flaky():\n"
        "    marker = Path(__file__).with_name('ran')\n"
        "    first = not marker.exists()\n"
        "    marker.touch()\n"
        "    assert not first, 'first run fails'\n"
    )
    (tmp_path / "test_skip.py").write_text(
        "import pytest\n@pytest.mark.skip('no')\ndef test_skipped(): pass\n"
    )
    (tmp_path / "test_broken.py").write_text(
        "".join(f"def test_{i}():\n    assert False\n" for i in range(4))
    )
    return tmp_path


def test_flaky_policy_reruns_a_few_failures_once_and_reports_them(suite, capsys):
    argv = ["--root", str(suite), "--report", "r.xml", "--", "test_flaky.py"]
    assert pytest_job.main(argv) == 0
    assert json.loads((suite / "r.flaky.json").read_text()) == ["test_flaky.py::test_flaky"]


def test_more_failures_than_the_policy_allows_are_not_rerun(suite, capsys):
    assert pytest_job.main(["--root", str(suite), "--report", "r.xml", "--", "test_broken.py"]) == 1
    assert "not rerun" in capsys.readouterr().out and not (suite / "r.flaky.json").exists()


def test_no_skips_turns_a_skip_into_a_failure(suite, capsys):
    argv = ["--root", str(suite), "--report", "r.xml", "--", "test_skip.py"]
    assert pytest_job.main(argv) == 0
    assert pytest_job.main(["--no-skips", *argv]) == 1
    assert "test_skip.py::test_skipped" in capsys.readouterr().out


def test_base_falls_back_to_the_git_diff_and_package_graph_without_tests_fetcher(tmp_path, monkeypatch):
    """Without ``xf-repotools tests-fetcher`` the selection comes from git diff and the package graph."""
    monkeypatch.setattr(jobs, "tests_fetcher_available", lambda root: False)
    for pyproject in (CI.parent / "packages").glob("*/pyproject.toml"):
        target = tmp_path / pyproject.relative_to(CI.parent)
        target.parent.mkdir(parents=True)
        target.write_text(pyproject.read_text())
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run([*git, "add", "-A"], cwd=tmp_path, check=True)
    subprocess.run([*git, "commit", "-qm", "one"], cwd=tmp_path, check=True)
    (tmp_path / "packages" / "xf-quant" / "x.py").write_text("x = 1\n")
    subprocess.run([*git, "add", "-A"], cwd=tmp_path, check=True)
    subprocess.run([*git, "commit", "-qm", "two"], cwd=tmp_path, check=True)
    selection = jobs.select("HEAD~1", root=tmp_path)
    assert selection.packages == ("xf-quant",) and not selection.run_all
    assert selection.changed_files == ("packages/xf-quant/x.py",) and selection.base == "HEAD~1"
