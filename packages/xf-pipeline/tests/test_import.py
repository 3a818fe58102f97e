import xf_pipeline


def test_public_import_has_version():
    assert xf_pipeline.__version__ == "0.3.1"
    assert "__version__" in xf_pipeline.__all__


def test_import_and_cli_module_stay_cheap():
    from xf_core.testing import imported_modules

    loaded = imported_modules("import xf_pipeline, xf_pipeline.cli; xf_pipeline.TASKS")
    assert "torch" not in loaded and "transformers" not in loaded and "xf_load" not in loaded
