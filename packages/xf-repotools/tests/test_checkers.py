"""Each checker on fixture repositories: clean passes, broken fails naming file:line, --fix repairs, rerun passes."""

import json
from pathlib import Path

import pytest

from xf_repotools.__main__ import main
from xf_repotools.testing import write_files

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("XF_REPOTOOLS_CACHE", str(tmp_path_factory.mktemp("cache")))


def _check(root: Path, *names: str, fix: bool = False) -> int:
    return main(["check", *names, "--root", str(root), *(["--fix"] if fix else [])])


def _roundtrip(root: Path, name: str, capsys, expect: str) -> str:
    """broken -> 1 naming ``expect``; --fix -> 0; rerun -> 0. Returns the first output."""
    assert _check(root, name) == 1
    out = capsys.readouterr().out
    assert expect in out, out
    assert f"(fix: xf-repotools check {name} --fix)" in out
    assert _check(root, name, fix=True) == 0
    capsys.readouterr()
    assert _check(root, name) == 0
    return out


SOURCE = '''
class BertAttention:
    """Attention of Bert."""

    def forward(self, x):
        # Bert scales by the head size
        return x * self.bert_scale
'''


def test_copies_clean_broken_fix(tmp_path, capsys):
    copy = '''
    import math


    # Copied from pkg.bert.BertAttention with Bert->Roberta, bert->roberta
    class RobertaAttention:
        """Attention of Roberta."""

        def forward(self, x):
            # Roberta scales by the head size
            return x * self.roberta_scale


    def after():
        return math.pi
    '''
    write_files(tmp_path, {"pkg/__init__.py": "", "pkg/bert.py": SOURCE, "pkg/roberta.py": copy})
    assert _check(tmp_path, "copies") == 0
    broken = (tmp_path / "pkg/roberta.py").read_text().replace("roberta_scale", "roberta_scale + 1")
    (tmp_path / "pkg/roberta.py").write_text(broken)
    _roundtrip(tmp_path, "copies", capsys, "pkg/roberta.py:4: copy of pkg.bert.BertAttention differs")
    assert (tmp_path / "pkg/roberta.py").read_text() == broken.replace("roberta_scale + 1", "roberta_scale")


def test_copies_of_a_method_and_formatting_only_differences(tmp_path, capsys):
    write_files(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/bert.py": SOURCE,
            "pkg/other.py": """
            class Other:
                # Copied from pkg.bert.BertAttention.forward
                def forward(self, x):
                    # Bert scales by the head size
                    return x*self.bert_scale
            """,
        },
    )
    assert _check(tmp_path, "copies") == 0  # ruff formats both the same: not a difference
    (tmp_path / "pkg/other.py").write_text((tmp_path / "pkg/other.py").read_text().replace("x*", "x-"))
    _roundtrip(tmp_path, "copies", capsys, "pkg/other.py:2:")


def test_copies_of_a_missing_source_is_not_fixable(tmp_path, capsys):
    write_files(
        tmp_path, {"pkg/__init__.py": "", "pkg/a.py": "# Copied from pkg.nope.Thing\ndef f():\n    pass\n"}
    )
    assert _check(tmp_path, "copies", fix=True) == 1
    out = capsys.readouterr().out
    assert "pkg/a.py:1: copied from pkg.nope.Thing, but pkg/__init__.py has no nope.Thing" in out
    assert "(fix: edit by hand, then xf-repotools check copies)" in out


def test_copies_cache_skips_unchanged_files_and_sees_source_changes(tmp_path, capsys, monkeypatch):
    from xf_repotools import copies

    write_files(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/bert.py": SOURCE,
            "pkg/r.py": "# Copied from pkg.bert.BertAttention\n" + SOURCE.lstrip(),
        },
    )
    assert _check(tmp_path, "copies") == 0
    calls = []
    real = copies._analyse
    monkeypatch.setattr(copies, "_analyse", lambda repo, files: calls.append(files) or real(repo, files))
    assert _check(tmp_path, "copies") == 0
    assert calls == [[]]  # nothing re-analysed
    (tmp_path / "pkg/bert.py").write_text(SOURCE.replace("x * ", "x / "))
    assert _check(tmp_path, "copies") == 1  # the source changed: the cached verdict no longer applies
    assert calls[-1] == ["pkg/r.py"]
    capsys.readouterr()


