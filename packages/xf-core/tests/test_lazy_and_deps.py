import sys
import types

import pytest

from xf_core import MissingDependencyError, lazy_exports, require
from xf_core.deps import DEPS, check_version, check_versions
from xf_core.errors import XfDependencyVersionError, XfValueError


def test_require_missing_module_names_the_package():
    with pytest.raises(MissingDependencyError) as info:
        require("definitely_not_installed_xyz", purpose="the frobnicator")
    assert info.value.package == "definitely_not_installed_xyz"
    assert "pip install definitely_not_installed_xyz" in str(info.value) and "the frobnicator" in str(
        info.value
    )
    with pytest.raises(MissingDependencyError, match="pip install pyyaml"):
        sys.modules["yaml"] = None  # hide an installed module the way import machinery does
        try:
            require("yaml")
        finally:
            del sys.modules["yaml"]


def test_require_returns_the_module():
    assert require("json").dumps([1]) == "[1]"


def test_lazy_exports_import_on_first_use(monkeypatch):
    module = types.ModuleType("fakepkg_sub")
    module.Thing = object()
    loads = []

    def fake_import(name, package=None):
        loads.append((name, package))
        return module

    monkeypatch.setattr("importlib.import_module", fake_import)
    getattr_, dir_ = lazy_exports("fakepkg", {"Thing": "._sub"})
    assert loads == []
    assert getattr_("Thing") is module.Thing
    assert getattr_("Thing") is module.Thing
    assert loads == [("._sub", "fakepkg")]
    assert dir_() == ["Thing"]
    with pytest.raises(AttributeError, match="no attribute 'Other'"):
        getattr_("Other")


def test_deps_table_covers_the_declared_dependencies():
    assert DEPS["torch"].startswith(">=") and "tokenizers" in DEPS and "huggingface-hub" in DEPS
    assert not any(name.startswith("xf-") for name in DEPS)


def test_check_version_in_and_out_of_range():
    installed = check_version("packaging")
    assert installed
    with pytest.raises(XfDependencyVersionError) as info:
        check_version("packaging", "<1")
    assert info.value.installed == installed and "packaging<1" in str(info.value)
    with pytest.raises(MissingDependencyError, match="pip install 'not-a-real-dist-xyz>=1'"):
        check_version("not-a-real-dist-xyz", ">=1")
    with pytest.raises(XfValueError, match="not a dependency of any xf package"):
        check_version("not-a-real-dist-xyz")
    assert "tqdm" in check_versions()
