"""``from_pretrained``: config -> checkpoint files -> model on ``meta`` -> each tensor viewed in the
memory-mapped file (stored dtype wanted, on the CPU) or read once, straight into its final dtype and device ->
missing weights initialised -> tied -> dispatched -> ``eval()``.

No weight is randomly initialised and then overwritten, and no second copy of the state dict exists: peak
memory is the model plus one tensor in flight, and a model loaded in its stored dtype on the CPU costs no
memory of its own until its pages are touched (see :mod:`xf_load._checkpoint`; ``disable_mmap=True`` reads
every tensor instead). With a tensor-parallel hook, only each rank's part of a tensor is taken from the file.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import os
import re
import tempfile
from collections.abc import Mapping, Set
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from xf_core import HubOptions, check_interrupted_save, is_local_path
from xf_core.errors import XfConfigError
from xf_core.logging import get_logger
from xf_load._checkpoint import Checkpoint, TensorInfo, find_checkpoint
from xf_load.configuration_utils import PretrainedConfig, dtype_to_str
from xf_load.errors import DtypeMismatchError, ShapeMismatchError
from xf_load.initialization import skip_torch_init
from xf_load.options import AUTO_DEVICE_MAPS as _AUTO_MAPS
from xf_load.options import LoadOptions, TensorParallelHook, check_device, tensor_parallel_hook
from xf_load.quantizers import Quantizer, get_quantizer

__all__ = ["LoadingInfo", "load_pretrained", "resolve_dtype"]

logger = get_logger(__name__)


def resolve_dtype(
    dtype: torch.dtype | str | None, *, config: PretrainedConfig, checkpoint: Checkpoint | None
) -> torch.dtype:
    """transformers' rule: "auto" -> ``config.dtype``, else the checkpoint's first floating dtype, else
    float32; a string names a torch dtype; None -> float32."""
    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "auto":
        if config.dtype is not None:
            return getattr(torch, config.dtype)
        if checkpoint is not None:
            meta_dtype = checkpoint.index_metadata.get("dtype")
            if isinstance(meta_dtype, str):
                return getattr(torch, dtype_to_str(meta_dtype, key="metadata.dtype"))
            found = checkpoint.first_float_dtype()
            if found is not None:
                return found
        return torch.float32
    if not isinstance(dtype, str):
        raise XfConfigError(f"dtype={dtype!r} is not a torch.dtype, a dtype name or 'auto'.", key="dtype")
    return getattr(torch, dtype_to_str(dtype))


@dataclass
class LoadingInfo:
    """What a load did; ``bytes_read`` is the bytes of tensor data taken from the checkpoint, viewed in the
    mapping or read (with a tensor-parallel hook: only this rank's slices)."""

    missing_keys: list[str] = field(default_factory=list)
    unexpected_keys: list[str] = field(default_factory=list)
    mismatched_keys: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    bytes_read: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "missing_keys": self.missing_keys,
            "unexpected_keys": self.unexpected_keys,
            "mismatched_keys": self.mismatched_keys,
            "bytes_read": self.bytes_read,
        }