def test_inits_walks_sub_packages_and_fix_adds_missing_lazy_names(tmp_path, capsys):
    write_files(
        tmp_path,
        {
            "src/demo/__init__.py": '__all__ = ["A"]\nfrom demo._a import A\n',
            "src/demo/_a.py": "class A: ...\n",
            "src/demo/sub/__init__.py": """
            from typing import TYPE_CHECKING
            from xf_core.lazy import lazy_exports

            __all__ = ["B", "B"]
            if TYPE_CHECKING:
                from ._b import B, C
            __getattr__, __dir__ = lazy_exports(__name__, {"B": "._b", "C": "._b"})
            """,
            "src/demo/sub/_b.py": "def B(): ...\ndef C(): ...\n",
        },
    )
    out = _roundtrip(
        tmp_path, "inits", capsys, "src/demo/sub/__init__.py:4: 'C' is lazily exported but missing"
    )
    assert "__all__ lists a name twice" in out
    assert '__all__ = ["B", "C"]' in (tmp_path / "src/demo/sub/__init__.py").read_text()


def test_init_order_sorts_lazy_tables_grouped_by_module(tmp_path, capsys):
    table = '{\n    "b_func": "._x",\n    "a_func": "._x",\n    "Zed": "._y",\n    "CONST": "._y",\n}'
    write_files(
        tmp_path,
        {
            "pkg/__init__.py": "from xf_core.lazy import lazy_exports\n\n_EXPORTS = "
            + table
            + "\n__all__ = sorted(_EXPORTS)\n__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)\n",
        },
    )
    _roundtrip(tmp_path, "init-order", capsys, "pkg/__init__.py:3: lazy-export table is not sorted")
    text = (tmp_path / "pkg/__init__.py").read_text()
    assert (
        '"a_func": "._x",\n    "b_func": "._x",\n    "CONST": "._y",\n    "Zed": "._y",\n}\n__all__' in text
    )


def test_docstrings_args_match_the_signature(tmp_path, capsys):
    write_files(
        tmp_path,
        {
            "pkg/mod.py": '''
            def scale(x, factor: float = 2.0, *, clip: bool | None = None, **kwargs):
                """Scale x.

                Args:
                    x: the input.
                    gone (int): removed long ago,
                        over two lines.

                Returns:
                    the scaled input.
                """
                return x * factor


            def _private(a):
                """Args:
                b: not checked, private.
                """
            ''',
        },
    )
    out = _roundtrip(
        tmp_path, "docstrings", capsys, "pkg/mod.py:1: scale(): parameter 'factor' is not in Args"
    )
    assert "pkg/mod.py:6: scale(): Args documents 'gone', not a parameter" in out
    text = (tmp_path / "pkg/mod.py").read_text()
    assert (
        "    Args:\n        x: the input.\n        factor (float): Defaults to `2.0`.\n"
        "        clip (bool | None): Defaults to `None`.\n\n    Returns:" in text
    )


def test_config_attributes_and_allow_list(tmp_path, capsys):
    files = {
        "lib/__init__.py": "",
        "lib/shared.py": "def f(config):\n    return config.used_by_shared\n",
        "lib/models/__init__.py": "",
        "lib/models/tiny.py": """
        from dataclasses import dataclass


        @dataclass
        class TinyConfig:
            hidden: int = 4
            used_by_shared: int = 1
            validated: bool = False
            unused: int = 3

            def validate(self):
                assert not self.validated


        class TinyModel:
            def __init__(self, config):
                self.width = config.hidden
        """,
    }
    write_files(tmp_path, files)
    assert _check(tmp_path, "config-attributes") == 1
    out = capsys.readouterr().out
    assert out.count("never read") == 1
    assert "lib/models/tiny.py:9: TinyConfig.unused is never read by the model code" in out
    assert "(fix: edit by hand, then xf-repotools check config-attributes)" in out
    (tmp_path / "pyproject.toml").write_text(
        '[tool.xf-repotools.config-attributes.allow]\n"TinyConfig.unused" = "kept for round-trip"\n'
    )
    assert _check(tmp_path, "config-attributes") == 0


