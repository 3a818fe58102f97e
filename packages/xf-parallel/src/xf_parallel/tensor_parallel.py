"""Tensor parallelism: the model families' TP plans applied from outside with ``torch.distributed.tensor``.

A plan is a small dict beside each model family (``TP_PLAN`` in ``xf_load.models.llama`` and friends),
``{module pattern: style}`` relative to the base model (``layers.*.self_attn.q_proj``; ``*`` is one name).
Styles: "colwise" (output features split: Megatron's first matmul), "rowwise" (input features split, the
output all-reduced) and "colwise_rep" (colwise with the output gathered). nn.Linear and GPT-2's ``Conv1D``
(weight stored transposed) are supported; the output of every plan is the full tensor on every rank, so the
logits equal a single process's.

An attention module whose projections are split keeps its local head counts: ``n_head``/``n_kv`` are divided
by the TP degree (torchtitan does the same), so ``view(B, T, n_head, head_dim)`` sees the local heads.

:class:`TensorParallelLoader` is the ``xf_load.tp_plans`` entry point behind
``from_pretrained(..., tp_plan="auto", device_mesh=mesh)``: ``prepare`` checks the plan on the meta skeleton,
``local_slice`` tells the loader which part of each stored tensor this rank reads, and ``apply`` turns the
parameters into DTensors (local shards with ``DTensor.from_local``, whole tensors with ``distribute_tensor``)
and installs the parallel styles.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import nn
from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.tensor import DTensor, Placement, Replicate, Shard, distribute_tensor
from torch.distributed.tensor.parallel import (
    ColwiseParallel,
    ParallelStyle,
    RowwiseParallel,
    parallelize_module,
)

from xf_load.layers import Conv1D
from xf_load.options import TensorParallelHook
from xf_parallel._dist import require_process_group
from xf_parallel.errors import TensorParallelPlanError

__all__ = ["STYLES", "TensorParallelLoader", "apply_tp", "model_tp_plan", "resolve_plan"]

STYLES = ("colwise", "rowwise", "colwise_rep")
_HEAD_ATTRIBUTES = (
    "n_head",
    "n_kv",
)  # attention modules' head counts, made local when their projections split


class _Conv1DColwise(ColwiseParallel):
    """ColwiseParallel for ``Conv1D`` (``y = x @ W + b``, W of shape (in, out)): W is split on dim 1."""

    def _apply(self, module: nn.Module, device_mesh: DeviceMesh) -> nn.Module:
        from functools import partial

        from torch.distributed.tensor import distribute_module

        def partition(_name: str, mod: nn.Module, mesh: DeviceMesh) -> None:
            for pname, placement in (("weight", Shard(1)), ("bias", Shard(0))):
                param = getattr(mod, pname)
                dist = distribute_tensor(param, mesh, [placement], src_data_rank=self.src_data_rank)
                mod.register_parameter(pname, nn.Parameter(dist, requires_grad=param.requires_grad))

        return distribute_module(
            module,
            device_mesh,
            partition,
            cast(Any, partial(self._prepare_input_fn, self.input_layouts, self.desired_input_layouts)),
            partial(self._prepare_output_fn, self.output_layouts, self.use_local_output),
        )


class _Conv1DRowwise(RowwiseParallel):
    """RowwiseParallel for ``Conv1D``: W (in, out) is split on dim 0, the bias replicated."""

    def _apply(self, module: nn.Module, device_mesh: DeviceMesh) -> nn.Module:
        from functools import partial

        from torch.distributed.tensor import distribute_module

        def partition(_name: str, mod: nn.Module, mesh: DeviceMesh) -> None:
            for pname, placement in (("weight", Shard(0)), ("bias", Replicate())):
                param = getattr(mod, pname)
                dist = distribute_tensor(param, mesh, [placement], src_data_rank=self.src_data_rank)
                mod.register_parameter(pname, nn.Parameter(dist, requires_grad=param.requires_grad))

        self.desired_input_layouts = (Shard(-1),)
        return distribute_module(
            module,
            device_mesh,
            partition,
            cast(Any, partial(self._prepare_input_fn, self.input_layouts, self.desired_input_layouts)),
            partial(self._prepare_output_fn, self.output_layouts, self.use_local_output),
        )


# (style, module kind) -> {parameter: placement}
_PLACEMENTS: dict[tuple[str, str], dict[str, Placement]] = {
    ("colwise", "linear"): {"weight": Shard(0), "bias": Shard(0)},
    ("rowwise", "linear"): {"weight": Shard(1), "bias": Replicate()},
    ("colwise", "conv1d"): {"weight": Shard(1), "bias": Shard(0)},
    ("rowwise", "conv1d"): {"weight": Shard(0), "bias": Replicate()},
    ("colwise", "embedding"): {"weight": Shard(1)},
    ("rowwise", "embedding"): {"weight": Shard(0)},
}


def _kind(module: nn.Module) -> str | None:
    if isinstance(module, nn.Linear):
        return "linear"
    if isinstance(module, Conv1D):
        return "conv1d"
    if isinstance(module, nn.Embedding):
        return "embedding"
    return None


def _style(style: str, kind: str, src_data_rank: int | None) -> ParallelStyle:
    if style == "rowwise":
        out: ParallelStyle = _Conv1DRowwise() if kind == "conv1d" else RowwiseParallel()
    else:
        layouts = {"output_layouts": Replicate()} if style == "colwise_rep" else {}
        out = _Conv1DColwise(**layouts) if kind == "conv1d" else ColwiseParallel(**layouts)
    out.src_data_rank = src_data_rank
    return out


def model_tp_plan(model: nn.Module) -> dict[str, str]:
    """The TP plan of the model's family: ``TP_PLAN`` in the module defining its class (or a base class)."""
    for cls in type(model).__mro__:
        plan = getattr(sys.modules.get(cls.__module__), "TP_PLAN", None)
        if isinstance(plan, Mapping):
            return dict(plan)
    raise TensorParallelPlanError(
        f"{type(model).__name__} has no tensor-parallel plan (no TP_PLAN beside its class in "
        f"{type(model).__module__}); pass tp_plan={{module pattern: 'colwise' | 'rowwise'}} yourself."
    )


