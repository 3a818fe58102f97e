"""The Trainer under ``torchrun``: the process group, the data-parallel degree and the model's wrapper.

With ``WORLD_SIZE > 1`` the process group is created from torchrun's environment (NCCL on GPUs, gloo
otherwise, or ``ddp_backend``) and the model becomes one of:

- a tensor-parallel model (loaded with ``tp_plan="auto", device_mesh=...``; its parameters are DTensors over
  every process): trained as it is, every process reading the same batches;
- with ``TrainingArguments(fsdp="full_shard" | "shard_grad_op")``: sharded in place with FSDP2;
- otherwise: wrapped in torch's ``DistributedDataParallel``.

FSDP, DTensor gradient norms and the distributed checkpoints of sharded models come from xf-parallel, which
sits above xf-train and registers itself under the ``xf_train.parallel`` entry point.
"""

from __future__ import annotations

import contextlib
import datetime
from importlib.metadata import entry_points
from types import ModuleType
from typing import Any

import torch
from torch import nn

from xf_train._training_args import TrainingArguments
from xf_train.errors import TrainingArgumentsError

ENTRY_POINT_GROUP = "xf_train.parallel"
# transformers' fsdp options: "auto_wrap" is what xf-parallel always does (one FSDP unit per block)
_FSDP_MODES = {"full_shard": True, "shard_grad_op": False}


def parallel_support(why: str, key: str = "model") -> ModuleType:
    """xf-parallel's Trainer support (the ``xf_train.parallel`` entry point); ``why`` says what needs it and
    ``key`` which argument asked for it."""
    found = list(entry_points(group=ENTRY_POINT_GROUP))
    if not found:
        raise TrainingArgumentsError(
            f"{why} needs xf-parallel, which is not installed (no package registers the {ENTRY_POINT_GROUP!r} "
            "entry point); install it (pip install xf-parallel).",
            key=key,
        )
    return found[0].load()


def is_sharded(model: nn.Module) -> bool:
    """Whether some parameter of ``model`` is a DTensor (tensor parallel or FSDP2)."""
    from torch.distributed.tensor import DTensor

    return any(isinstance(p, DTensor) for p in model.parameters())


def data_parallel_dims(model: nn.Module, args: TrainingArguments) -> tuple[int, int]:
    """(rank, size) of this process among the data-parallel ones: every process of a plain or FSDP run, one
    for a tensor-parallel model over all processes (they share each batch)."""
    world = args.world_size
    if world == 1 or not is_sharded(model):
        return args.process_index, world
    from torch.distributed.tensor import DTensor

    tp = max(p.device_mesh.size() for p in model.parameters() if isinstance(p, DTensor))
    if tp != world:
        raise TrainingArgumentsError(
            f"the model is tensor parallel over {tp} of the {world} processes: the Trainer trains a TP model over "
            "all processes only; load it with a device_mesh of every process, or combine TP with data "
            "parallelism through xf_parallel.parallelize and your own loop.",
            key="model",
        )
    return 0, 1


def fsdp_reshard(args: TrainingArguments) -> bool:
    """``reshard_after_forward`` for ``args.fsdp``; unsupported options are refused naming them."""
    words = set(str(args.fsdp).split())
    modes = words & set(_FSDP_MODES)
    unknown = sorted(words - set(_FSDP_MODES) - {"auto_wrap"})
    if len(modes) != 1 or unknown:
        problem = f"{unknown} are not supported" if unknown else "it names no single sharding mode"
        raise TrainingArgumentsError(
            f"TrainingArguments.fsdp={args.fsdp!r}: {problem}; pass 'full_shard' or 'shard_grad_op' "
            "(optionally with 'auto_wrap'). For hybrid sharding or offloading, shard with xf_parallel yourself.",
            key="fsdp",
        )
    return _FSDP_MODES[modes.pop()]


def init_process_group(args: TrainingArguments) -> None:
    """Create the default process group from torchrun's environment, unless one exists."""
    if torch.distributed.is_initialized():
        return
    backend = args.ddp_backend or ("nccl" if torch.cuda.is_available() and not args.use_cpu else "gloo")
    torch.distributed.init_process_group(backend, timeout=datetime.timedelta(seconds=args.ddp_timeout))


def prepare_distributed(model: nn.Module, wrapped: nn.Module, args: TrainingArguments) -> nn.Module:
    """The module the training loop calls: ``model`` itself in one process or when it is tensor parallel,
    sharded in place with FSDP2 when ``args.fsdp`` says so, else its DDP wrapper."""
    if args.fsdp and args.world_size == 1:
        raise TrainingArgumentsError(
            f"TrainingArguments.fsdp={args.fsdp!r} in a single process: FSDP shards over processes; launch with "
            "torchrun (or xf train --nproc N), or leave fsdp unset.",
            key="fsdp",
        )
    if args.world_size == 1 or isinstance(wrapped, nn.parallel.DistributedDataParallel):
        return wrapped
    init_process_group(args)
    if is_sharded(model):  # tensor parallel from from_pretrained, or already sharded by FSDP
        if args.fsdp and not hasattr(model, "set_requires_gradient_sync"):
            raise TrainingArgumentsError(
                f"TrainingArguments.fsdp={args.fsdp!r} with a tensor-parallel model over every process leaves no "
                "process to shard over; leave fsdp unset, or build a 2-D mesh with xf_parallel.parallelize.",
                key="fsdp",
            )
        return model
    if args.fsdp:
        reshard = fsdp_reshard(args)
        return parallel_support(f"TrainingArguments.fsdp={args.fsdp!r}", key="fsdp").fsdp(
            model, reshard_after_forward=reshard
        )
    kwargs: dict[str, Any] = {
        k: v
        for k, v in (
            ("find_unused_parameters", args.ddp_find_unused_parameters),
            ("bucket_cap_mb", args.ddp_bucket_cap_mb),
            ("broadcast_buffers", args.ddp_broadcast_buffers),
        )
        if v is not None
    }
    return nn.parallel.DistributedDataParallel(model, **kwargs)


def unfuse_mixed(model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """A tensor-parallel model holds DTensors (sharded weights) beside plain tensors (norms, replicated
    weights); torch's fused and foreach optimizer kernels refuse such a mix, so its steps go parameter by
    parameter (the same arithmetic)."""
    from torch.distributed.tensor import DTensor

    kinds = {isinstance(p, DTensor) for p in model.parameters() if p.requires_grad}
    if len(kinds) < 2:
        return
    for group in optimizer.param_groups:
        for option in ("fused", "foreach"):
            if option in group:
                group[option] = False


def no_sync(wrapped: nn.Module, skip: bool) -> contextlib.AbstractContextManager[Any]:
    """Skip the gradient reduction of an accumulation micro-batch (DDP ``no_sync``, FSDP2
    ``set_requires_gradient_sync``) when ``skip``."""
    if not skip:
        return contextlib.nullcontext()
    if isinstance(wrapped, nn.parallel.DistributedDataParallel):
        return wrapped.no_sync()
    set_sync = getattr(wrapped, "set_requires_gradient_sync", None)
    if set_sync is None:
        return contextlib.nullcontext()
    return _fsdp_no_sync(set_sync)


@contextlib.contextmanager
def _fsdp_no_sync(set_sync: Any) -> Any:
    set_sync(False)
    try:
        yield
    finally:
        set_sync(True)
