"""Data parallelism: a sampler that deals each sample to exactly one rank, DDP with ``no_sync`` during gradient
accumulation, the global token count for loss normalisation, and DTensor-aware gradient clipping.

Loss normalisation: with gradient accumulation over ranks and micro-batches, summing each micro-batch's token
losses and dividing by the number of target tokens in the *whole* global batch (all ranks, all micro-batches)
gives the same gradient as one process on the whole batch. DDP averages gradients over ranks, so each rank
multiplies its loss by the world size (:func:`scaled_loss`).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.tensor import DTensor

__all__ = ["ShardedSampler", "apply_ddp", "clip_grad_norm_", "global_token_count", "no_sync", "scaled_loss"]

IGNORE_INDEX = -100


class ShardedSampler(torch.utils.data.Sampler[int]):
    """Indices of this rank's samples: a permutation of ``range(num_samples)`` seeded by ``seed + epoch``,
    dealt round-robin, so across ranks every sample comes exactly once per epoch (ranks may get one sample
    fewer than others; nothing is padded or dropped unless ``drop_last`` asks every rank to stop at the
    same count). Call :meth:`set_epoch` each epoch; ``start`` skips samples already seen (resume)."""

    def __init__(
        self,
        num_samples: int,
        *,
        rank: int | None = None,
        world_size: int | None = None,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
    ) -> None:
        if not isinstance(num_samples, int) or num_samples < 0:
            raise ValueError(f"num_samples={num_samples!r} must be a non-negative integer (len(dataset)).")
        initialised = dist.is_available() and dist.is_initialized()
        self.world_size: int = (
            world_size if world_size is not None else (dist.get_world_size() if initialised else 1)
        )
        self.rank: int = rank if rank is not None else (dist.get_rank() if initialised else 0)
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank={self.rank} must be in [0, world_size={self.world_size}).")
        self.num_samples: int = num_samples
        self.shuffle: bool = shuffle
        self.seed: int = seed
        self.drop_last: bool = drop_last
        self.epoch: int = 0
        self.start: int = 0

    def set_epoch(self, epoch: int) -> None:
        """Start epoch ``epoch`` (a new order) from its first sample."""
        self.epoch, self.start = epoch, 0

    def state_dict(self) -> dict[str, int]:
        """The data position: epoch and samples already taken by this rank (save it with the checkpoint)."""
        return {"epoch": self.epoch, "start": self.start}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Resume at the position :meth:`state_dict` returned."""
        self.epoch, self.start = int(state["epoch"]), int(state["start"])

    def _order(self) -> list[int]:
        if not self.shuffle:
            return list(range(self.num_samples))
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        return torch.randperm(self.num_samples, generator=g).tolist()

    def __iter__(self) -> Iterator[int]:
        mine = self._order()[self.rank :: self.world_size]
        if self.drop_last:
            mine = mine[: self.num_samples // self.world_size]
        return iter(mine[self.start :])

    def __len__(self) -> int:
        if self.drop_last:
            return self.num_samples // self.world_size - self.start
        return max(0, len(range(self.rank, self.num_samples, self.world_size)) - self.start)


def apply_ddp(model: nn.Module, mesh: DeviceMesh | None = None, **ddp_kwargs: Any) -> nn.Module:
    """``model`` wrapped in :class:`~torch.nn.parallel.DistributedDataParallel` over ``mesh``'s "dp" (or only)
    dim, or the default group: gradients are averaged over ranks in ``backward``."""
    group = None
    if mesh is not None:
        names = mesh.mesh_dim_names or ()
        sub = mesh["dp_replicate"] if "dp_replicate" in names and mesh.ndim > 1 else mesh
        group = sub.get_group()
    device_ids = [torch.cuda.current_device()] if torch.cuda.is_available() else None
    return nn.parallel.DistributedDataParallel(
        model, device_ids=device_ids, process_group=group, **ddp_kwargs
    )


@contextlib.contextmanager
def no_sync(model: nn.Module, *, sync: bool = False) -> Iterator[None]:
    """Skip the gradient all-reduce inside the block (accumulation micro-batches) unless ``sync``; works for
    DDP (``no_sync``) and FSDP2 (``set_requires_gradient_sync``), and is a no-op for an unwrapped model."""
    if sync:
        yield
    elif isinstance(model, nn.parallel.DistributedDataParallel):
        with model.no_sync():
            yield
    elif callable(set_sync := getattr(model, "set_requires_gradient_sync", None)):
        set_sync(False)
        try:
            yield
        finally:
            set_sync(True)
    else:
        yield


def global_token_count(
    labels: Iterable[torch.Tensor], *, group: dist.ProcessGroup | None = None, causal: bool = True
) -> int:
    """The number of target tokens (labels != -100, after the causal shift unless ``causal=False``, e.g. masked
    LM) in all of ``labels`` summed over the data-parallel ranks of ``group`` (default: every rank; pass the
    "dp" mesh dim's group when TP or CP ranks share a batch). Without a process group: this process's count."""
    count = torch.zeros((), dtype=torch.long)
    for label in labels:
        count += ((label[..., 1:] if causal else label) != IGNORE_INDEX).sum().cpu()
    if dist.is_available() and dist.is_initialized():
        if dist.get_backend(group) == "nccl":
            count = count.cuda()
        dist.all_reduce(count, group=group)
    return int(count.item())


def scaled_loss(token_loss_sum: torch.Tensor, global_tokens: int, *, dp_degree: int) -> torch.Tensor:
    """The per-rank loss whose DDP/FSDP-averaged gradient equals one process's over the whole global batch:
    ``sum of token losses / global token count × dp degree`` (the average over ``dp_degree`` ranks undoes the
    last factor)."""
    return token_loss_sum * (dp_degree / max(global_tokens, 1))


def clip_grad_norm_(
    parameters: Iterable[torch.Tensor] | torch.Tensor, max_norm: float, *, norm_type: float = 2.0
) -> torch.Tensor:
    """Scale the gradients so their global norm is at most ``max_norm``; returns the global norm (a plain
    tensor, the same on every rank). Gradients may be DTensors (FSDP, TP, 2D) or plain tensors mixed: each
    DTensor's norm is reduced over its mesh, so every rank sees the norm of the full model."""
    params: Sequence[torch.Tensor] = (
        [parameters] if isinstance(parameters, torch.Tensor) else list(parameters)
    )
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(())
    norms = []
    for g in grads:
        n = torch.linalg.vector_norm(g, norm_type)
        norms.append((n.full_tensor() if isinstance(n, DTensor) else n).float())
    if math.isinf(norm_type):
        total = torch.stack([n.to(norms[0].device) for n in norms]).max()
    else:
        total = torch.linalg.vector_norm(torch.stack([n.to(norms[0].device) for n in norms]), norm_type)
    coef = min(max_norm / (float(total) + 1e-6), 1.0)
    if coef < 1.0:
        for g in grads:  # one by one: a foreach op refuses DTensors mixed with plain tensors
            g.mul_(coef)
    return total
