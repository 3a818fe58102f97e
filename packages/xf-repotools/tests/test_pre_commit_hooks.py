"""The hooks in .pre-commit-hooks.yaml install and run from another repository (`pre-commit try-repo`)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from xf_core.testing import slow
from xf_repotools.testing import git, write_files

ROOT = Path(__file__).resolve().parents[3]
HOOK_IDS = [
    "xf-check-copies",
    "xf-check-inits",
    "xf-check-docstrings",
    "xf-check-init-order",
    "xf-check-modular",
    "xf-check-module-size",
]


def test_manifest_lists_the_hooks_and_each_runs_a_real_checker():
    from xf_repotools.check import ORDER

    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    assert [h["id"] for h in hooks] == HOOK_IDS
    for hook in hooks:
        command, check, name = hook["entry"].split()
        assert (command, check) == ("xf-repotools", "check") and name in ORDER
        assert hook["id"] == f"xf-check-{name}"
        for dep in hook["additional_dependencies"]:
            assert (ROOT / dep / "pyproject.toml").is_file()


@slow
def test_try_repo_from_a_foreign_repository_reports_its_problems(tmp_path):
    pre_commit = shutil.which("pre-commit", path=str(Path(sys.executable).parent))
    if pre_commit is None:
        pytest.skip("pre-commit is not installed")
    foreign = tmp_path / "foreign"
    write_files(
        foreign,
        {
            "lib/__init__.py": "",
            "lib/base.py": "def helper(x):\n    return x + 1\n",
            "lib/copy.py": "# Copied from lib.base.helper\ndef helper(x):\n    return x + 2\n",
        },
    )
    git(foreign, "init", "-q")
    git(foreign, "add", "-A")
    git(foreign, "commit", "-qm", "init")
    env = {**os.environ, "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home"), "XF_REPOTOOLS_CACHE": "0"}
    run = subprocess.run(
        [pre_commit, "try-repo", str(ROOT), "xf-check-copies", "--all-files"],
        cwd=foreign,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    output = run.stdout + run.stderr
    assert run.returncode == 1, output
    assert "lib/copy.py:1: copy of lib.base.helper differs from its source" in output
    # the hook's --fix counterpart repairs it; then the hook passes
    subprocess.run(
        [sys.executable, "-m", "xf_repotools", "check", "copies", "--fix", "--root", str(foreign)], check=True
    )
    run = subprocess.run(
        [pre_commit, "try-repo", str(ROOT), "xf-check-copies", "--all-files"],
        cwd=foreign,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stdout + run.stderr
