"""Fused projections for inference, with the modules and the state dict left as they are.

A block declares, as data, which of its ``nn.Linear`` children read the same input and may run as one matmul::

    _fused_linears: ClassVar[tuple[tuple[str, ...], ...]] = (("q_proj", "k_proj", "v_proj"),)

:func:`pack_fused_linears` moves the weights (and biases) of each such group into one contiguous buffer, and
makes each ``Parameter`` a view of its rows. Nothing a user touches changes: ``q_proj`` is still an
``nn.Linear`` whose weight is ``model.state_dict()["...q_proj.weight"]`` (the keys, shapes and saved files are
transformers'), quantization and LoRA still find the modules by name, and a tensor-parallel plan still names
them. :func:`fused_linear` then runs the group as one ``F.linear`` over the buffer, and splits its output.

It does so only when it is exact and free: no gradient is wanted (``no_grad``/``inference_mode``, or frozen
weights), every member is still a plain ``nn.Linear``, and the weights still lie back to back in one buffer.
Anything that breaks the layout (``model.to(dtype)`` copies each parameter on its own, FSDP or tensor
parallelism replace them, a quantizer or an adapter replaces the module) makes the group run unfused again,
with the same result; so does a compiled forward (the checks stay out of the graph). A packed model re-packs
after ``.to()``/``.half()``/... (its ``_apply`` calls :func:`release_fused_linears` before and
:func:`repack_fused_linears` after). In-place updates (an optimizer step, ``load_state_dict``) keep the
layout. The check costs a few identity and pointer comparisons per group and step (a packed group records its
modules, parameters and their data pointers).

Packing copies the group's weights once (a memory-mapped checkpoint's pages for those weights are then
released: the packed copy lives in ordinary memory, as after a load without mmap).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["fused_linear", "pack_fused_linears", "release_fused_linears", "repack_fused_linears"]

_PACKED = "_xf_packed_linears"  # module attribute: {group names: _Packed, or None while released}


@dataclass(frozen=True)
class _Packed:
    modules: tuple[nn.Linear, ...]
    weights: tuple[nn.Parameter, ...]
    biases: tuple[nn.Parameter | None, ...]
    pointers: tuple[int, ...]  # the parameters' data pointers when packed: a moved or copied one differs
    weight: torch.Tensor  # (sum of out_features, in_features), the weights' common buffer
    bias: torch.Tensor | None
    rows: tuple[int, ...]


def _members(module: nn.Module, names: tuple[str, ...]) -> list[nn.Linear] | None:
    """The group's modules when all are plain ``nn.Linear`` with ordinary parameters on one device/dtype."""
    linears = [module._modules.get(name) for name in names]
    if not all(type(m) is nn.Linear for m in linears):
        return None
    first: nn.Linear = linears[0]  # type: ignore[assignment]
    for m in linears:
        w, b = m.weight, m.bias  # type: ignore[union-attr]
        if type(w) is not nn.Parameter or w.device != first.weight.device or w.dtype != first.weight.dtype:
            return None
        if w.device.type == "meta" or not w.is_floating_point() or w.shape[1] != first.weight.shape[1]:
            return None
        if (b is None) != (first.bias is None) or (b is not None and type(b) is not nn.Parameter):
            return None
    return linears  # type: ignore[return-value]


def _back_to_back(tensors: list[torch.Tensor]) -> bool:
    """Whether ``tensors`` are contiguous and follow each other in one storage, in order."""
    storage = tensors[0].untyped_storage().data_ptr()
    offset = tensors[0].storage_offset()
    for t in tensors:
        if not t.is_contiguous() or t.untyped_storage().data_ptr() != storage or t.storage_offset() != offset:
            return False
        offset += t.numel()
    return True


def _pointers(weights: Sequence[torch.Tensor], biases: Sequence[torch.Tensor | None]) -> tuple[int, ...]:
    return tuple(t.data_ptr() for t in (*weights, *biases) if t is not None)


