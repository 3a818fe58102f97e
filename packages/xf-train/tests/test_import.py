import xf_train


def test_public_import_has_version():
    assert xf_train.__version__ == "0.1.0"
    assert "__version__" in xf_train.__all__
