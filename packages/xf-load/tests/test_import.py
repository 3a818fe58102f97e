import xf_load


def test_public_import_has_version():
    assert xf_load.__version__ == "0.3.1"
    assert "__version__" in xf_load.__all__


def test_import_does_not_import_torch():
    from xf_core.testing import imported_modules

    modules = imported_modules("import xf_load\nxf_load.AutoConfig, xf_load.PretrainedConfig")
    assert "xf_load.auto" in modules and "xf_load.configuration_utils" in modules
    assert "torch" not in modules  # torch loads with the first model family or model class