def _common(params: list[torch.Tensor]) -> torch.Tensor:
    """The buffer that back-to-back ``params`` are rows of."""
    first = params[0].detach()
    n = sum(p.shape[0] for p in params)
    return first.as_strided((n, *first.shape[1:]), first.stride())


@torch.no_grad()
def _pack_group(linears: list[nn.Linear]) -> _Packed:
    for attr in ("weight", "bias"):
        params: list[nn.Parameter] = [getattr(m, attr) for m in linears]
        if params[0] is None or _back_to_back(params):
            continue
        buffer = torch.cat([p.detach() for p in params])
        start = 0
        for m, p in zip(linears, params, strict=True):
            setattr(m, attr, nn.Parameter(buffer[start : start + p.shape[0]], requires_grad=p.requires_grad))
            start += p.shape[0]
    weights = [m.weight for m in linears]
    biases = [m.bias for m in linears]
    return _Packed(
        modules=tuple(linears),
        weights=tuple(weights),
        biases=tuple(biases),
        pointers=_pointers(weights, biases),
        weight=_common(weights),
        bias=None if biases[0] is None else _common(biases),  # type: ignore[arg-type]
        rows=tuple(w.shape[0] for w in weights),
    )


def pack_fused_linears(model: nn.Module, *, only_packed: bool = False) -> int:
    """Pack every group that ``model``'s submodules declare in ``_fused_linears``; returns how many groups
    are packed. A group that cannot be (meta weights, a replaced module, mixed dtypes) is left alone and runs
    unfused. ``only_packed``: only the groups packed before (what :func:`repack_fused_linears` does)."""
    packed = 0
    for module in model.modules():
        groups = getattr(module, "_fused_linears", ())
        done: dict[tuple[str, ...], _Packed | None] = module.__dict__.get(_PACKED, {})
        for names in groups:
            if only_packed and names not in done:
                continue
            linears = _members(module, names)
            if linears is None:
                done.pop(names, None)
                continue
            done[names] = _pack_group(linears)
            packed += 1
        if done:
            module.__dict__[_PACKED] = done
    return packed


def release_fused_linears(model: nn.Module) -> None:
    """Forget the packed buffers (the groups run unfused until :func:`repack_fused_linears`), so that a
    conversion that copies the parameters one by one frees each old buffer as it goes."""
    for module in model.modules():
        done = module.__dict__.get(_PACKED)
        if done:
            module.__dict__[_PACKED] = dict.fromkeys(done)


def repack_fused_linears(model: nn.Module) -> None:
    """Pack again the groups that were packed, after something (``model.to(dtype)``) copied their
    parameters one by one."""
    pack_fused_linears(model, only_packed=True)


def fused_linear(module: nn.Module, names: tuple[str, ...], x: torch.Tensor) -> list[torch.Tensor] | None:
    """``[getattr(module, n)(x) for n in names]`` as one matmul when the group is packed, still laid out as
    packed, and no gradient is wanted; None otherwise (the caller then runs the modules one by one)."""
    packed = module.__dict__.get(_PACKED, {}).get(names)
    if packed is None or torch.compiler.is_compiling():  # compiled: no pointer checks in the graph
        return None
    grad = torch.is_grad_enabled()
    children = module._modules
    for name, m, w, b in zip(names, packed.modules, packed.weights, packed.biases, strict=True):
        if children[name] is not m or m.weight is not w or m.bias is not b:
            return None
        if m._forward_hooks or m._forward_pre_hooks:  # observed (debugging, offloading): run it as itself
            return None
        if grad and (w.requires_grad or (b is not None and b.requires_grad)):
            return None
    if _pointers(packed.weights, packed.biases) != packed.pointers:
        module.__dict__[_PACKED][names] = None  # moved or copied one by one: release the old buffer
        return None
    return list(F.linear(x, packed.weight, packed.bias).split(packed.rows, dim=-1))
