import xf_core
from xf_core.testing import imported_modules


def test_import_xf_core_never_imports_torch():
    modules = imported_modules("import xf_core, xf_core.cli, xf_core.testing, xf_core.deps")
    assert "xf_core" in modules
    assert "torch" not in modules
    assert "huggingface_hub" not in modules  # loaded on the first hub lookup only


def test_public_api():
    for name in xf_core.__all__:
        assert hasattr(xf_core, name), name
