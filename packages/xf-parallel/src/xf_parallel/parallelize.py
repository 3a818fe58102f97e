"""FSDP2 and the composition of every kind of parallelism, in torchtitan's order.

:func:`apply_fsdp` shards each transformer block (the classes the model lists in ``_no_split_modules``) and
then the root with ``fully_shard``; :func:`parallelize` applies, from the inside out: tensor parallel →
activation checkpointing → ``torch.compile`` → FSDP (or DDP when the only data parallelism is replication).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

from xf_parallel._dist import ParallelDims, require_process_group
from xf_parallel.data_parallel import apply_ddp
from xf_parallel.errors import ContextParallelUnavailableError, TensorParallelPlanError
from xf_parallel.tensor_parallel import apply_tp

__all__ = ["MixedPrecisionPolicy", "apply_activation_checkpointing", "apply_fsdp", "blocks", "parallelize"]


def blocks(model: nn.Module) -> list[nn.Module]:
    """The model's transformer blocks: modules whose class the model names in ``_no_split_modules``."""
    names = set(getattr(model, "_no_split_modules", None) or ())
    found = [m for m in model.modules() if type(m).__name__ in names and m is not model]
    if not found:
        raise TensorParallelPlanError(
            f"{type(model).__name__} names no block classes in _no_split_modules, so xf-parallel cannot tell which "
            "modules to shard or checkpoint one by one; set _no_split_modules on the model class."
        )
    return found


def _fsdp_mesh(mesh: DeviceMesh) -> DeviceMesh:
    names = mesh.mesh_dim_names or ()
    if mesh.ndim == 1:
        return mesh
    if "dp_replicate" in names and "dp_shard" in names:  # HSDP: replicate across groups, shard inside
        return mesh["dp_replicate", "dp_shard_cp" if "cp" in names else "dp_shard"]
    for name in ("dp_shard_cp", "dp_shard"):
        if name in names or name in _flattened(mesh):
            return mesh[name]
    raise TensorParallelPlanError(
        f"the device mesh has dims {names} but no 'dp_shard' dim for FSDP; build it with "
        "ParallelDims(dp_shard=N, ...).build_mesh()."
    )


def _flattened(mesh: DeviceMesh) -> set[str]:
    try:
        return set(mesh._get_root_mesh()._flatten_mapping)  # type: ignore[attr-defined]
    except AttributeError:
        return set()


def apply_fsdp(
    model: nn.Module,
    mesh: DeviceMesh,
    *,
    mixed_precision: MixedPrecisionPolicy | None = None,
    reshard_after_forward: bool = True,
) -> nn.Module:
    """Shard ``model`` in place with FSDP2: each block, then the root (whatever is left: embeddings, final
    norm, head). ``mixed_precision`` (e.g. ``MixedPrecisionPolicy(param_dtype=torch.bfloat16,
    reduce_dtype=torch.float32)``) sets the compute and gradient-reduction dtypes. Returns the model."""
    require_process_group("apply_fsdp")
    fsdp_mesh = _fsdp_mesh(mesh)
    options: dict[str, Any] = {"mesh": fsdp_mesh, "mp_policy": mixed_precision or MixedPrecisionPolicy()}
    layers = blocks(model)
    for i, block in enumerate(layers):
        # the last block is resharded with the root anyway: keeping it saves one all-gather (torchtitan)
        fully_shard(block, reshard_after_forward=reshard_after_forward and i < len(layers) - 1, **options)
    fully_shard(model, reshard_after_forward=reshard_after_forward, **options)
    return model


def apply_activation_checkpointing(model: nn.Module) -> nn.Module:
    """Recompute each block's activations in backward instead of storing them (less memory, ~1/3 more
    compute). Sets ``config.use_cache = False``: a recomputed block would append to the KV cache again."""
    from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import checkpoint_wrapper

    config = getattr(model, "config", None)
    if config is not None and hasattr(config, "use_cache"):
        config.use_cache = False
    targets = {id(block) for block in blocks(model)}
    found = [
        (parent, name, child)
        for parent in model.modules()
        for name, child in parent.named_children()
        if id(child) in targets
    ]
    for parent, name, block in found:  # replaced after the walk: a wrapper holds the block it wraps
        # the RNG state is kept so that dropout draws the same mask when the block is recomputed
        parent.register_module(name, checkpoint_wrapper(block, preserve_rng_state=True))
    return model


def parallelize(
    model: nn.Module,
    dims: ParallelDims,
    *,
    mesh: DeviceMesh | None = None,
    tp_plan: Any = None,
    activation_checkpointing: bool = False,
    compile: bool = False,
    mixed_precision: MixedPrecisionPolicy | None = None,
) -> nn.Module:
    """Apply ``dims`` to ``model`` in torchtitan's order: TP → activation checkpointing → compile → FSDP (any
    ``dp_shard``; HSDP with ``dp_replicate`` too) or DDP (``dp_replicate`` alone). Returns the model to train
    (the DDP wrapper in that case, else ``model`` itself). ``mesh`` defaults to ``dims.build_mesh()``."""
    if dims.cp > 1 and not torch.cuda.is_available():
        raise ContextParallelUnavailableError(
            f"cp={dims.cp} asks for context parallelism, which PyTorch runs only on CUDA devices with NCCL (its ring "
            "attention does not run on CPU/gloo); set cp=1 here, or run on GPUs."
        )
    if dims.dp_replicate > 1 and dims.dp_shard == 1 and dims.tp > 1:
        raise TensorParallelPlanError(
            f"dp_replicate={dims.dp_replicate} with tp={dims.tp}: DDP cannot replicate tensor-parallel (DTensor) "
            "parameters; use dp_shard for the data-parallel ranks (FSDP, or HSDP with both dp_replicate and dp_shard)."
        )
    mesh = mesh if mesh is not None else dims.build_mesh()
    if dims.tp > 1:
        apply_tp(model, mesh["tp"], tp_plan)
    if activation_checkpointing:
        apply_activation_checkpointing(model)
    if compile:
        for block in blocks(model):
            block.compile()
    if dims.dp_shard > 1 or dims.cp > 1:
        return apply_fsdp(model, mesh, mixed_precision=mixed_precision)
    if dims.dp_replicate > 1:
        return apply_ddp(model, mesh)
    return model
