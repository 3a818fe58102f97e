import xf_quant
from xf_core.testing import imported_modules


def test_public_import_has_version():
    assert xf_quant.__version__ == "0.2.1"
    assert "__version__" in xf_quant.__all__
    assert {"BitsAndBytesConfig", "BnbQuantizer", "dequantize_model"} <= set(xf_quant.__all__)


def test_import_is_cheap():
    loaded = imported_modules("import xf_quant")
    assert "torch" not in loaded and "bitsandbytes" not in loaded


def test_entry_point_registers_the_quantizer():
    from xf_load.quantizers import quantizer_class

    assert quantizer_class("bitsandbytes") is xf_quant.BnbQuantizer
