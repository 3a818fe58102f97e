"""``BnbQuantizer``: the bitsandbytes quantizer xf-load's ``from_pretrained`` finds through the
``xf_load.quantizers`` entry point (``quant_method="bitsandbytes"``, 4-bit and 8-bit alike).

The hooks in the order ``from_pretrained`` calls them:

1. ``validate_environment``: bitsandbytes present and new enough (no import yet), no quantized module
   sent to the disk;
2. ``preprocess_model``: on the meta model, swap Linear layers for bnb ones, keeping the output head, the
   task head and the user's ``llm_int8_skip_modules`` in full precision. For a checkpoint that is already
   quantized (its config.json carries ``quantization_config``) the bnb state keys (``weight.absmax``, ``SCB``,
   ...) are given placeholder slots on each layer so the loader hands them over like any other tensor;
3. ``create_quantized_param``: quantize one float weight, or collect the state tensors of one layer and
   build its quantized weight once all are there; nothing else is ever held in full precision;
4. ``postprocess_model``: check every quantized layer is complete; mark the model (``is_quantized``,
   ``quantization_method``, ``get_memory_footprint()``, ``dequantize()``).
"""

from __future__ import annotations

import re
import types
from typing import TYPE_CHECKING, Any, ClassVar

from xf_core.logging import get_logger
from xf_load.quantizers import Quantizer
from xf_quant._bnb import check_bnb, import_bnb
from xf_quant._config import BitsAndBytesConfig
from xf_quant._convert import (
    dequantize_model,
    get_memory_footprint,
    is_bnb_module,
    load_prequantized_weight,
    quantize_weight,
    replace_with_bnb_linear,
)
from xf_quant._skip import default_skip_modules
from xf_quant.errors import DeviceMapError, PrequantizedWeightsError

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["BnbQuantizer"]

logger = get_logger(__name__)

_SLOT = "_xf_bnb_"  # prefix of the placeholder buffers that receive the bnb state tensors while loading


def _state_keys(config: BitsAndBytesConfig) -> list[str]:
    """Keys, below a layer, of the tensors a quantized checkpoint stores for that layer besides ``weight``."""
    if config.load_in_8bit:
        return ["SCB", "weight_format"]
    keys = [
        "weight.absmax",
        "weight.quant_map",
        f"weight.quant_state.bitsandbytes__{config.bnb_4bit_quant_type}",
    ]
    if config.bnb_4bit_use_double_quant:
        keys += ["weight.nested_absmax", "weight.nested_quant_map"]
    return keys


def _slot(key: str) -> str:
    return _SLOT + key.replace(".", "__")


