"""``BnbQuantizer``: the bitsandbytes quantizer xf-load's ``from_pretrained`` finds through the
``xf_load.quantizers`` entry point (``quant_method="bitsandbytes"``, 4-bit and 8-bit alike).

It implements xf-load's quantizer hooks (see :mod:`xf_load.quantizers`), in the order they are called:

1. ``adjust_target_dtype`` / ``get_special_dtypes_update``: size the layers for an automatic device map
   (4 or 8 bits a weight, the skipped modules in full precision);
2. ``validate_environment``: bitsandbytes present and new enough (no import yet), no quantized module
   sent to the disk by the (resolved) device map;
3. ``preprocess_model``: on the meta model, swap Linear layers for bnb ones, keeping the output head, the
   task head and the user's ``llm_int8_skip_modules`` in full precision;
4. ``extra_checkpoint_keys``: for a pre-quantized checkpoint, the bnb state keys of each layer
   (``weight.absmax``, ``SCB``, ...), which the loader then hands over like any other tensor;
5. ``create_quantized_param``: quantize one float weight, or collect the state tensors of one layer and
   build its quantized weight once all are there; nothing else is ever held in full precision;
   ``initialize_missing_param``: a layer the checkpoint lacks is an error naming the missing key;
6. ``postprocess_model``: check every quantized layer is complete;
7. ``extra_memory_bytes`` and ``dequantize``, which ``model.get_memory_footprint()`` and
   ``model.dequantize()`` call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from xf_core.logging import get_logger
from xf_load.quantizers import Quantizer
from xf_quant._bnb import check_bnb, import_bnb
from xf_quant._config import BitsAndBytesConfig
from xf_quant._convert import (
    dequantize_model,
    is_bnb_module,
    linear_targets,
    load_prequantized_weight,
    quant_state_bytes,
    quantize_weight,
    replace_with_bnb_linear,
)
from xf_quant._skip import default_skip_modules, unmatched_skip_modules
from xf_quant.errors import DeviceMapError, PrequantizedWeightsError

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["BnbQuantizer"]

logger = get_logger(__name__)


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


class BnbQuantizer(Quantizer):
    """Loads a model with bitsandbytes 4-bit (NF4/FP4) or 8-bit (LLM.int8()) Linear layers.

    Built by xf-load from a ``quantization_config`` dict (or a :class:`BitsAndBytesConfig`); invalid values
    fail here, before any weight is read. With ``pre_quantized`` (the checkpoint's config.json carries the
    config) the checkpoint's bnb state tensors are read as they are.
    """

    quant_method: ClassVar[str] = "bitsandbytes"
    is_serializable: ClassVar[bool] = True

    def __init__(self, config: dict[str, Any] | BitsAndBytesConfig, *, pre_quantized: bool = False) -> None:
        bnb_config = (
            config if isinstance(config, BitsAndBytesConfig) else BitsAndBytesConfig.from_dict(config)
        )
        super().__init__(bnb_config.to_dict(), pre_quantized=pre_quantized)
        self.bnb_config = bnb_config
        self.modules_to_not_convert: list[str] = []
        self.dtype: torch.dtype | None = None
        self._offloaded: list[str] = []
        self._replaced: list[str] = []
        self._pending: dict[str, dict[str, torch.Tensor]] = {}
        self._expected: list[str] = []
        self._state_key_of: dict[str, tuple[str, str]] = {}  # full key -> (layer, key below the layer)

    # ---- 1-2. before the model is changed -------------------------------------------------------------------
    def adjust_target_dtype(self, dtype: torch.dtype) -> Any:
        import torch
        from accelerate.utils import CustomDtype

        return torch.int8 if self.bnb_config.load_in_8bit else CustomDtype.INT4

    def get_special_dtypes_update(self, model: nn.Module, dtype: torch.dtype) -> dict[str, torch.dtype]:
        quantized = {f"{name}.weight" for name, _ in linear_targets(model, self._skip_modules(model))}
        return {name: dtype for name, _ in model.named_parameters() if name not in quantized}

    def validate_environment(self, *, device_map: dict[str, str] | None, dtype: torch.dtype) -> None:
        check_bnb()
        self.dtype = dtype
        if device_map is None:
            return
        on_disk = sorted(name or "''" for name, device in device_map.items() if device == "disk")
        if on_disk and not self.bnb_config.llm_int8_enable_fp32_cpu_offload:
            raise DeviceMapError(
                f"device_map sends {', '.join(on_disk)} to 'disk', where bitsandbytes cannot run quantized layers; "
                "map them to 'cpu' or a GPU, or pass BitsAndBytesConfig(llm_int8_enable_fp32_cpu_offload=True) "
                "to keep the offloaded modules unquantized.",
                modules=on_disk,
            )
        if self.bnb_config.llm_int8_enable_fp32_cpu_offload:
            devices = {d for d in device_map.values() if d not in ("cpu", "disk")}
            # With an accelerator in the map, the CPU and disk parts stay in full precision.
            self._offloaded = [n for n, d in device_map.items() if d == "disk" or (d == "cpu" and devices)]

    # ---- 3-4. on the meta model -----------------------------------------------------------------------------
    def _skip_modules(self, model: nn.Module) -> list[str]:
        config = self.bnb_config
        # A checkpoint transformers quantized (no skip list stored) followed transformers' default.
        like_transformers = self.pre_quantized and config.llm_int8_skip_modules is None
        return sorted(
            set(default_skip_modules(model, like_transformers=like_transformers))
            | set(config.llm_int8_skip_modules or ())
            | set(getattr(model, "_keep_in_fp32_modules", None) or ())
        )

    def preprocess_model(self, model: nn.Module) -> None:
        config = self.bnb_config
        for name in unmatched_skip_modules(model, config.llm_int8_skip_modules or ()):
            logger.warning(
                "llm_int8_skip_modules entry %r matches no module of %s, so it keeps nothing in full precision; "
                "check the spelling (entries are module paths or whole parts of them, e.g. 'lm_head', 'mlp', "
                "'layers.*.mlp').",
                name,
                type(model).__name__,
            )
        self.modules_to_not_convert = sorted(set(self._skip_modules(model)) | set(self._offloaded))
        # config.json gets the full list, so xf and transformers (which reads a list instead of its default)
        # both rebuild exactly these layers from the saved checkpoint.
        self.config["llm_int8_skip_modules"] = list(self.modules_to_not_convert)
        self._replaced = replace_with_bnb_linear(
            model, config, skip_modules=self.modules_to_not_convert, pre_quantized=self.pre_quantized
        )
        if self.pre_quantized:
            keys = _state_keys(config)
            self._expected = ["weight", *keys]
            self._state_key_of = {f"{layer}.{key}": (layer, key) for layer in self._replaced for key in keys}
        model.quantization_method = self.quant_method
        logger.info(
            "bitsandbytes %s: %d Linear layers quantized", config.quantization_method(), len(self._replaced)
        )

    def extra_checkpoint_keys(self, model: nn.Module) -> set[str]:
        return set(self._state_key_of)

    # ---- 5. one checkpoint tensor at a time -----------------------------------------------------------------
    def param_needs_quantization(self, model: nn.Module, name: str) -> bool:
        module_name, _, attr = name.rpartition(".")
        if attr != "weight":
            return False
        try:
            module = model.get_submodule(module_name)
        except AttributeError:
            return False
        return is_bnb_module(module)

    def create_quantized_param(
        self, model: nn.Module, tensor: torch.Tensor, name: str, device: torch.device
    ) -> None:
        layer, key = self._state_key_of.get(name) or (name.rpartition(".")[0], "weight")
        module = model.get_submodule(layer)
        if not self.pre_quantized:
            if tensor.is_floating_point() and self.dtype is not None:
                tensor = tensor.to(self.dtype)
            quantize_weight(module, tensor, device=device)
            return
        pending = self._pending.setdefault(layer, {})
        pending[key] = tensor
        if len(pending) < len(self._expected):
            return
        del self._pending[layer]
        load_prequantized_weight(module, pending, prefix=layer, device=device)

    def initialize_missing_param(self, model: nn.Module, name: str, device: torch.device) -> None:
        layer = name.rpartition(".")[0]
        have = self._pending.get(layer, {})
        missing = sorted(set(self._expected) - set(have)) if have else ["weight"]
        key = f"{layer}.{missing[0]}"
        how = "re-save the quantized model, or load the float checkpoint without a quantization_config"
        if not self.pre_quantized:
            how = "load a complete checkpoint (bitsandbytes cannot initialise a quantized layer)"
        raise PrequantizedWeightsError(f"the checkpoint has no {key}; {how}.", key=key)

    # ---- 6. after loading -----------------------------------------------------------------------------------
    def postprocess_model(self, model: nn.Module) -> None:
        if self._pending:
            module_name, have = next(iter(self._pending.items()))
            missing = sorted(set(self._expected) - set(have))
            raise PrequantizedWeightsError(
                f"the quantized checkpoint has no {module_name}.{missing[0]} (needed with "
                f"{', '.join(sorted(have))}); re-save the quantized model, or load the float checkpoint.",
                key=f"{module_name}.{missing[0]}",
            )
        model.is_loaded_in_4bit = self.bnb_config.load_in_4bit
        model.is_loaded_in_8bit = self.bnb_config.load_in_8bit
        config = getattr(model, "config", None)
        if config is not None:
            config.quantization_config = self.config_dict
        import_bnb()  # already imported by the layer swap; keeps the version check in one place

    # ---- 7. what the model delegates ------------------------------------------------------------------------
    def extra_memory_bytes(self, model: nn.Module) -> int:
        """The bnb statistics (absmax, quant map, SCB), which are not parameters or buffers."""
        return sum(quant_state_bytes(m) for m in model.modules() if is_bnb_module(m))

    def dequantize(self, model: nn.Module, *, dtype: torch.dtype | None = None) -> nn.Module:
        """Turn ``model`` back into a float model (see :func:`xf_quant.dequantize_model`)."""
        return dequantize_model(model, dtype=dtype)