def load_pretrained(
    cls: type,
    path: str | os.PathLike[str],
    *,
    config: PretrainedConfig | str | os.PathLike[str] | None,
    hub: HubOptions,
    load: LoadOptions,
    output_loading_info: bool = False,
    config_overrides: dict[str, Any] | None = None,
) -> Any:
    """``cls.from_pretrained`` once its keywords are gathered into ``hub`` and ``load``."""
    tensor_parallel = tensor_parallel_hook(load)  # before any file is read: fails when none is installed
    if is_local_path(path):
        check_interrupted_save(path)  # a save killed between its two renames: say where the previous one is
    config = _resolve_config(cls, path, config, dict(config_overrides or {}), hub)
    if load.attn_implementation is not None:
        config.attn_implementation = load.attn_implementation
        config.__post_init__()
    quantizer = _quantizer(config, load)

    checkpoint = find_checkpoint(
        path, hub=hub, variant=load.variant, use_safetensors=load.use_safetensors, mmap=not load.disable_mmap
    )
    try:
        infos = checkpoint.infos()
        torch_dtype = resolve_dtype(load.dtype, config=config, checkpoint=checkpoint)
        if quantizer is not None:
            torch_dtype = quantizer.update_dtype(torch_dtype)
        config.dtype = dtype_to_str(torch_dtype)

        with torch.device("meta"), skip_torch_init():
            model = cls(config)
        if tensor_parallel is not None:
            tensor_parallel.prepare(model)  # check the plan fits before any weight is read
        devices = _device_plan(
            model, load.device_map, max_memory=load.max_memory, dtype=torch_dtype, quantizer=quantizer
        )
        extra_keys: set[str] = set()
        if quantizer is not None:
            resolved = None if load.device_map is None else dict(devices.mapping)
            quantizer.validate_environment(device_map=resolved, dtype=torch_dtype)
            quantizer.preprocess_model(model)
            model.hf_quantizer = quantizer
            if quantizer.config_dict is not None:
                config.quantization_config = quantizer.config_dict
            extra_keys = quantizer.extra_checkpoint_keys(model)

        plan, info = _match_keys(model, infos, extra_keys=extra_keys)
        slices = _local_slices(tensor_parallel, plan, infos)
        offload_dir = _offload_dir(devices, load.offload_folder)
        offload_index: dict[str, Any] = {}
        params = dict(model.named_parameters(remove_duplicate=False))
        buffers = dict(model.named_buffers(remove_duplicate=False))

        for name, ckpt_key in plan.items():
            if name in extra_keys:  # a quantization state tensor (absmax, SCB, ...): the quantizer takes it
                assert quantizer is not None
                quantizer.create_quantized_param(
                    model, checkpoint.read(ckpt_key), name, torch.device(devices(name))
                )
                continue
            current = params.get(name, buffers.get(name))
            found = infos[ckpt_key]
            quantized = quantizer is not None and quantizer.param_needs_quantization(model, name)
            if not quantized and tuple(current.shape) != found.shape:
                if not load.ignore_mismatched_sizes:
                    file = str(checkpoint.key_to_file.get(ckpt_key, checkpoint.files[0]))
                    raise ShapeMismatchError(
                        f"{ckpt_key!r} in {file} has shape {list(found.shape)} but the model's {name} has shape "
                        f"{list(current.shape)}; pass ignore_mismatched_sizes=True to re-initialise it (e.g. a new "
                        "classification head), or fix the config.",
                        key=ckpt_key,
                        file=file,
                        expected=tuple(current.shape),
                        found=found.shape,
                    )
                info.mismatched_keys.append((ckpt_key, found.shape, tuple(current.shape)))
                continue
            if (
                not quantized
                and name in params
                and current.is_floating_point()
                and not found.dtype.is_floating_point
            ):
                file = str(checkpoint.key_to_file.get(ckpt_key, checkpoint.files[0]))
                raise DtypeMismatchError(
                    f"{ckpt_key!r} in {file} is stored as {str(found.dtype).removeprefix('torch.')} but the model's "
                    f"{name} is a floating-point parameter ({str(current.dtype).removeprefix('torch.')}); the file "
                    "was written wrongly or belongs to a quantized model (then its config.json needs the "
                    "quantization_config). Re-save or re-download the checkpoint.",
                    key=ckpt_key,
                    file=file,
                    expected=current.dtype,
                    found=found.dtype,
                )
            device = devices(name)
            target = torch_dtype if current.is_floating_point() and found.dtype.is_floating_point else None
            if device == "disk":
                from accelerate.utils import offload_weight

                tensor = checkpoint.read(ckpt_key, dtype=target)
                offload_index = offload_weight(tensor, name, offload_dir, index=offload_index)
                continue
            if quantized:
                assert quantizer is not None
                tensor = checkpoint.read(ckpt_key)
                quantizer.create_quantized_param(model, tensor, name, torch.device(device))
                continue
            tensor = checkpoint.read(ckpt_key, dtype=target, device=device, slices=slices.get(name))
            _set_tensor(model, name, tensor, is_param=name in params)
    finally:
        checkpoint.close()

    _initialize_missing(model, plan, checkpoint, devices, torch_dtype, info, quantizer, slices)
    info.bytes_read = checkpoint.bytes_read
    _materialize_buffers(model, devices)
    model.tie_weights()
    if offload_index:
        from accelerate.utils import save_offload_index

        save_offload_index(offload_index, offload_dir)
    if load.device_map is not None:
        if _needs_dispatch(devices):
            _dispatch(model, devices, offload_dir)
        model.hf_device_map = dict(devices.mapping)
    if quantizer is not None:
        quantizer.postprocess_model(model)
    if tensor_parallel is not None:
        tensor_parallel.apply(model)
    model.eval()
    model.name_or_path = str(path)
    config.name_or_path = str(path)
    _attach_generation_config(model, path, hub)
    _log_info(cls, info)
    if output_loading_info:
        return model, info.as_dict()
    return model