@dataclass(frozen=True)
class _Entry:
    module: str  # full module name in the model
    style: str
    kind: str
    placements: dict[str, Placement]


def _tp_mesh(mesh: DeviceMesh) -> DeviceMesh:
    names = mesh.mesh_dim_names or ()
    if mesh.ndim == 1:
        return mesh
    if "tp" in names:
        return mesh["tp"]
    raise TensorParallelPlanError(
        f"the device mesh has dims {names} but no 'tp' dim; pass a 1-D mesh or build one with "
        "ParallelDims(tp=N, ...).build_mesh()."
    )


def resolve_plan(model: nn.Module, plan: str | Mapping[str, str] | None, tp: int) -> list[_Entry]:
    """Each module the plan names, with its style and placements, checked against the TP degree ``tp``."""
    if isinstance(plan, str) and plan != "auto":
        raise TensorParallelPlanError(f"tp_plan={plan!r} must be 'auto' or a dict {{module pattern: style}}.")
    patterns: dict[str, str] = model_tp_plan(model) if plan is None or isinstance(plan, str) else dict(plan)
    prefix = getattr(model, "base_model_prefix", "")
    prefix = f"{prefix}." if prefix and isinstance(getattr(model, prefix, None), nn.Module) else ""
    modules = dict(model.named_modules())
    entries: list[_Entry] = []
    for pattern, style in patterns.items():
        if style not in STYLES:
            raise TensorParallelPlanError(
                f"tp_plan[{pattern!r}] = {style!r} is not a style xf-parallel knows; use one of "
                f"{', '.join(map(repr, STYLES))}.",
                module=pattern,
            )
        regex = re.compile(
            re.escape(prefix) + r"\.".join("[^.]+" if p == "*" else re.escape(p) for p in pattern.split("."))
        )
        matched = [name for name in modules if regex.fullmatch(name)]
        if not matched:
            raise TensorParallelPlanError(
                f"tp_plan pattern {pattern!r} matches no module of {type(model).__name__} (patterns are relative "
                f"to the base model{f', {prefix[:-1]!r}' if prefix else ''}; '*' stands for one name); fix the plan.",
                module=pattern,
            )
        for name in matched:
            module = modules[name]
            kind = _kind(module)
            if kind is None:
                raise TensorParallelPlanError(
                    f"tp_plan[{pattern!r}] matches {name}, a {type(module).__name__}; only nn.Linear, Conv1D and "
                    "nn.Embedding can be split.",
                    module=name,
                )
            base = "rowwise" if style == "rowwise" else "colwise"
            placements = _PLACEMENTS[(base, kind)]
            for pname, placement in placements.items():
                param = getattr(module, pname, None)
                if param is None or not isinstance(placement, Shard):
                    continue
                size = _full_shape(param)[placement.dim]
                if size % tp:
                    raise TensorParallelPlanError(
                        f"{name}.{pname} has {size} {'output' if base == 'colwise' else 'input'} features, which the "
                        f"TP degree {tp} does not divide; pick a TP degree that divides it.",
                        module=name,
                    )
            entries.append(_Entry(name, style, kind, placements))
    _check_heads(modules, entries, tp)
    return entries


