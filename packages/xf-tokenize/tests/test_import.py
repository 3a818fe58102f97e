import xf_tokenize


def test_public_import_has_version():
    assert xf_tokenize.__version__ == "0.1.0"
    assert "__version__" in xf_tokenize.__all__
