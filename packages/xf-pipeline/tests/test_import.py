import xf_pipeline


def test_public_import_has_version():
    assert xf_pipeline.__version__ == "0.1.0"
    assert "__version__" in xf_pipeline.__all__
