"""The architecture guards catch what they are for: a layer-order break and an undeclared import.

Each test runs the real tool on a small temporary copy, so it also fails if the tool is misconfigured.
"""

import importlib.util
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("ci_deptry_members", ROOT / "ci" / "deptry_members.py")
deptry_members = importlib.util.module_from_spec(_spec)
sys.modules["ci_deptry_members"] = deptry_members
_spec.loader.exec_module(deptry_members)


def _lint_imports(pythonpath: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(pythonpath)}
    command = [str(Path(sys.executable).with_name("lint-imports")), "--config", str(ROOT / "pyproject.toml")]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)


def test_the_layer_contracts_hold_and_break_on_a_core_module_importing_upward_or_torch(tmp_path):
    kept = _lint_imports(tmp_path)
    assert kept.returncode == 0, kept.stdout
    # A copy of xf_core ahead of the installed one on sys.path, with one module that breaks both rules.
    shutil.copytree(ROOT / "packages/xf-core/src/xf_core", tmp_path / "xf_core")
    (tmp_path / "xf_core" / "_violation.py").write_text("import torch\n\nimport xf_load\n")
    broken = _lint_imports(tmp_path)
    assert broken.returncode != 0
    assert "xf_core._violation -> xf_load" in broken.stdout
    assert "xf_core._violation -> torch" in broken.stdout
    assert "1 broken" in broken.stdout


def test_deptry_options_come_from_the_root_pyproject(tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        '[tool.deptry.per_rule_ignores]\nDEP002 = ["numpy", "xf-load"]\nDEP003 = ["yaml"]\n'
    )
    assert deptry_members.options(tmp_path) == ["--per-rule-ignores", "DEP002=numpy|xf-load,DEP003=yaml"]
    (tmp_path / "pyproject.toml").write_text("[tool.deptry]\nknown_first_party = ['x']\n")
    try:
        deptry_members.options(tmp_path)
    except SystemExit as e:
        assert "known_first_party" in str(e)
    else:
        raise AssertionError("an unsupported [tool.deptry] key was silently dropped")


def test_deptry_fails_a_member_that_imports_what_it_does_not_declare(tmp_path, capfd):
    (tmp_path / "pyproject.toml").write_text("[tool.deptry.per_rule_ignores]\nDEP002 = ['numpy']\n")
    member = tmp_path / "packages" / "xf-demo"
    (member / "src" / "xf_demo").mkdir(parents=True)
    (member / "pyproject.toml").write_text(
        textwrap.dedent(
            """\
            [project]
            name = "xf-demo"
            version = "0.1.0"
            dependencies = ["numpy>=1.26", "packaging>=23"]
            """
        )
    )
    (member / "src" / "xf_demo" / "__init__.py").write_text("import packaging\n")
    assert deptry_members.main([], root=tmp_path) == 0  # numpy unused, but ignored by the root settings
    (member / "src" / "xf_demo" / "__init__.py").write_text("import packaging\nimport yaml\n")
    assert deptry_members.main([], root=tmp_path) == 1
    assert "'yaml' imported but" in capfd.readouterr().err
