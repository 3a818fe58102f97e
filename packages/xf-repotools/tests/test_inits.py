from pathlib import Path

from xf_repotools.__main__ import main
from xf_repotools.inits import problems

ROOT = Path(__file__).resolve().parents[3]


def _package(root: Path, init: str, modules: dict[str, str]) -> None:
    src = root / "packages" / "xf-demo" / "src" / "xf_demo"
    src.mkdir(parents=True)
    (src / "__init__.py").write_text(init)
    for name, text in modules.items():
        (src / f"{name}.py").write_text(text)


def test_workspace_inits_are_consistent():
    assert problems(ROOT) == []


def test_good_package_passes(tmp_path):
    _package(
        tmp_path,
        "from typing import TYPE_CHECKING\nfrom xf_core.lazy import lazy_exports\nfrom xf_demo._a import A\n"
        '__all__ = ["A", "B"]\nif TYPE_CHECKING:\n    from ._b import B\n'
        '__getattr__, __dir__ = lazy_exports(__name__, {"B": "._b"})\n',
        {"_a": "class A: ...\n", "_b": "def B(): ...\n"},
    )
    assert problems(tmp_path) == []
    assert main(["inits", "--root", str(tmp_path)]) == 0


def test_dangling_and_missing_names_are_reported_with_file_and_line(tmp_path, capsys):
    _package(
        tmp_path,
        '"""doc"""\nfrom xf_core.lazy import lazy_exports\n_EXPORTS = {"B": "xf_demo._b", "C": "._nope", "D": "._b"}\n'
        "if TYPE_CHECKING:\n    from xf_demo._b import B\n    from ._nope import C\n    from ._b import D\n"
        '__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)\n__all__ = ["Ghost", *sorted(_EXPORTS)]\n',
        {"_b": "B = 1\n"},
    )
    found = problems(tmp_path)
    init = "packages/xf-demo/src/xf_demo/__init__.py:9"
    assert f"{init}: __all__ lists 'Ghost', which is neither defined nor lazily exported" in found
    assert f"{init}: 'C' points to ._nope, which does not exist" in found
    assert any(p.startswith(f"{init}: 'D' points to packages/xf-demo/src/xf_demo/_b.py") for p in found)
    assert len(found) == 3
    assert main(["inits", "--root", str(tmp_path)]) == 1
    assert "(fix: edit by hand, then xf-repotools check inits)" in capsys.readouterr().out


def test_a_lazily_exported_name_type_checkers_cannot_see_is_reported(tmp_path):
    _package(
        tmp_path,
        'from typing import TYPE_CHECKING\nfrom xf_core.lazy import lazy_exports\n__all__ = ["B", "C"]\n'
        "if TYPE_CHECKING:\n    from ._c import B\n"
        '__getattr__, __dir__ = lazy_exports(__name__, {"B": "._b", "C": "._c"})\n',
        {"_b": "B = 1\n", "_c": "C = 2\nB = 3\n"},
    )
    init = "packages/xf-demo/src/xf_demo/__init__.py:3"
    assert problems(tmp_path) == [
        f"{init}: 'B' is lazily exported from ._b but not imported from it under `if TYPE_CHECKING:`, so type "
        "checkers see it as Any; add `from ._b import B` there",
        f"{init}: 'C' is lazily exported from ._c but not imported from it under `if TYPE_CHECKING:`, so type "
        "checkers see it as Any; add `from ._c import C` there",
    ]
