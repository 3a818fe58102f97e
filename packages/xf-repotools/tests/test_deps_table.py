import shutil
from pathlib import Path

from xf_repotools.__main__ import main
from xf_repotools.deps_table import TABLE_PATH, collect, run

ROOT = Path(__file__).resolve().parents[3]


def test_table_in_the_repo_is_current():
    assert run(ROOT, fix=False) == 0


def test_collect_merges_members_and_skips_siblings(tmp_path):
    for name, deps in {"a": '["xf-core>=0.1,<0.2", "torch>=2.4", "numpy>=1.26"]', "b": '["torch<3"]'}.items():
        (tmp_path / "packages" / name).mkdir(parents=True)
        (tmp_path / "packages" / name / "pyproject.toml").write_text(
            f'[project]\nname = "{name}"\ndependencies = {deps}\n'
        )
    assert collect(tmp_path) == {"numpy": ">=1.26", "torch": "<3,>=2.4"}


def test_stale_table_fails_with_the_fix_command_and_fix_rewrites_it(tmp_path, capsys):
    for pyproject in ROOT.glob("packages/*/pyproject.toml"):
        target = tmp_path / pyproject.relative_to(ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(pyproject, target)
    (tmp_path / TABLE_PATH).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / TABLE_PATH).write_text("DEPS = {}\n")
    assert main(["deps-table", "--root", str(tmp_path)]) == 1
    assert "(fix: xf-repotools check deps-table --fix)" in capsys.readouterr().out
    assert main(["deps-table", "--root", str(tmp_path), "--fix"]) == 0
    assert (tmp_path / TABLE_PATH).read_text() == (ROOT / TABLE_PATH).read_text()
    assert main(["deps-table", "--root", str(tmp_path)]) == 0