def _check_heads(modules: Mapping[str, nn.Module], entries: list[_Entry], tp: int) -> None:
    for parent in sorted({e.module.rpartition(".")[0] for e in entries if e.style != "rowwise"}):
        module = modules[parent]
        for attr in _HEAD_ATTRIBUTES:
            heads = getattr(module, attr, None)
            if isinstance(heads, int) and heads % tp:
                raise TensorParallelPlanError(
                    f"the TP degree {tp} does not divide the {heads} {'key/value ' if attr == 'n_kv' else ''}heads of "
                    f"{parent} ({attr}); pick a TP degree that divides num_attention_heads and "
                    "num_key_value_heads.",
                    module=parent,
                )


def _full_shape(param: torch.Tensor) -> tuple[int, ...]:
    return tuple(param.shape)  # a DTensor reports its global shape


def apply_tp(
    model: nn.Module,
    mesh: DeviceMesh,
    plan: str | Mapping[str, str] | None = None,
    *,
    src_data_rank: int | None = 0,
) -> nn.Module:
    """Split ``model`` in place across the "tp" dim of ``mesh`` following ``plan`` (None or "auto": the
    family's ``TP_PLAN``); returns the model. ``src_data_rank=0`` scatters rank 0's weights (other ranks may hold
    different random ones); None keeps each rank's own copy (all ranks loaded the same file)."""
    require_process_group("apply_tp")
    tp_mesh = _tp_mesh(mesh)
    entries = resolve_plan(model, plan, tp_mesh.size())
    _apply_entries(model, tp_mesh, entries, src_data_rank=src_data_rank, full_shapes=None)
    return model


