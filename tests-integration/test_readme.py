"""The README's commands stay true: its main job runs and prints what a user expects."""

import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
UV = os.environ.get("UV") or shutil.which("uv")


def _readme_commands() -> list[str]:
    block = re.search(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S).group(1)
    return [line for line in block.splitlines() if line and not line.startswith("#")]


def test_readme_gives_setup_main_job_and_test_commands():
    setup_and_main, test = _readme_commands()
    assert setup_and_main.startswith(
        "pip install uv && uv sync --all-packages --all-extras && uv run xf pipeline"
    )
    assert test == "bash .ci/run"  # what CI runs on a clean clone
    # .ci/run runs the job model: its checks job is ci/test.sh up to pytest, its test jobs run the tests.
    assert "ci/run_jobs.py" in (ROOT / ".ci" / "run").read_text()
    assert "bash ci/test.sh" in (ROOT / "ci" / "jobs.py").read_text()
    assert "uv sync --all-packages --all-extras" in (ROOT / ".ci" / "run").read_text()


@pytest.mark.skipif(UV is None, reason="needs uv")
def test_readme_main_job_runs_offline_on_the_embedded_model():
    main_job = _readme_commands()[0].split(" && ")[-1]
    argv = shlex.split(main_job)
    assert argv[:2] == ["uv", "run"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "XF_DISABLE_PROGRESS": "1"}
    out = subprocess.run([UV, *argv[1:]], cwd=ROOT, capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr
    (line,) = out.stdout.splitlines()
    scores = json.loads(line)
    # The query is about eating: the eating candidate must beat the violin one.
    assert len(scores) == 2 and scores[0] > 0.5 > scores[1]
