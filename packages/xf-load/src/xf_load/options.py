"""``LoadOptions``: how ``from_pretrained`` builds the model, as one frozen object.

The public ``from_pretrained`` keeps transformers' keywords and builds a :class:`LoadOptions` (and an
:class:`xf_core.HubOptions` for where the files come from) once; everything below it takes the two objects.
Each field is checked when the object is built, and a wrong value raises :class:`LoadOptionsError` naming it.

``tp_plan``/``device_mesh`` are the seam for tensor-parallel loading. xf-load never imports xf-parallel: a
package that can apply a TP plan registers a :class:`TensorParallelHook` under the ``xf_load.tp_plans``
entry-point group, and ``from_pretrained(..., tp_plan=...)`` fails with :class:`TensorParallelUnavailableError`
until one is installed::

    [project.entry-points."xf_load.tp_plans"]
    xf-parallel = "xf_parallel:TensorParallelLoader"
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from importlib.metadata import entry_points
from typing import Any, ClassVar

import torch

from xf_core.errors import XfConfigError
from xf_load.configuration_utils import dtype_to_str, pop_legacy_dtype
from xf_load.errors import DeviceError, LoadOptionsError, TensorParallelUnavailableError
from xf_load.quantizers import Quantizer

__all__ = [
    "AUTO_DEVICE_MAPS",
    "TP_ENTRY_POINT_GROUP",
    "TP_HOOKS",
    "LoadOptions",
    "TensorParallelHook",
    "available_devices",
    "check_device",
    "tensor_parallel_hook",
]

AUTO_DEVICE_MAPS = ("auto", "balanced", "balanced_low_0", "sequential")
_ATTENTION = ("eager", "sdpa")


@dataclass(frozen=True, kw_only=True)
class LoadOptions:
    """How to build the model from the checkpoint; the fields are transformers' ``from_pretrained`` keywords.

    ``dtype``: a ``torch.dtype``, its name, ``"auto"`` (the config's, else the checkpoint's) or None (float32).
    ``device_map``: a device, ``{module: device}``, or one of "auto", "balanced", "balanced_low_0",
    "sequential" (resolved against ``max_memory``; ``offload_folder`` receives what goes to "disk").
    ``variant``/``use_safetensors``: which weight files (``model.<variant>.safetensors``; pickles only with
    ``use_safetensors=False``). ``disable_mmap``: read every tensor into memory of its own instead of viewing
    the memory-mapped safetensors file where no cast or device move is needed (None, the default, maps;
    True suits weights that must stay resident, or a file that will be rewritten in place while the model
    lives). ``quantization_config``: a dict with ``quant_method`` or an object with
    ``to_dict()``. ``tp_plan`` ("auto" or ``{module pattern: style}``) and ``device_mesh``: tensor-parallel
    loading, done by an installed :class:`TensorParallelHook`.
    """

    dtype: Any = "auto"
    device_map: Any = None
    max_memory: Mapping[Any, Any] | None = None
    offload_folder: str | os.PathLike[str] | None = None
    variant: str | None = None
    use_safetensors: bool | None = None
    disable_mmap: bool | None = None
    ignore_mismatched_sizes: bool = False
    attn_implementation: str | None = None
    quantization_config: Any = None
    tp_plan: str | Mapping[str, str] | None = None
    device_mesh: Any = None

    def __post_init__(self) -> None:
        _check_dtype(self.dtype)
        _check_device_map(self.device_map)
        _check_type(
            "max_memory", self.max_memory, Mapping, "a dict {device: size}, e.g. {0: '10GiB', 'cpu': '30GiB'}"
        )
        _check_type("offload_folder", self.offload_folder, str | os.PathLike, "a directory path")
        _check_type("variant", self.variant, str, "a string such as 'fp16'")
        for name in ("use_safetensors", "disable_mmap", "ignore_mismatched_sizes"):
            value = getattr(self, name)
            if not isinstance(value, bool) and not (value is None and name != "ignore_mismatched_sizes"):
                raise LoadOptionsError(f"{name}={value!r} must be True or False.", key=name)
        if self.attn_implementation not in (None, *_ATTENTION):
            raise LoadOptionsError(
                f"attn_implementation={self.attn_implementation!r} is not one of {', '.join(map(repr, _ATTENTION))}.",
                key="attn_implementation",
            )
        q = self.quantization_config
        if q is not None and not isinstance(q, Mapping | Quantizer) and not hasattr(q, "to_dict"):
            raise LoadOptionsError(
                f"quantization_config must be a dict with a 'quant_method' or a config object with to_dict() "
                f"(e.g. xf_quant.BitsAndBytesConfig), not {type(q).__name__}.",
                key="quantization_config",
            )
        self._check_tensor_parallel()

    def _check_tensor_parallel(self) -> None:
        plan = self.tp_plan
        valid_plan = (
            plan is None
            or plan == "auto"
            or (
                isinstance(plan, Mapping)
                and all(isinstance(k, str) and isinstance(v, str) for k, v in plan.items())
            )
        )
        if not valid_plan:
            raise LoadOptionsError(
                f"tp_plan={plan!r} must be 'auto' (the model's own plan) or a dict {{module pattern: style}}, "
                "e.g. {'layers.*.self_attn.q_proj': 'colwise'}.",
                key="tp_plan",
            )
        if plan is not None and self.device_map is not None:
            raise LoadOptionsError(
                "tp_plan places every weight on its rank itself, so device_map must not be passed with it; "
                "drop one of the two.",
                key="tp_plan",
            )
        if self.device_mesh is not None and plan is None:
            raise LoadOptionsError(
                "device_mesh is only used for tensor-parallel loading; pass tp_plan='auto' (or a plan) with it.",
                key="device_mesh",
            )

    @classmethod
    def pop_from(cls, kwargs: dict[str, Any], base: LoadOptions | None = None) -> LoadOptions:
        """Take the loading keywords out of ``kwargs`` into options over ``base``.

        transformers' legacy ``torch_dtype`` becomes ``dtype`` (by
        :func:`~xf_load.configuration_utils.pop_legacy_dtype`); given with ``dtype``, the two must agree.
        """
        base = base or cls()
        found = {name: kwargs.pop(name) for name in _LOAD_FIELDS if name in kwargs}
        if "torch_dtype" in kwargs:
            dtypes = {"dtype": found.get("dtype", base.dtype), "torch_dtype": kwargs.pop("torch_dtype")}
            try:
                pop_legacy_dtype(dtypes, unset="auto")
            except XfConfigError as e:
                raise LoadOptionsError(str(e), key="torch_dtype") from None
            found["dtype"] = dtypes["dtype"]
        return replace(base, **found)


_LOAD_FIELDS = tuple(f.name for f in fields(LoadOptions))


def _check_type(name: str, value: Any, kind: Any, what: str) -> None:
    if value is not None and not isinstance(value, kind):
        raise LoadOptionsError(f"{name}={value!r} must be {what}, not {type(value).__name__}.", key=name)


def _check_dtype(dtype: Any) -> None:
    if dtype is None or isinstance(dtype, torch.dtype) or dtype == "auto":
        return
    if not isinstance(dtype, str):
        raise LoadOptionsError(f"dtype={dtype!r} is not a torch.dtype, a dtype name or 'auto'.", key="dtype")
    try:
        dtype_to_str(dtype)
    except XfConfigError as e:
        raise LoadOptionsError(str(e), key="dtype") from None


def _check_device_map(device_map: Any) -> None:
    """Every device the map names exists here (checked before any file is read)."""
    if device_map is None or (isinstance(device_map, str) and device_map in AUTO_DEVICE_MAPS):
        return
    if isinstance(device_map, Mapping):
        for device in device_map.values():
            if device != "disk":
                check_device(device, key="device_map")
        return
    if not isinstance(device_map, str | int | torch.device):
        raise LoadOptionsError(
            f"device_map={device_map!r} is not supported; pass a device ('cpu', 'cuda:0'), a dict "
            "{module name: device}, or one of " + ", ".join(AUTO_DEVICE_MAPS) + ".",
            key="device_map",
        )
    try:
        check_device(device_map, key="device_map")
    except DeviceError as e:
        if isinstance(device_map, str) and not _parses(device_map):
            e.args = (f"{e.args[0]} As a device_map it may also be one of {', '.join(AUTO_DEVICE_MAPS)}.",)
        raise


def _parses(device: str) -> bool:
    try:
        torch.device(device)
    except RuntimeError:
        return False
    return True


def available_devices() -> list[str]:
    """What torch reports as usable here: "cpu", then each CUDA device, then "mps" when available."""
    out = ["cpu"]
    if torch.cuda.is_available():
        out += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        out.append("mps")
    return out


def check_device(device: Any, *, key: str = "device") -> str:
    """The device ``device`` names ("cpu", "cuda:1", "mps"; an int ``i`` is "cuda:i", -1 is "cpu"), checked
    against what torch reports; a device string torch cannot parse, or a device this machine does not have,
    raises :class:`DeviceError` naming the value (as option ``key``) and the devices that are available."""
    if isinstance(device, bool) or not isinstance(device, str | int | torch.device):
        raise DeviceError(
            f"{key}={device!r} is not a device; pass a string such as 'cpu' or 'cuda:0', an int (a CUDA index, "
            "-1 for the CPU) or a torch.device.",
            key=key,
            device=device,
        )
    available = available_devices()
    given = device

    def unavailable(why: str) -> DeviceError:
        return DeviceError(
            f"{key}={given!r} {why}; available here: {', '.join(available)}. Pass one of those.",
            key=key,
            device=given,
        )

    if isinstance(device, int):
        if device == -1:
            return "cpu"
        if device < 0:
            raise unavailable("is not a device index (use -1 for the CPU or a CUDA index from 0)")
        device = f"cuda:{device}"
    try:
        parsed = torch.device(device)
    except RuntimeError:
        raise unavailable("is not a device torch knows") from None
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise unavailable(
                "asks for CUDA, but torch sees no CUDA device (torch.cuda.is_available() is False)"
            )
        count = torch.cuda.device_count()
        if parsed.index is not None and parsed.index >= count:
            raise unavailable(f"asks for CUDA device {parsed.index}, but torch sees {count}")
    elif parsed.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise unavailable("asks for Apple's MPS, which torch reports as unavailable")
    elif parsed.type not in ("cpu", "meta"):
        backend = getattr(torch, parsed.type, None)
        is_available = getattr(backend, "is_available", None)
        if callable(is_available) and not is_available():
            raise unavailable(f"asks for {parsed.type}, which torch reports as unavailable")
    return str(parsed)


# ---- the tensor-parallel seam -------------------------------------------------------------------------------
TP_ENTRY_POINT_GROUP = "xf_load.tp_plans"
# name -> hook class. Filled from the entry points on first use; tests may add to it.
TP_HOOKS: dict[str, type[TensorParallelHook]] = {}
_loaded_tp_entry_points = False


class TensorParallelHook:
    """What a tensor-parallel package provides. ``from_pretrained`` builds one from the load options, calls
    :meth:`prepare` on the model skeleton (parameters on ``meta``), reads each checkpoint tensor's
    :meth:`local_slice` only (from the memory-mapped file) and sets the parameter to that local tensor
    (the local shape, not the config's), ties the weights, then calls :meth:`apply` (before ``eval()``).

    ``apply`` shards the model in place across ``device_mesh`` following ``tp_plan`` ("auto": the model
    class's own plan): parameters that arrived as local shards become DTensors from those shards, those
    that arrived whole are distributed.
    """

    name: ClassVar[str] = ""

    def __init__(self, *, tp_plan: str | Mapping[str, str], device_mesh: Any) -> None:
        self.tp_plan = tp_plan
        self.device_mesh = device_mesh

    def prepare(self, model: Any) -> None:
        """Called on the model skeleton (parameters on the meta device) before any weight is read: resolve the
        plan ('auto' = the model class's TP plan), check it fits (e.g. heads divisible by the TP degree), raise
        a typed error otherwise. Default: nothing."""

    def local_slice(self, name: str, shape: tuple[int, ...]) -> tuple[slice, ...] | None:
        """This rank's part of the tensor stored under state-dict key ``name`` (full checkpoint shape
        ``shape``): one slice per dim, or None to read it whole. Default: None."""
        return None

    def apply(self, model: Any) -> None:
        raise NotImplementedError(f"{type(self).__name__} must define apply(model)")


def _load_tp_entry_points() -> None:
    global _loaded_tp_entry_points
    if _loaded_tp_entry_points:
        return
    for ep in entry_points(group=TP_ENTRY_POINT_GROUP):
        TP_HOOKS.setdefault(ep.name, ep.load())
    _loaded_tp_entry_points = True


def tensor_parallel_hook(options: LoadOptions) -> TensorParallelHook | None:
    """The installed hook for ``options.tp_plan`` (None without a plan); none installed is an error."""
    if options.tp_plan is None:
        return None
    _load_tp_entry_points()
    if not TP_HOOKS:
        raise TensorParallelUnavailableError(
            f"tp_plan={options.tp_plan!r} asks for tensor-parallel loading, which xf-parallel does not provide yet "
            f"(no package registers the {TP_ENTRY_POINT_GROUP!r} entry point); load without tp_plan (optionally "
            "with device_map='auto') and shard the model yourself.",
            key="tp_plan",
        )
    if len(TP_HOOKS) > 1:
        raise TensorParallelUnavailableError(
            f"several packages register tensor-parallel loading ({', '.join(sorted(TP_HOOKS))}); uninstall all but "
            "one.",
            key="tp_plan",
        )
    (hook_class,) = TP_HOOKS.values()
    return hook_class(tp_plan=options.tp_plan, device_mesh=options.device_mesh)