def _apply_entries(
    model: nn.Module,
    tp_mesh: DeviceMesh,
    entries: list[_Entry],
    *,
    src_data_rank: int | None,
    full_shapes: Mapping[str, tuple[int, ...]] | None,
) -> None:
    tp = tp_mesh.size()
    modules = dict(model.named_modules())
    styles: dict[str, ParallelStyle] = {}
    for entry in entries:
        module = modules[entry.module]
        for pname, placement in entry.placements.items():
            param = getattr(module, pname, None)
            if param is None or isinstance(param, DTensor):
                continue
            full = (full_shapes or {}).get(f"{entry.module}.{pname}", tuple(param.shape))
            if tuple(param.shape) != full:  # arrived as this rank's shard: wrap it as one
                local = param.detach()
                dist = DTensor.from_local(
                    local,
                    tp_mesh,
                    [placement],
                    run_check=False,
                    shape=torch.Size(full),
                    stride=_contiguous_stride(full),
                )
                module.register_parameter(pname, nn.Parameter(dist, requires_grad=param.requires_grad))
        styles[entry.module] = _style(entry.style, entry.kind, src_data_rank)
    parents = {e.module.rpartition(".")[0] for e in entries if e.style != "rowwise"}
    parallelize_module(model, tp_mesh, styles)
    for parent in parents:  # attention modules now see their local heads
        module = modules[parent]
        if getattr(module, "_xf_tp_degree", 1) != 1:
            continue
        for attr in _HEAD_ATTRIBUTES:
            if isinstance(getattr(module, attr, None), int):
                setattr(module, attr, getattr(module, attr) // tp)
        setattr(module, "_xf_tp_degree", tp)  # noqa: B010 (nn.Module.__setattr__ is typed for tensors)


def _contiguous_stride(shape: tuple[int, ...]) -> tuple[int, ...]:
    stride, out = 1, []
    for size in reversed(shape):
        out.append(stride)
        stride *= size
    return tuple(reversed(out))


class TensorParallelLoader(TensorParallelHook):
    """``from_pretrained(..., tp_plan=..., device_mesh=...)``'s tensor-parallel hook (entry point
    ``xf_load.tp_plans``). Without ``device_mesh`` every rank of the initialised process group is one TP rank."""

    name = "xf-parallel"

    def __init__(self, *, tp_plan: str | Mapping[str, str], device_mesh: Any) -> None:
        require_process_group(f"from_pretrained(tp_plan={tp_plan!r})")
        if device_mesh is None:
            import torch.distributed as dist
            from torch.distributed.device_mesh import init_device_mesh

            from xf_parallel._dist import device_type

            device_mesh = init_device_mesh(device_type(), (dist.get_world_size(),), mesh_dim_names=("tp",))
        super().__init__(tp_plan=tp_plan, device_mesh=device_mesh)
        self.tp_mesh: DeviceMesh = _tp_mesh(device_mesh)
        self._entries: list[_Entry] | None = None
        self._full_shapes: dict[str, tuple[int, ...]] = {}
        self._placements: dict[str, Placement] = {}

    def prepare(self, model: nn.Module) -> None:
        """Resolve and check the plan on the skeleton, and note each split parameter's full shape."""
        self._entries = resolve_plan(model, self.tp_plan, self.tp_mesh.size())
        modules = dict(model.named_modules())
        for entry in self._entries:
            for pname, placement in entry.placements.items():
                param = getattr(modules[entry.module], pname, None)
                if param is not None:
                    key = f"{entry.module}.{pname}"
                    self._full_shapes[key] = tuple(param.shape)
                    self._placements[key] = placement

    def local_slice(self, name: str, shape: tuple[int, ...]) -> tuple[slice, ...] | None:
        """This rank's slice of the stored tensor ``name`` (None: read it whole, it is replicated)."""
        placement = self._placements.get(name)
        if not isinstance(placement, Shard):
            return None
        dim = placement.dim % len(shape)
        tp, rank = self.tp_mesh.size(), self.tp_mesh.get_local_rank()
        step = shape[dim] // tp
        return tuple(
            slice(rank * step, (rank + 1) * step) if d == dim else slice(None) for d in range(len(shape))
        )

    def apply(self, model: nn.Module) -> None:
        """Make the split parameters DTensors (local shards or whole tensors alike) and install the styles."""
        if self._entries is None:  # the loader did not call prepare: every parameter arrived whole
            self.prepare(model)
        assert self._entries is not None
        _apply_entries(model, self.tp_mesh, self._entries, src_data_rank=None, full_shapes=self._full_shapes)