def test_repo_families_registered_tested_documented(tmp_path, capsys):
    files = {
        "packages/m/README.md": "Families: alpha.\n",
        "packages/m/src/m/__init__.py": "",
        "packages/m/src/m/auto.py": 'FAMILIES = {"alpha": "m.models.alpha"}\n',
        "packages/m/src/m/models/__init__.py": "",
        "packages/m/src/m/models/alpha.py": "",
        "packages/m/tests/test_alpha.py": "",
    }
    write_files(tmp_path, files)
    assert _check(tmp_path, "repo") == 0
    write_files(tmp_path, {"packages/m/src/m/models/beta.py": ""})
    assert _check(tmp_path, "repo") == 1
    out = capsys.readouterr().out
    path = "packages/m/src/m/models/beta.py:1:"
    assert f"{path} family 'beta' is not registered in packages/m/src/m/auto.py" in out
    assert f"{path} family 'beta' has no tests" in out
    assert f"{path} family 'beta' is not mentioned in packages/m/README.md" in out


def _member(root: Path, name: str, version: str, deps: list[str], *, init_version: str | None = None) -> None:
    module = name.replace("-", "_")
    write_files(
        root,
        {
            f"packages/{name}/pyproject.toml": f'[project]\nname = "{name}"\nversion = "{version}"\n'
            f"dependencies = {json.dumps(deps)}\n",
            f"packages/{name}/src/{module}/__init__.py": f'__version__ = "{init_version or version}"\n',
            f"packages/{name}/CHANGELOG.md": f"# {name}\n\n## {version}\n",
        },
    )


def test_layers_from_import_linter_contracts(tmp_path, capsys):
    write_files(
        tmp_path,
        {
            "pyproject.toml": """
            [[tool.importlinter.contracts]]
            name = "layers"
            type = "layers"
            layers = ["app", "low_a | low_b", "base"]
            """
        },
    )
    _member(tmp_path, "base", "1.0", [])
    _member(tmp_path, "low-a", "1.0", ["base>=1"])
    _member(tmp_path, "low_b", "1.0", ["base>=1"])
    _member(tmp_path, "app", "1.0", ["low-a>=1", "base"])
    assert _check(tmp_path, "layers") == 0
    _member(tmp_path, "low-a", "1.0", ["base>=1", "app"])
    assert _check(tmp_path, "layers") == 1
    out = capsys.readouterr().out
    assert "packages/low-a/pyproject.toml:4: low-a depends on app, which is not below it" in out


def test_versions_dunder_changelog_and_sibling_ranges(tmp_path, capsys):
    _member(tmp_path, "xa", "0.2.0", [])
    _member(tmp_path, "xb", "0.1.0", ["xa>=0.2,<0.3"])
    assert _check(tmp_path, "versions") == 0
    _member(tmp_path, "xa", "0.3.0", [], init_version="0.2.0")
    (tmp_path / "packages/xa/CHANGELOG.md").write_text("## 0.2.0\n")
    assert _check(tmp_path, "versions") == 1
    out = capsys.readouterr().out
    assert (
        "packages/xa/src/xa/__init__.py:1: __version__ is '0.2.0' but packages/xa/pyproject.toml says '0.3.0'"
        in out
    )
    assert "packages/xa/CHANGELOG.md:1: no heading for version 0.3.0" in out
    assert "packages/xb/pyproject.toml:4: xb requires xa>=0.2,<0.3 but xa is 0.3.0" in out


def test_versions_read_from_metadata_must_name_the_member_itself(tmp_path, capsys):
    _member(tmp_path, "xa", "0.2.0", [])
    init = tmp_path / "packages/xa/src/xa/__init__.py"
    init.write_text('from importlib import metadata\n\n__version__ = metadata.version("xa")\n')
    assert _check(tmp_path, "versions") == 0
    init.write_text('from importlib.metadata import version\n\n__version__ = version("xb")\n')
    assert _check(tmp_path, "versions") == 1
    out = capsys.readouterr().out
    assert "packages/xa/src/xa/__init__.py:3: __version__ reads the metadata of 'xb', not of 'xa'" in out


