"""The quantization seam: ``quant_method`` -> quantizer class, and the hooks ``from_pretrained`` calls.

xf-load never imports xf-quant. Quantizers come from the ``xf_load.quantizers`` entry-point group (read on
first use), so installing xf-quant is all it takes::

    [project.entry-points."xf_load.quantizers"]
    bitsandbytes = "xf_quant:BnbQuantizer"

``from_pretrained(..., quantization_config=...)`` (a dict with ``quant_method``, or an object with
``to_dict()``) and a config.json carrying ``quantization_config`` both go through :func:`get_quantizer`.
When config.json carries one the checkpoint is pre-quantized: that config wins, and the quantizer is built
with ``pre_quantized=True``. The hooks, in the order ``from_pretrained`` calls them:

1. ``update_dtype(dtype)``: the float dtype of what stays unquantized;
2. on the ``meta`` model, for ``device_map="auto"`` (and the other automatic maps) only:
   ``adjust_target_dtype(dtype)`` and ``get_special_dtypes_update(model, dtype)`` size the weights, so the
   map is computed for the quantized model;
3. ``validate_environment(device_map=, dtype=)``: ``device_map`` is the resolved ``{module: device}`` map
   (never "auto"), or None when none was asked for; raise when the quantization cannot run here;
4. ``preprocess_model(model)`` on the ``meta`` model (e.g. swap ``nn.Linear`` for quantized layers); then
   the loader sets ``model.hf_quantizer`` and asks ``extra_checkpoint_keys(model)``: the tensors a
   pre-quantized checkpoint holds that are not parameters or buffers (bnb's ``weight.absmax``, ``SCB``);
5. for each checkpoint tensor that is an extra key, or a parameter with ``param_needs_quantization(model,
   name)``: ``create_quantized_param(model, tensor, name, device)`` instead of the plain copy (no shape
   check: packed weights differ in shape);
6. for each quantized parameter the checkpoint did not have: ``initialize_missing_param(model, name,
   device)`` (by default an error naming it: a quantized weight has no random init);
7. ``postprocess_model(model)`` after loading and tying.

Afterwards the model delegates to its quantizer: ``model.is_quantized``, ``model.get_memory_footprint()``
(adds ``extra_memory_bytes(model)``), ``model.dequantize()`` (calls ``dequantize(model, dtype=)``), and
``save_pretrained`` (allowed when ``is_serializable``).
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
    """Base of every quantizer: the defaults do nothing, so a subclass overrides only what it needs.

    ``pre_quantized`` says whether the checkpoint already holds quantized weights (its config.json carries
    ``quantization_config``, which is then ``config``).
    """

    quant_method: ClassVar[str] = ""
    is_serializable: ClassVar[bool] = False

    def __init__(self, config: dict[str, Any], *, pre_quantized: bool = False) -> None:
        self.config: dict[str, Any] = dict(config)
        self.pre_quantized: bool = pre_quantized

    @property
    def config_dict(self) -> dict[str, Any] | None:
        """What is written as ``quantization_config`` in config.json."""
        return self.config

    # ---- 1-3. before the model is changed -------------------------------------------------------------------
    def update_dtype(self, dtype: torch.dtype) -> torch.dtype:
        return dtype

    def adjust_target_dtype(self, dtype: torch.dtype) -> Any:
        """The dtype (a ``torch.dtype`` or an ``accelerate.utils.CustomDtype``) that sizes a quantized weight
        for an automatic device map."""
        return dtype

    def get_special_dtypes_update(self, model: nn.Module, dtype: torch.dtype) -> dict[str, torch.dtype]:
        """``{parameter name: dtype}`` for the parameters of the ``meta`` model that stay unquantized, when
        :meth:`adjust_target_dtype` would size them wrongly."""
        return {}

    def validate_environment(self, *, device_map: dict[str, str] | None, dtype: torch.dtype) -> None:
        """Raise when the quantization cannot run here (missing library, no GPU, bad device_map)."""

    # ---- 4. on the meta model -------------------------------------------------------------------------------
    def preprocess_model(self, model: nn.Module) -> None:
        """Change the ``meta`` model before weights are loaded."""

    def extra_checkpoint_keys(self, model: nn.Module) -> set[str]:
        """Full names of the checkpoint tensors the quantized model takes besides its parameters and buffers
        (the quantization state of a pre-quantized checkpoint); each is handed to
        :meth:`create_quantized_param`."""
        return set()

    # ---- 5-6. tensor by tensor ------------------------------------------------------------------------------
    def param_needs_quantization(self, model: nn.Module, name: str) -> bool:
        return False

    def create_quantized_param(
        self, model: nn.Module, tensor: torch.Tensor, name: str, device: torch.device
    ) -> None:
        """Put checkpoint ``tensor`` into parameter (or extra key) ``name`` of ``model`` on ``device``,
        quantizing it."""
        raise NotImplementedError(
            f"{type(self).__name__} claims {name} but does not define create_quantized_param"
        )

    def initialize_missing_param(self, model: nn.Module, name: str, device: torch.device) -> None:
        """The checkpoint has no ``name``, a quantized parameter; the default refuses to make one up."""
        raise QuantizationError(
            f"the checkpoint has no {name}, which {self.quant_method or type(self).__name__} quantizes and cannot "
            "initialise; load a complete checkpoint.",
            key=name,
        )

    # ---- 7. after loading -----------------------------------------------------------------------------------
    def postprocess_model(self, model: nn.Module) -> None:
        """Last changes once every weight is loaded."""

    # ---- what the model delegates --------------------------------------------------------------------------
    def extra_memory_bytes(self, model: nn.Module) -> int:
        """Bytes the quantized layers hold outside parameters and buffers, for ``get_memory_footprint``."""
        return 0

    def dequantize(self, model: nn.Module, *, dtype: torch.dtype | None = None) -> nn.Module:
        """Turn ``model`` back into a float model in place (``model.dequantize()`` calls this)."""
        raise QuantizationError(
            f"{self.quant_method or type(self).__name__} cannot dequantize a model; reload the float checkpoint.",
            key="quantization_config.quant_method",
        )


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


def get_quantizer(quantization_config: Any, *, pre_quantized: bool = False) -> Quantizer | None:
    """A quantizer for ``quantization_config`` (a dict or an object with ``to_dict()``), or None for None.

    ``pre_quantized``: the config comes from the checkpoint's config.json (its weights are quantized).
    """
    if quantization_config is None:
        return None
    if isinstance(quantization_config, Quantizer):
        quantization_config.pre_quantized = pre_quantized
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
    cls = quantizer_class(quantization_config["quant_method"])
    return cls(quantization_config, pre_quantized=pre_quantized)
