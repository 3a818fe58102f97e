"""tests-fetcher on a temporary git history: a leaf change selects its tests, a core change its dependants."""

import json

import pytest

from xf_repotools.__main__ import main
from xf_repotools.testing import git, write_files

FILES = {
    "pyproject.toml": "[project]\nname = 'ws'\nversion = '0'\n",
    "packages/core/pyproject.toml": "[project]\nname = 'core'\nversion = '0.1'\n",
    "packages/core/src/core/__init__.py": "",
    "packages/core/src/core/base.py": "VALUE = 1\n",
    "packages/core/tests/test_base.py": "from core.base import VALUE\n",
    "packages/leaf/pyproject.toml": "[project]\nname = 'leaf'\nversion = '0.1'\n",
    "packages/leaf/README.md": "leaf\n",
    "packages/leaf/src/leaf/__init__.py": (
        "from xf_core.lazy import lazy_exports\n__all__ = ['thing']\n"
        "__getattr__, __dir__ = lazy_exports(__name__, {'thing': '._thing'})\n"
    ),
    "packages/leaf/src/leaf/_thing.py": "def thing():\n    import core.base\n\n    return core.base.VALUE\n",
    "packages/leaf/src/leaf/other.py": "def other():\n    return 2\n",
    "packages/leaf/tests/test_thing.py": "from leaf import thing\n",
    "packages/leaf/tests/test_other.py": "import importlib\n\nMOD = importlib.import_module('leaf.other')\n",
    "packages/app/pyproject.toml": "[project]\nname = 'app'\nversion = '0.1'\n",
    "packages/app/src/app/__init__.py": "",
    "packages/app/src/app/main.py": "def run():\n    from leaf import thing\n\n    return thing()\n",
    "packages/app/tests/test_main.py": "from app.main import run\n",
}


@pytest.fixture
def history(tmp_path, monkeypatch):
    monkeypatch.setenv("XF_REPOTOOLS_CACHE", str(tmp_path / "cache"))
    root = write_files(tmp_path / "repo", FILES)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "base")
    return root


def _fetch(root, capsys):
    out_file = root.parent / "selection.json"
    assert main(["tests-fetcher", "--base", "main", "--root", str(root), "--json", str(out_file)]) == 0
    printed = capsys.readouterr().out.split()
    data = json.loads(out_file.read_text())
    assert printed == data["tests"]
    assert list(data) == ["base", "changed_files", "run_all", "run_all_reason", "packages", "tests"]
    return data


def _commit(root, rel, text):
    (root / rel).write_text(text)
    git(root, "commit", "-qam", f"change {rel}")


def test_leaf_module_selects_only_its_tests(history, capsys):
    git(history, "checkout", "-qb", "feature")
    _commit(history, "packages/leaf/src/leaf/other.py", "def other():\n    return 3\n")
    data = _fetch(history, capsys)
    assert data["changed_files"] == ["packages/leaf/src/leaf/other.py"]
    assert data["tests"] == ["packages/leaf/tests/test_other.py"]  # through importlib's string
    assert data["packages"] == ["leaf"] and data["run_all"] is False and data["run_all_reason"] is None


def test_core_module_selects_its_dependants_across_packages(history, capsys):
    git(history, "checkout", "-qb", "feature")
    _commit(history, "packages/core/src/core/base.py", "VALUE = 2\n")
    data = _fetch(history, capsys)
    # core.base <- leaf._thing (import inside a function) <- leaf/__init__ (lazy table) <- test_thing, app.main
    assert data["tests"] == [
        "packages/app/tests/test_main.py",
        "packages/core/tests/test_base.py",
        "packages/leaf/tests/test_thing.py",
    ]
    assert data["packages"] == ["app", "core", "leaf"]


def test_docs_select_nothing_and_the_lock_file_runs_everything(history, capsys):
    git(history, "checkout", "-qb", "feature")
    _commit(history, "packages/leaf/README.md", "leaf, documented\n")
    assert _fetch(history, capsys)["tests"] == []
    (history / "uv.lock").write_text("version = 1\n")  # untracked files count too
    data = _fetch(history, capsys)
    assert data["run_all"] is True and data["run_all_reason"].startswith("uv.lock:")
    assert len(data["tests"]) == 4 and data["packages"] == ["app", "core", "leaf"]


def test_member_pyproject_selects_the_member_and_its_dependants(history, capsys):
    git(history, "checkout", "-qb", "feature")
    _commit(history, "packages/leaf/pyproject.toml", "[project]\nname = 'leaf'\nversion = '0.2'\n")
    data = _fetch(history, capsys)
    assert data["tests"] == [
        "packages/app/tests/test_main.py",
        "packages/leaf/tests/test_other.py",
        "packages/leaf/tests/test_thing.py",
    ]


def test_bad_base_is_a_usage_error(history, capsys):
    assert main(["tests-fetcher", "--base", "no-such-rev", "--root", str(history)]) == 2
    assert "git merge-base no-such-rev HEAD failed" in capsys.readouterr().err
