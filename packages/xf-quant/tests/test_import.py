import xf_quant


def test_public_import_has_version():
    assert xf_quant.__version__ == "0.1.0"
    assert "__version__" in xf_quant.__all__