def _local_slices(
    hook: TensorParallelHook | None, plan: dict[str, str], infos: dict[str, TensorInfo]
) -> dict[str, tuple[slice, ...]]:
    """``{model key: this rank's part}`` for every tensor the tensor-parallel hook wants only part of."""
    if hook is None:
        return {}
    out = {}
    for name, ckpt_key in plan.items():
        part = hook.local_slice(name, infos[ckpt_key].shape)
        if part is not None:
            out[name] = part
    return out


def _quantizer(config: PretrainedConfig, load: LoadOptions) -> Quantizer | None:
    """The quantizer for this load, told whether the checkpoint is already quantized.

    A checkpoint whose config.json carries ``quantization_config`` is pre-quantized: that config says how
    to read it and wins over one passed to ``from_pretrained`` (as in transformers).
    """
    stored = config.quantization_config
    if stored is None:
        return get_quantizer(load.quantization_config, pre_quantized=False)
    if load.quantization_config is not None:
        logger.warning(
            "the checkpoint is already quantized; the quantization_config in its config.json (%s) is used "
            "instead of the one passed to from_pretrained.",
            stored.get("quant_method") if isinstance(stored, dict) else stored,
        )
    return get_quantizer(stored, pre_quantized=True)


# transformers arguments that have nothing to do here (xf always loads with low memory, runs no remote code).
_IGNORED_KWARGS = (
    "low_cpu_mem_usage",
    "trust_remote_code",
    "_fast_init",
    "resume_download",
    "force_download",
)


