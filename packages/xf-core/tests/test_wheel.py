"""xf-core's wheel installs alone, with only its declared dependencies, and works there."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

import xf_core

ROOT = Path(__file__).resolve().parents[3]
UV = os.environ.get("UV") or shutil.which("uv")


@pytest.mark.skipif(UV is None, reason="needs uv")
def test_wheel_installs_alone_in_an_empty_venv(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT"}}
    subprocess.run(
        [UV, "build", "--package", "xf-core", "--wheel", "--out-dir", str(tmp_path / "dist"), "-q"],
        cwd=ROOT,
        check=True,
        env=env,
    )
    (wheel,) = (tmp_path / "dist").glob("xf_core-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([UV, "venv", "-q", str(venv)], check=True, env=env)
    python = venv / "bin" / "python"
    subprocess.run([UV, "pip", "install", "-q", "--python", str(python), str(wheel)], check=True, env=env)
    code = (
        "import importlib.util as u, sys, xf_core; from xf_core import ArgumentParser, resolve_file;"
        "assert u.find_spec('torch') is None and 'torch' not in sys.modules; print(xf_core.__version__)"
    )
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.strip() == xf_core.__version__
    out = subprocess.run(
        [str(venv / "bin" / "xf"), "env"], capture_output=True, text=True, check=True, env=env
    )
    assert f"xf-core: {xf_core.__version__}" in out.stdout and "torch: not installed" in out.stdout
