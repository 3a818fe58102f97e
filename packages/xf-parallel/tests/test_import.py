import xf_parallel


def test_public_import_has_version():
    assert xf_parallel.__version__ == "0.2.1"
    assert "__version__" in xf_parallel.__all__
