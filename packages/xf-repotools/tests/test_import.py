import xf_repotools


def test_public_import_has_version():
    assert xf_repotools.__version__ == "0.3.1"
    assert "__version__" in xf_repotools.__all__