def _check_overrides(config_class: type[PretrainedConfig], overrides: dict[str, Any]) -> None:
    for name in _IGNORED_KWARGS:
        if name in overrides:
            logger.info("from_pretrained: ignoring %s=%r", name, overrides.pop(name))
    known = set(config_class._field_names()) | set(config_class.aliases) | {"num_labels"}
    unknown = sorted(set(overrides) - known)
    if unknown:
        options = known | set(_LOAD_KEYWORDS)
        close = difflib.get_close_matches(unknown[0], sorted(options), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise XfConfigError(
            f"from_pretrained got unexpected keyword argument(s) {', '.join(unknown)}{hint}: they are neither "
            f"loading options nor fields of {config_class.__name__}; check the spelling.",
            key=unknown[0],
        )


# The loading keywords of from_pretrained (for spelling hints).
_LOAD_KEYWORDS = (
    *(f.name for f in dataclasses.fields(LoadOptions)),
    *(f.name for f in dataclasses.fields(HubOptions)),
    "config",
    "output_loading_info",
    "torch_dtype",
)


def _resolve_config(
    cls: type,
    path: str | os.PathLike[str],
    config: Any,
    overrides: dict[str, Any],
    hub: HubOptions,
) -> PretrainedConfig:
    _check_overrides(cls.config_class, overrides)
    if config is None:
        return cls.config_class.from_pretrained(path, hub=hub, **overrides)
    if isinstance(config, str | os.PathLike):
        return cls.config_class.from_pretrained(config, hub=hub, **overrides)
    if not isinstance(config, PretrainedConfig):
        raise TypeError(f"config must be a PretrainedConfig or a path, not {type(config).__name__}.")
    return config.copy(**overrides) if overrides else copy.deepcopy(config)


# ---- keys ---------------------------------------------------------------------------------------------------
def _renamed(key: str, renames: dict[str, str]) -> str:
    for pattern, replacement in renames.items():
        key = re.sub(pattern, replacement, key)
    return key


def _match_keys(
    model: nn.Module, infos: dict[str, TensorInfo], *, extra_keys: Set[str] = frozenset()
) -> tuple[dict[str, str], LoadingInfo]:
    """``{model key: checkpoint key}`` plus what is missing and unexpected.

    A checkpoint key matches as is, with the base-model prefix added (a base checkpoint into a head model),
    or with it stripped (a head checkpoint into a base model), after ``_checkpoint_renames``. For tied
    pairs the source is loaded from whichever of the two the checkpoint has. ``extra_keys`` are tensors the
    model expects that are neither parameters nor buffers (a quantizer's state: ``weight.absmax``, ``SCB``).
    """
    prefix = model.base_model_prefix
    tied = model._tie_pairs()
    state: Set[str] = model.state_dict(keep_vars=True).keys() | extra_keys
    wanted = {k for k in state if k not in tied}
    plan: dict[str, str] = {}
    unexpected: list[str] = []
    for ckpt_key in infos:
        key = _renamed(ckpt_key, model._checkpoint_renames)
        candidates = [key]
        if prefix:
            candidates += [f"{prefix}.{key}", key.removeprefix(f"{prefix}.")]
        match = next((c for c in candidates if c in state), None)
        if match is None:
            unexpected.append(ckpt_key)
        elif match in tied:
            source = tied[match]
            plan.setdefault(source, ckpt_key)  # only the tied copy is stored: load it into the source
        else:
            plan[match] = ckpt_key  # the source itself wins over a tied copy
    ignore_unexpected = [re.compile(p) for p in model._keys_to_ignore_on_load_unexpected]
    ignore_missing = [re.compile(p) for p in model._keys_to_ignore_on_load_missing]
    non_persistent = _non_persistent_buffers(model)
    missing = sorted(
        k
        for k in wanted
        if k not in plan and k not in non_persistent and not any(p.search(k) for p in ignore_missing)
    )
    unexpected = [k for k in unexpected if not any(p.search(k) for p in ignore_unexpected)]
    return plan, LoadingInfo(missing_keys=missing, unexpected_keys=unexpected)


def _non_persistent_buffers(model: nn.Module) -> set[str]:
    out = set()
    for mod_name, module in model.named_modules():
        for b in module._non_persistent_buffers_set:
            out.add(f"{mod_name}.{b}" if mod_name else b)
    return out


def _set_tensor(model: nn.Module, name: str, tensor: torch.Tensor, *, is_param: bool) -> None:
    mod_name, _, attr = name.rpartition(".")
    module = model.get_submodule(mod_name)
    if is_param:
        old = module._parameters[attr]
        requires_grad = old.requires_grad and tensor.is_floating_point()
        module._parameters[attr] = nn.Parameter(tensor, requires_grad=requires_grad)
    else:
        module._buffers[attr] = tensor


# ---- devices ------------------------------------------------------------------------------------------------
class _Devices:
    """Parameter name -> device string ("cpu", "cuda:0", "disk") from a module-prefix map."""

    def __init__(self, mapping: dict[str, str]) -> None:
        self.mapping = mapping
        self._prefixes = sorted(mapping, key=len, reverse=True)

    def __call__(self, name: str) -> str:
        for prefix in self._prefixes:
            if prefix == "" or name == prefix or name.startswith(prefix + "."):
                return self.mapping[prefix]
        raise XfConfigError(
            f"device_map does not place {name!r}; add an entry for it or one of its parent modules ('' for all).",
            key="device_map",
        )

    def get(self, name: str, *, default: str) -> str:
        """The device of ``name``, or ``default`` when the map does not place it (buffers need no entry)."""
        try:
            return self(name)
        except XfConfigError:
            return default

    def main(self) -> str:
        """Where computation runs: the first device that is not an offload target."""
        return next((d for d in self.mapping.values() if d not in ("cpu", "disk")), "cpu")

    def values(self) -> set[str]:
        return set(self.mapping.values())


def _device_str(device: Any) -> str:
    if device == "disk":
        return device
    return check_device(device, key="device_map")


def _device_plan(
    model: nn.Module,
    device_map: Any,
    *,
    max_memory: Mapping[Any, Any] | None,
    dtype: torch.dtype,
    quantizer: Quantizer | None = None,
) -> _Devices:
    """Where each parameter goes. An automatic map is computed on the ``meta`` model before any quantizer
    changes it (so the quantizer is shown the real map); the quantizer says how big its weights will be."""
    if device_map is None:
        return _Devices({"": "cpu"})
    if isinstance(device_map, str) and device_map in _AUTO_MAPS:
        from accelerate import infer_auto_device_map
        from accelerate.utils import get_balanced_memory

        no_split = list(model._no_split_modules)
        target: Any = dtype
        special: dict[str, Any] = {}
        if quantizer is not None:
            target = quantizer.adjust_target_dtype(dtype)
            special = quantizer.get_special_dtypes_update(model, dtype)
        memory = dict(max_memory) if max_memory is not None else None
        if device_map != "sequential":
            memory = get_balanced_memory(
                model,
                max_memory=memory,
                no_split_module_classes=no_split,
                dtype=target,
                special_dtypes=special,
                low_zero=device_map == "balanced_low_0",
            )
        inferred = infer_auto_device_map(
            model, max_memory=memory, no_split_module_classes=no_split, dtype=target, special_dtypes=special
        )
        return _Devices({k: _device_str(v) for k, v in inferred.items()})
    if isinstance(device_map, dict):
        return _Devices({k: _device_str(v) for k, v in device_map.items()})
    if isinstance(device_map, str | int | torch.device):
        return _Devices({"": _device_str(device_map)})
    raise XfConfigError(
        f"device_map={device_map!r} is not supported; pass a device ('cpu', 'cuda:0'), a dict "
        "{module name: device}, or one of " + ", ".join(_AUTO_MAPS) + ".",
        key="device_map",
    )


def _offload_dir(devices: _Devices, offload_folder: str | os.PathLike[str] | None) -> str | None:
    if "disk" not in devices.values():
        return None
    if offload_folder is None:
        return tempfile.mkdtemp(prefix="xf-offload-")
    os.makedirs(offload_folder, exist_ok=True)
    return str(offload_folder)


def _needs_dispatch(devices: _Devices) -> bool:
    return len(devices.values()) > 1 or "disk" in devices.values()


def _dispatch(model: nn.Module, devices: _Devices, offload_dir: str | None) -> None:
    from accelerate import dispatch_model

    dispatch_model(model, device_map=dict(devices.mapping), offload_dir=offload_dir)


# ---- what the checkpoint did not have -------------------------------------------------------------------------
@torch.no_grad()
def _initialize_missing(
    model: nn.Module,
    plan: dict[str, str],
    checkpoint: Checkpoint,
    devices: _Devices,
    dtype: torch.dtype,
    info: LoadingInfo,
    quantizer: Quantizer | None,
    slices: dict[str, tuple[slice, ...]],
) -> None:
    """Materialise every parameter still on ``meta`` and run the family's ``_init_weights`` on its module;
    weights of the same module that were loaded are read again afterwards. A quantized parameter has no
    init: the quantizer says what to do (by default, name the missing key)."""
    owners: dict[str, nn.Module] = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        if param.device.type == "meta" and devices(name) != "disk":
            if quantizer is not None and quantizer.param_needs_quantization(model, name):
                quantizer.initialize_missing_param(model, name, torch.device(devices(name)))
                continue
            mod_name, _, attr = name.rpartition(".")
            module = model.get_submodule(mod_name)
            new = torch.empty(
                param.shape, dtype=dtype if param.is_floating_point() else param.dtype, device=devices(name)
            )
            module._parameters[attr] = nn.Parameter(new, requires_grad=param.requires_grad)
            owners[mod_name] = module
    if not owners:
        return
    for module in owners.values():
        model._init_weights(module)
    mismatched = {k for k, _, _ in info.mismatched_keys}
    state = model.state_dict(keep_vars=True)
    for name, ckpt_key in plan.items():
        if name.rpartition(".")[0] not in owners or ckpt_key in mismatched or name not in state:
            continue
        current = state[name]
        dtype = current.dtype if current.is_floating_point() else None
        current.copy_(checkpoint.read(ckpt_key, dtype=dtype, slices=slices.get(name)))
    checkpoint.close()


def _materialize_buffers(model: nn.Module, devices: _Devices) -> None:
    """Computed buffers: move them to their module's device; recompute any left on ``meta``."""
    for mod_name, module in model.named_modules():
        for name, buf in list(module._buffers.items()):
            if buf is None:
                continue
            full = f"{mod_name}.{name}" if mod_name else name
            device = devices.get(full, default=devices.main())
            if buf.device.type == "meta":
                if not hasattr(module, "reset_buffers"):
                    raise RuntimeError(
                        f"buffer {full} is neither in the checkpoint nor computable; give {type(module).__name__} a "
                        "reset_buffers() method or create the buffer on the CPU."
                    )
                module._buffers[name] = torch.empty(buf.shape, dtype=buf.dtype, device="cpu")
                module.reset_buffers()
                buf = module._buffers[name]
            if device != "disk" and str(buf.device) != device:
                module._buffers[name] = buf.to(device)


def _attach_generation_config(model: nn.Module, path: str | os.PathLike[str], hub: HubOptions) -> None:
    from xf_load.generation import GenerationConfig

    if not model.can_generate():
        return
    try:
        model.generation_config = GenerationConfig.from_pretrained(path, hub=hub)
    except FileNotFoundError:
        model.generation_config = GenerationConfig.from_model_config(model.config)


def _log_info(cls: type, info: LoadingInfo) -> None:
    if info.missing_keys:
        logger.warning(
            "%s: weights not in the checkpoint, newly initialised (train before use): %s",
            cls.__name__,
            ", ".join(info.missing_keys),
        )
    if info.unexpected_keys:
        logger.info("%s: checkpoint weights not used: %s", cls.__name__, ", ".join(info.unexpected_keys))
    if info.mismatched_keys:
        logger.warning(
            "%s: weights re-initialised because of a shape mismatch: %s",
            cls.__name__,
            ", ".join(f"{k} {list(a)} vs {list(b)}" for k, a, b in info.mismatched_keys),
        )
