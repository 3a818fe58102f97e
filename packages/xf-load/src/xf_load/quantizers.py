"""The quantization seam: ``quant_method`` -> quantizer class, and the hooks ``from_pretrained`` calls.

xf-load never imports xf-quant. Quantizers come from the ``xf_load.quantizers`` entry-point group (read on
first use), so installing xf-quant is all it takes::

    [project.entry-points."xf_load.quantizers"]
    bitsandbytes = "xf_quant:BnbQuantizer"

``from_pretrained(..., quantization_config=...)`` (a dict with ``quant_method``, or an object with
``to_dict()``) and a config.json carrying ``quantization_config`` both go through :func:`get_quantizer`.
The hooks, in the order ``from_pretrained`` calls them:

1. ``update_dtype(dtype)`` and ``validate_environment(device_map=, dtype=)`` before the model is built;
2. ``preprocess_model(model)`` on the ``meta`` model (e.g. swap ``nn.Linear`` for quantized layers);
3. for each checkpoint tensor with ``param_needs_quantization(model, name)``: ``create_quantized_param(model,
   tensor, name, device)`` instead of the plain copy (no shape check: packed weights differ in shape);
4. ``postprocess_model(model)`` after loading and tying.

``is_serializable`` says whether ``save_pretrained`` may write the quantized weights.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any, ClassVar

import torch
from torch import nn

from xf_load.errors import QuantizationError

__all__ = ["ENTRY_POINT_GROUP", "QUANTIZERS", "Quantizer", "get_quantizer", "quantizer_class"]

ENTRY_POINT_GROUP = "xf_load.quantizers"
# quant_method -> quantizer class. Filled from the entry points on first use; tests may add to it.
QUANTIZERS: dict[str, type[Quantizer]] = {}
_loaded_entry_points = False


class Quantizer:
    """Base of every quantizer: the defaults do nothing, so a subclass overrides only what it needs."""

    quant_method: ClassVar[str] = ""
    is_serializable: ClassVar[bool] = False

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = dict(config)

    @property
    def config_dict(self) -> dict[str, Any] | None:
        """What is written as ``quantization_config`` in config.json."""
        return self.config

    def update_dtype(self, dtype: torch.dtype) -> torch.dtype:
        return dtype

    def validate_environment(self, *, device_map: Any, dtype: torch.dtype) -> None:
        """Raise when the quantization cannot run here (missing library, no GPU, bad device_map)."""

    def preprocess_model(self, model: nn.Module) -> None:
        """Change the ``meta`` model before weights are loaded."""

    def param_needs_quantization(self, model: nn.Module, name: str) -> bool:
        return False

    def create_quantized_param(
        self, model: nn.Module, tensor: torch.Tensor, name: str, device: torch.device
    ) -> None:
        """Put checkpoint ``tensor`` into parameter ``name`` of ``model`` on ``device``, quantizing it."""
        raise NotImplementedError(
            f"{type(self).__name__} claims {name} but does not define create_quantized_param"
        )

    def postprocess_model(self, model: nn.Module) -> None:
        """Last changes once every weight is loaded."""


def _load_entry_points() -> None:
    global _loaded_entry_points
    if _loaded_entry_points:
        return
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name not in QUANTIZERS:
            QUANTIZERS[ep.name] = ep.load()
    _loaded_entry_points = True


def quantizer_class(quant_method: str) -> type[Quantizer]:
    """The quantizer registered for ``quant_method``; an unknown method names ``pip install xf-quant``."""
    if quant_method not in QUANTIZERS:
        _load_entry_points()
    try:
        return QUANTIZERS[quant_method]
    except KeyError:
        known = ", ".join(sorted(QUANTIZERS)) or "none installed"
        raise QuantizationError(
            f"quantization_config.quant_method={quant_method!r} has no quantizer (known: {known}); quantizers come "
            "from xf-quant: `pip install xf-quant`.",
            key="quantization_config.quant_method",
        ) from None


def get_quantizer(quantization_config: Any) -> Quantizer | None:
    """A quantizer for ``quantization_config`` (a dict or an object with ``to_dict()``), or None for None."""
    if quantization_config is None:
        return None
    if isinstance(quantization_config, Quantizer):
        return quantization_config
    if hasattr(quantization_config, "to_dict"):
        quantization_config = quantization_config.to_dict()
    if not isinstance(quantization_config, dict) or not isinstance(
        quantization_config.get("quant_method"), str
    ):
        raise QuantizationError(
            f"quantization_config must be a dict with a 'quant_method' string, got {quantization_config!r}.",
            key="quantization_config",
        )
    return quantizer_class(quantization_config["quant_method"])(quantization_config)
