"""bitsandbytes 4-bit and 8-bit quantization for xf-load models.

``BitsAndBytesConfig`` (transformers' fields and JSON), the layer surgery behind it, and the quantizer that
xf-load's ``from_pretrained(..., quantization_config=...)`` finds through the ``xf_load.quantizers`` entry
point. ``import xf_quant`` is cheap: torch and bitsandbytes load on first use.
"""

from collections.abc import Callable
from importlib import metadata as _metadata
from typing import TYPE_CHECKING, Any

from xf_core.lazy import lazy_exports

__version__ = _metadata.version("xf-quant")

_EXPORTS = {
    "BitsAndBytesConfig": "xf_quant._config",
    "BnbQuantizer": "xf_quant._quantizer",
    "default_skip_modules": "xf_quant._skip",
    "matches_module": "xf_quant._skip",
    "modules_to_not_convert": "xf_quant._skip",
    "dequantize_model": "xf_quant._convert",
    "get_memory_footprint": "xf_quant._convert",
    "is_bnb_module": "xf_quant._convert",
    "load_prequantized_weight": "xf_quant._convert",
    "quantize_weight": "xf_quant._convert",
    "replace_with_bnb_linear": "xf_quant._convert",
}

__all__ = [
    "BitsAndBytesConfig",
    "BnbQuantizer",
    "__version__",
    "default_skip_modules",
    "dequantize_model",
    "get_memory_footprint",
    "is_bnb_module",
    "load_prequantized_weight",
    "matches_module",
    "modules_to_not_convert",
    "quantize_weight",
    "replace_with_bnb_linear",
]

if TYPE_CHECKING:  # the lazily exported names, as type checkers and IDEs should see them
    from xf_quant._config import BitsAndBytesConfig
    from xf_quant._convert import (
        dequantize_model,
        get_memory_footprint,
        is_bnb_module,
        load_prequantized_weight,
        quantize_weight,
        replace_with_bnb_linear,
    )
    from xf_quant._quantizer import BnbQuantizer
    from xf_quant._skip import default_skip_modules, matches_module, modules_to_not_convert

__getattr__: Callable[[str], Any]
__dir__: Callable[[], list[str]]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
