import importlib.util
import json
import sys
from pathlib import Path

_spec = importlib.util.spec_from_file_location("ci_plan", Path(__file__).resolve().parents[1] / "plan.py")
plan_module = importlib.util.module_from_spec(_spec)
sys.modules["ci_plan"] = plan_module
_spec.loader.exec_module(plan_module)
plan, dependents, package_graph = plan_module.plan, plan_module.dependents, plan_module.package_graph


def names(files):
    return [job.name for job in plan(files)]


def test_graph_follows_the_layering():
    graph = package_graph(plan_module.ROOT)
    assert graph["xf-core"] == set()
    assert graph["xf-pipeline"] == {"xf-core", "xf-tokenize", "xf-load"}
    assert graph["xf-quant"] == {"xf-core", "xf-load"}
    assert graph["xf-repotools"] == {"xf-core"}
    assert dependents(graph, {"xf-train"}) == {"xf-train", "xf-parallel"}


def test_a_leaf_change_tests_only_the_leaf_and_integration():
    assert names(["packages/xf-quant/src/xf_quant/_convert.py"]) == ["xf-quant", "integration"]


def test_a_core_change_tests_everything_above_it():
    jobs = names(["packages/xf-core/src/xf_core/_hub.py"])
    above_core = set(package_graph(plan_module.ROOT))
    assert jobs[:-1] == sorted(above_core) and jobs[-1] == "integration"


def test_tokenize_change_reaches_pipeline_but_not_load():
    assert names(["packages/xf-tokenize/README.md"]) == ["xf-pipeline", "xf-tokenize", "integration"]


def test_shared_files_select_everything_and_docs_outside_packages_nothing():
    assert "benchmark" in names(["uv.lock"]) and "xf-core" in names(["ci/test.sh"])
    assert names(["README.md"]) == []
    assert names(["benchmark/harness.py"]) == ["benchmark"]


def test_cli_prints_jobs_as_json(capsys):
    assert plan_module.main(["--files", "packages/xf-load/src/xf_load/rope.py"]) == 0
    jobs = json.loads(capsys.readouterr().out)
    assert [j["name"] for j in jobs] == [
        "xf-load",
        "xf-parallel",
        "xf-pipeline",
        "xf-quant",
        "xf-train",
        "integration",
    ]
    assert jobs[0]["command"][-1] == "packages/xf-load"