def test_exit_codes_and_json_output(tmp_path, capsys):
    write_files(
        tmp_path, {"pkg/__init__.py": "", "pkg/a.py": "# Copied from pkg.nope.Thing\ndef f():\n    pass\n"}
    )
    assert main(["check", "nonsense", "--root", str(tmp_path)]) == 2
    assert "unknown checker 'nonsense'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["check", "--no-such-flag"])
    assert exc.value.code == 2
    capsys.readouterr()
    assert main(["check", "copies", "--root", str(tmp_path), "--format", "json"]) == 1
    payload = json.loads(capsys.readouterr().out)
    assert payload["checked"] == ["copies"]
    assert payload["problems"][0]["path"] == "pkg/a.py" and payload["problems"][0]["line"] == 1


def test_keep_going_runs_every_checker(tmp_path, capsys):
    write_files(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "# Copied from pkg.nope.Thing\ndef f():\n    pass\n",
            "pkg/b.py": 'def g(a):\n    """Do.\n\n    Args:\n        b: wrong.\n    """\n',
        },
    )
    assert main(["check", "copies", "docstrings", "--root", str(tmp_path)]) == 1
    assert "docstrings" not in capsys.readouterr().out  # stopped after copies
    assert main(["check", "copies", "docstrings", "--root", str(tmp_path), "--keep-going"]) == 1
    assert "Args documents 'b'" in capsys.readouterr().out


def test_the_xf_repository_passes_every_checker(capsys):
    assert main(["check", "--root", str(ROOT), "--keep-going", "--no-cache"]) == 0, capsys.readouterr().out


def test_a_file_that_does_not_parse_is_reported_not_a_crash(tmp_path, capsys):
    write_files(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/bad.py": 'def f(:\n    """Do.\n\n    Args:\n    x: y\n    """\n# Copied from pkg.x.y\n',
        },
    )
    assert main(["check", "copies", "docstrings", "--root", str(tmp_path), "--keep-going"]) == 1
    out = capsys.readouterr().out
    assert out.count("pkg/bad.py:1: cannot parse (") == 2
    assert "(fix: edit by hand, then xf-repotools check docstrings)" in out


def test_root_defaults_to_the_git_top_level(tmp_path, capsys, monkeypatch):
    from xf_repotools.testing import git

    write_files(
        tmp_path,
        {"pkg/__init__.py": "", "pkg/sub/a.py": "# Copied from pkg.nope.Thing\ndef f():\n    pass\n"},
    )
    git(tmp_path, "init", "-q")
    monkeypatch.chdir(tmp_path / "pkg" / "sub")
    assert main(["check", "copies"]) == 1
    assert "pkg/sub/a.py:1: copied from pkg.nope.Thing" in capsys.readouterr().out


def test_module_size_names_each_long_source_module_and_reads_the_limit(tmp_path, capsys):
    write_files(
        tmp_path,
        {
            "packages/xa/src/xa/__init__.py": "",
            "packages/xa/src/xa/ok.py": "x = 1\n" * 600,
            "packages/xa/src/xa/sub/long.py": "x = 1\n" * 601,
            "packages/xa/tests/test_long.py": "x = 1\n" * 900,  # tests are not source
            "tools/long.py": "x = 1\n" * 900,
        },
    )
    assert _check(tmp_path, "module-size") == 1
    out = capsys.readouterr().out
    assert out.count("module-size") == 1, out
    assert (
        "packages/xa/src/xa/sub/long.py:601: module is 601 lines, over the limit of 600; split it by concern"
        in out
    )
    (tmp_path / "packages/xa/src/xa/sub/long.py").write_text("x = 1\n" * 600)
    assert _check(tmp_path, "module-size") == 0
    (tmp_path / "pyproject.toml").write_text("[tool.xf-repotools.module-size]\nmax-lines = 500\n")
    assert _check(tmp_path, "module-size") == 1
    out = capsys.readouterr().out
    assert "packages/xa/src/xa/ok.py:501: module is 600 lines, over the limit of 500" in out
    assert "sub/long.py:501: module is 600 lines" in out
