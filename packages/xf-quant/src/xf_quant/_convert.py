"""The bitsandbytes layer surgery: swap Linear layers for bnb ones on a meta model, fill them one checkpoint
tensor at a time (quantizing a float weight, or taking the bnb state tensors of a pre-quantized checkpoint),
turn them back into float layers, and count the bytes a model holds.

CPU repacking of 4-bit weights by bitsandbytes is turned off (see :func:`replace_with_bnb_linear`).

GPT-2's ``Conv1D`` (a Linear whose weight is stored transposed) is swapped too: its float weight is
transposed before quantizing, and a pre-quantized checkpoint already holds the Linear orientation, as
transformers writes it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from xf_core.logging import get_logger
from xf_quant._bnb import import_bnb
from xf_quant._config import BitsAndBytesConfig
from xf_quant._skip import matches_module
from xf_quant.errors import PrequantizedWeightsError

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = [
    "dequantize_model",
    "get_memory_footprint",
    "is_bnb_module",
    "linear_targets",
    "load_prequantized_weight",
    "quant_state_bytes",
    "quantize_weight",
    "replace_with_bnb_linear",
]

logger = get_logger(__name__)

_TRANSPOSED = "_xf_transposed"  # set on a bnb layer that replaced a Conv1D


def is_bnb_module(module: nn.Module) -> bool:
    """True for a bitsandbytes ``Linear4bit`` or ``Linear8bitLt`` (without importing bitsandbytes if it is
    not imported yet: a model can only hold bnb layers once it is)."""
    import sys

    bnb = sys.modules.get("bitsandbytes")
    return bnb is not None and isinstance(module, bnb.nn.Linear4bit | bnb.nn.Linear8bitLt)


def linear_targets(model: nn.Module, skip_modules: Iterable[str] = ()) -> list[tuple[str, nn.Module]]:
    """The ``nn.Linear`` and GPT-2 ``Conv1D`` modules of ``model`` not matched by ``skip_modules``: what
    :func:`replace_with_bnb_linear` replaces."""
    from torch import nn

    from xf_load.layers import Conv1D

    skip = list(skip_modules)
    return [
        (name, module)
        for name, module in model.named_modules()
        if type(module) in (nn.Linear, Conv1D) and not matches_module(name, skip)
    ]


def replace_with_bnb_linear(
    model: nn.Module,
    config: BitsAndBytesConfig,
    *,
    skip_modules: Iterable[str] = (),
    pre_quantized: bool = False,
) -> list[str]:
    """Replace each ``nn.Linear`` (and GPT-2 ``Conv1D``) of ``model`` not matched by ``skip_modules`` with an
    empty bnb layer on the meta device; return the replaced module names.

    With ``pre_quantized`` the empty weight already has the dtype of the stored quantized data, so a loader
    that checks dtypes accepts the checkpoint tensor.
    """
    import torch
    from torch import nn

    bnb = import_bnb()
    skip = list(skip_modules)
    targets = linear_targets(model, skip)
    for name, module in targets:
        transposed = type(module) is not nn.Linear
        in_features, out_features = (
            module.weight.shape if transposed else (module.in_features, module.out_features)
        )
        with torch.device("meta"):
            if config.load_in_8bit:
                new: nn.Module = bnb.nn.Linear8bitLt(
                    in_features,
                    out_features,
                    module.bias is not None,
                    has_fp16_weights=config.llm_int8_has_fp16_weight,
                    threshold=config.llm_int8_threshold,
                )
                if pre_quantized:
                    new.weight.data = new.weight.data.to(torch.int8)
            else:
                new = bnb.nn.Linear4bit(
                    in_features,
                    out_features,
                    module.bias is not None,
                    config.bnb_4bit_compute_dtype,
                    compress_statistics=config.bnb_4bit_use_double_quant,
                    quant_type=config.bnb_4bit_quant_type,
                    quant_storage=config.bnb_4bit_quant_storage,
                )
                if pre_quantized:
                    new.weight.data = new.weight.data.to(config.bnb_4bit_quant_storage)
                # bitsandbytes 0.50 repacks a 4-bit weight on its first CPU forward when the CPU has
                # AVX512-BF16: absmax is rounded to bfloat16, and the inverse that state_dict() runs leaves
                # absmax transposed (unless double-quantized), so a save after a forward is corrupt. Keep
                # the portable layout: outputs stay exact and saves stay loadable.
                new.support_avx512bf16_for_cpu = False
        setattr(new, _TRANSPOSED, transposed)
        new.requires_grad_(False)
        model.set_submodule(name, new)
    if not targets:
        logger.warning(
            "%s has no nn.Linear layer outside the skip list %s, so nothing was quantized.",
            type(model).__name__,
            skip,
        )
    return [name for name, _ in targets]


def quantize_weight(module: nn.Module, weight: torch.Tensor, *, device: torch.device | str = "cpu") -> None:
    """Quantize one float ``weight`` (as stored in the checkpoint) into bnb layer ``module`` on ``device``.

    Only this one tensor is ever held in full precision.
    """
    bnb = import_bnb()
    if getattr(module, _TRANSPOSED, False):
        weight = weight.T
    if isinstance(module, bnb.nn.Linear4bit):
        old = module.weight
        param = bnb.nn.Params4bit(
            weight.contiguous(),
            requires_grad=False,
            blocksize=old.blocksize,
            compress_statistics=old.compress_statistics,
            quant_type=old.quant_type,
            quant_storage=old.quant_storage,
            module=module,
        ).to(device)
    elif isinstance(module, bnb.nn.Linear8bitLt):
        param = bnb.nn.Int8Params(
            weight.contiguous().to("cpu"),
            requires_grad=False,
            has_fp16_weights=module.state.has_fp16_weights,
        ).to(device)
    else:
        raise TypeError(
            f"quantize_weight needs a bnb Linear4bit or Linear8bitLt, got {type(module).__name__}."
        )
    module.weight = param


def load_prequantized_weight(
    module: nn.Module,
    tensors: Mapping[str, torch.Tensor],
    *,
    prefix: str = "",
    device: torch.device | str = "cpu",
) -> None:
    """Load a bnb layer's weight from the state tensors of a quantized checkpoint.

    ``tensors`` maps the keys below the module (``"weight"``, ``"weight.absmax"``, ... or ``"weight"``,
    ``"SCB"``, ``"weight_format"``) to tensors; ``prefix`` (the module path) only makes errors name full keys.
    """
    import torch

    bnb = import_bnb()
    key = f"{prefix}." if prefix else ""
    if "weight" not in tensors:
        raise PrequantizedWeightsError(
            f"the checkpoint has no {key}weight for a quantized layer; re-save the quantized model.",
            key=f"{key}weight",
        )
    weight = tensors["weight"]
    if isinstance(module, bnb.nn.Linear4bit):
        stats = {k.removeprefix("weight."): v for k, v in tensors.items() if k.startswith("weight.")}
        if not any(k.startswith("quant_state.bitsandbytes__") for k in stats) or "absmax" not in stats:
            raise PrequantizedWeightsError(
                f"the checkpoint has {key}weight but not its 4-bit state ({key}weight.absmax, "
                f"{key}weight.quant_map, {key}weight.quant_state.bitsandbytes__nf4|fp4); it was not saved by "
                "bitsandbytes 4-bit, so load it without a quantization_config or re-save it quantized.",
                key=f"{key}weight.absmax",
            )
        param = bnb.nn.Params4bit.from_prequantized(
            data=weight,
            quantized_stats=stats,
            requires_grad=False,
            device=torch.device(device),
            module=module,
        )
    elif isinstance(module, bnb.nn.Linear8bitLt):
        if weight.dtype != torch.int8 or "SCB" not in tensors:
            raise PrequantizedWeightsError(
                f"{key}weight is {weight.dtype} without {key}SCB, not an LLM.int8() weight; load the checkpoint "
                "without a quantization_config or re-save it quantized.",
                key=f"{key}SCB",
            )
        fmt = tensors.get("weight_format")
        if fmt is not None and int(fmt) != 0:
            raise PrequantizedWeightsError(
                f"{key}weight_format={int(fmt)}: only the row-major int8 layout (0) is supported; re-save the "
                "model with bitsandbytes>=0.45.",
                key=f"{key}weight_format",
            )
        param = bnb.nn.Int8Params(weight, requires_grad=False, has_fp16_weights=False).to(device)
        param.CB = param.data
        param.SCB = tensors["SCB"].to(device)
    else:
        raise TypeError(
            f"load_prequantized_weight needs a bnb Linear4bit or Linear8bitLt, got {type(module).__name__}."
        )
    module.weight = param


def _dequantized_weight(module: nn.Module) -> torch.Tensor:
    """The float weight (Linear orientation) held by bnb layer ``module``."""
    import torch

    bnb = import_bnb()
    weight = module.weight
    if isinstance(module, bnb.nn.Linear4bit):
        data, state = weight.data, weight.quant_state
        if getattr(state, "packing_format_for_cpu", False):  # bnb repacks on its first CPU forward
            from bitsandbytes.functional import _convert_weight_packed_for_cpu_inverse

            data, state = _convert_weight_packed_for_cpu_inverse(data, state)
        return bnb.functional.dequantize_4bit(data, state)
    if weight.dtype != torch.int8:  # has_fp16_weights: never quantized
        return weight.data
    scb = getattr(weight, "SCB", None)
    if scb is None:
        scb = module.state.SCB
    return bnb.functional.int8_vectorwise_dequant(weight.data, scb)


def dequantize_model(model: nn.Module, *, dtype: torch.dtype | None = None) -> nn.Module:
    """Replace every bnb layer of ``model`` with the float layer it came from (``nn.Linear``, or GPT-2's
    ``Conv1D``), in ``dtype`` (default: the dtype of the model's unquantized floating parameters).

    A model without bnb layers is returned unchanged. The weights are the dequantized values, so outputs
    match the quantized model's, not the original float model's.
    """
    import torch
    from torch import nn

    layers = [(name, m) for name, m in model.named_modules() if is_bnb_module(m)]
    if not layers:
        logger.info("%s has no bitsandbytes layers; nothing to dequantize.", type(model).__name__)
        return model
    if dtype is None:
        floats = [p.dtype for _, p in model.named_parameters() if p.is_floating_point()]
        dtype = floats[0] if floats else torch.float32
    from xf_load.layers import Conv1D

    for name, module in layers:
        weight = _dequantized_weight(module).to(dtype)
        bias = module.bias
        device = weight.device
        if getattr(module, _TRANSPOSED, False):
            new: nn.Module = Conv1D(module.in_features, module.out_features).to(device=device, dtype=dtype)
            new.weight = nn.Parameter(weight.T.contiguous())
        else:
            new = nn.Linear(
                module.in_features, module.out_features, bias=bias is not None, device="meta", dtype=dtype
            )
            new.weight = nn.Parameter(weight)
        if bias is not None:
            new.bias = nn.Parameter(bias.data.to(dtype))
        model.set_submodule(name, new)
    for sub in model.modules():
        for attr in ("is_quantized", "is_loaded_in_4bit", "is_loaded_in_8bit"):
            if attr in vars(sub):
                setattr(sub, attr, False)
        for attr in ("quantization_method", "hf_quantizer"):
            vars(sub).pop(attr, None)
        config = getattr(sub, "config", None)
        if config is not None and getattr(config, "quantization_config", None) is not None:
            _drop_quantization_config(config)
    return model


def _drop_quantization_config(config: Any) -> None:
    if "quantization_config" in getattr(config, "__dataclass_fields__", {}):
        config.quantization_config = None
    else:
        try:
            delattr(config, "quantization_config")
        except AttributeError:
            extra = getattr(config, "extra", None)
            if isinstance(extra, dict):
                extra.pop("quantization_config", None)


def quant_state_bytes(module: nn.Module) -> int:
    """Bytes of the statistics a bnb layer keeps beside its weight (absmax, quant map, SCB)."""
    import torch

    weight = module.weight
    state = getattr(weight, "quant_state", None)
    tensors: list[torch.Tensor] = []
    if state is not None:
        tensors += [state.absmax, state.code]
        if state.state2 is not None:
            tensors += [state.state2.absmax, state.state2.code]
    scb = getattr(weight, "SCB", None)
    if scb is None and hasattr(module, "state"):
        scb = module.state.SCB
    if scb is not None:
        tensors.append(scb)
    return sum(t.nelement() * t.element_size() for t in tensors if isinstance(t, torch.Tensor))


def get_memory_footprint(model: nn.Module, *, return_buffers: bool = True) -> int:
    """Bytes held by ``model``: parameters (a 4-bit weight counts its packed bytes), buffers when
    ``return_buffers``, and the quantization statistics of bnb layers (absmax, quant map, SCB).

    transformers counts parameters and buffers only, so its number is slightly smaller for a quantized model.
    """
    total = sum(p.nelement() * p.element_size() for p in model.parameters())
    if return_buffers:
        total += sum(b.nelement() * b.element_size() for b in model.buffers())
    total += sum(quant_state_bytes(m) for m in model.modules() if is_bnb_module(m))
    return total
