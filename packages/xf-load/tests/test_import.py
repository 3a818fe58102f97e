import xf_load


def test_public_import_has_version():
    assert xf_load.__version__ == "0.1.0"
    assert "__version__" in xf_load.__all__