class BnbQuantizer(Quantizer):
    """Loads a model with bitsandbytes 4-bit (NF4/FP4) or 8-bit (LLM.int8()) Linear layers.

    Built by xf-load from a ``quantization_config`` dict (or a :class:`BitsAndBytesConfig`); invalid values
    fail here, before any weight is read.
    """

    quant_method: ClassVar[str] = "bitsandbytes"
    is_serializable: ClassVar[bool] = True

    def __init__(self, config: dict[str, Any] | BitsAndBytesConfig) -> None:
        bnb_config = (
            config if isinstance(config, BitsAndBytesConfig) else BitsAndBytesConfig.from_dict(config)
        )
        super().__init__(bnb_config.to_dict())
        self.bnb_config = bnb_config
        self.pre_quantized = False
        self.modules_to_not_convert: list[str] = []
        self.dtype: torch.dtype | None = None
        self._offloaded: list[str] = []
        self._pending: dict[str, dict[str, torch.Tensor]] = {}
        self._expected: list[str] = []
        self._key_of_slot: dict[str, str] = {}

    # ---- 1. before the model exists -------------------------------------------------------------------------
    def validate_environment(self, *, device_map: Any, dtype: torch.dtype) -> None:
        check_bnb()
        self.dtype = dtype
        if not isinstance(device_map, dict):
            return
        placed = {name: str(device) for name, device in device_map.items()}
        on_disk = sorted(name or "''" for name, device in placed.items() if device == "disk")
        if on_disk and not self.bnb_config.llm_int8_enable_fp32_cpu_offload:
            raise DeviceMapError(
                f"device_map sends {', '.join(on_disk)} to 'disk', where bitsandbytes cannot run quantized layers; "
                "map them to 'cpu' or a GPU, or pass BitsAndBytesConfig(llm_int8_enable_fp32_cpu_offload=True) "
                "to keep the offloaded modules unquantized.",
                modules=on_disk,
            )
        if self.bnb_config.llm_int8_enable_fp32_cpu_offload:
            devices = {d for d in placed.values() if d not in ("cpu", "disk")}
            # With an accelerator in the map, the CPU and disk parts stay in full precision.
            self._offloaded = [n for n, d in placed.items() if d == "disk" or (d == "cpu" and devices)]

    # ---- 2. on the meta model -------------------------------------------------------------------------------
    def preprocess_model(self, model: nn.Module) -> None:
        import torch

        stored = getattr(getattr(model, "config", None), "quantization_config", None)
        if stored is not None:
            self._use_stored_config(stored)
        config = self.bnb_config
        # A checkpoint transformers quantized (no skip list stored) followed transformers' default.
        like_transformers = self.pre_quantized and config.llm_int8_skip_modules is None
        self.modules_to_not_convert = sorted(
            set(default_skip_modules(model, like_transformers=like_transformers))
            | set(config.llm_int8_skip_modules or ())
            | set(getattr(model, "_keep_in_fp32_modules", None) or ())
            | set(self._offloaded)
        )
        # config.json gets the full list, so xf and transformers (which reads a list instead of its default)
        # both rebuild exactly these layers from the saved checkpoint.
        self.config["llm_int8_skip_modules"] = list(self.modules_to_not_convert)
        replaced = replace_with_bnb_linear(
            model, config, skip_modules=self.modules_to_not_convert, pre_quantized=self.pre_quantized
        )
        if self.pre_quantized:
            keys = _state_keys(config)
            self._expected = ["weight", *keys]
            self._key_of_slot = {_slot(key): key for key in keys}
            for name in replaced:
                module = model.get_submodule(name)
                for key in keys:
                    module.register_buffer(_slot(key), torch.empty(0, device="meta"))
                module.reset_buffers = types.MethodType(_missing_state, module)
                module._xf_missing = {_slot(key): f"{name}.{key}" for key in keys}
            # Checkpoint key "...q_proj.weight.absmax" -> the slot "...q_proj._xf_bnb_weight__absmax".
            renames = dict(getattr(model, "_checkpoint_renames", {}) or {})
            for key in keys:
                renames[rf"\.{re.escape(key)}$"] = "." + _slot(key)
            model._checkpoint_renames = renames
        model.is_quantized = True
        model.quantization_method = self.quant_method
        logger.info(
            "bitsandbytes %s: %d Linear layers quantized", config.quantization_method(), len(replaced)
        )

    def _use_stored_config(self, stored: Any) -> None:
        """The checkpoint is already quantized: its own quantization_config says how to read it."""
        data = stored.to_dict() if hasattr(stored, "to_dict") else dict(stored)
        if data.get("quant_method") != self.quant_method:
            return
        on_disk = BitsAndBytesConfig.from_dict(data)
        self.pre_quantized = True
        if on_disk.quantization_method() != self.bnb_config.quantization_method() or (
            on_disk.bnb_4bit_use_double_quant != self.bnb_config.bnb_4bit_use_double_quant
        ):
            logger.warning(
                "the checkpoint is already quantized (%s); its quantization_config is used instead of the one "
                "passed to from_pretrained (%s).",
                on_disk.quantization_method(),
                self.bnb_config.quantization_method(),
            )
        self.bnb_config = on_disk
        self.config = on_disk.to_dict()

    # ---- 3. one checkpoint tensor at a time -----------------------------------------------------------------
    def param_needs_quantization(self, model: nn.Module, name: str) -> bool:
        module_name, _, attr = name.rpartition(".")
        if attr != "weight" and not attr.startswith(_SLOT):
            return False
        try:
            module = model.get_submodule(module_name)
        except AttributeError:
            return False
        return is_bnb_module(module)

    def create_quantized_param(
        self, model: nn.Module, tensor: torch.Tensor, name: str, device: torch.device
    ) -> None:
        from torch import nn

        module_name, _, attr = name.rpartition(".")
        module = model.get_submodule(module_name)
        if not self.pre_quantized:
            if tensor.is_floating_point() and self.dtype is not None:
                tensor = tensor.to(self.dtype)
            quantize_weight(module, tensor, device=device)
            return
        if attr in module._buffers:  # a state tensor arrived: its placeholder is done
            del module._buffers[attr]
        else:  # the packed weight: hold it off the meta device, so the loader never re-initialises it
            module._parameters["weight"] = nn.Parameter(tensor, requires_grad=False)
        pending = self._pending.setdefault(module_name, {})
        pending[self._key_of_slot.get(attr, attr)] = tensor
        if len(pending) < len(self._expected):
            return
        del self._pending[module_name]
        load_prequantized_weight(module, pending, prefix=module_name, device=device)
        del module.reset_buffers, module._xf_missing

    # ---- 4. after loading -----------------------------------------------------------------------------------
    def postprocess_model(self, model: nn.Module) -> None:
        if self._pending:
            module_name, have = next(iter(self._pending.items()))
            missing = sorted(set(self._expected) - set(have))
            raise PrequantizedWeightsError(
                f"the quantized checkpoint has no {module_name}.{missing[0]} (needed with "
                f"{', '.join(sorted(have))}); re-save the quantized model, or load the float checkpoint.",
                key=f"{module_name}.{missing[0]}",
            )
        if "_checkpoint_renames" in vars(model):
            del model._checkpoint_renames
        model.is_quantized = True
        model.quantization_method = self.quant_method
        model.is_loaded_in_4bit = self.bnb_config.load_in_4bit
        model.is_loaded_in_8bit = self.bnb_config.load_in_8bit
        model.get_memory_footprint = types.MethodType(get_memory_footprint, model)
        model.dequantize = types.MethodType(_dequantize, model)
        config = getattr(model, "config", None)
        if config is not None:
            config.quantization_config = self.config_dict
        import_bnb()  # already imported by the layer swap; keeps the version check in one place

    def dequantize(self, model: nn.Module, *, dtype: torch.dtype | None = None) -> nn.Module:
        """Turn ``model`` back into a float model (see :func:`xf_quant.dequantize_model`)."""
        dequantize_model(model, dtype=dtype)
        for attr in ("get_memory_footprint", "dequantize", "quantizer"):
            vars(model).pop(attr, None)
        return model


def _missing_state(module: nn.Module) -> None:
    """Called by the loader for a placeholder the checkpoint did not fill: name the missing key."""
    # Placeholders are removed as their tensors arrive: what is left is missing from the checkpoint.
    slots = [b for b in module._buffers if b.startswith(_SLOT)]
    key = module._xf_missing[slots[0]] if slots else "weight"
    raise PrequantizedWeightsError(
        f"the quantized checkpoint has no {key}; re-save the quantized model, or load the float checkpoint "
        "without a quantization_config.",
        key=key,
    )


def _dequantize(model: nn.Module, dtype: torch.dtype | None = None) -> nn.Module:
    """``model.dequantize()``: the float model back (weights are the dequantized values)."""
    quantizer = getattr(model, "quantizer", None)
    if isinstance(quantizer, BnbQuantizer):
        return quantizer.dequantize(model, dtype=dtype)
    dequantize_model(model, dtype=dtype)
    return model
