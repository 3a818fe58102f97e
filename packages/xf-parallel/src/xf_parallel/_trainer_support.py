"""What xf-train's ``Trainer`` asks of xf-parallel, found through the ``xf_train.parallel`` entry point (xf-train
sits below xf-parallel, so it never imports it by name): FSDP for ``TrainingArguments(fsdp=...)``, the gradient
norm of DTensor gradients, and distributed checkpoints of sharded models (FSDP or tensor parallel)."""

from __future__ import annotations

import torch.distributed as dist
from torch import nn

from xf_parallel._dist import ParallelDims, device_type
from xf_parallel.checkpoint import export_pretrained, load_checkpoint, save_checkpoint
from xf_parallel.data_parallel import clip_grad_norm_
from xf_parallel.parallelize import apply_fsdp

__all__ = ["clip_grad_norm_", "export_pretrained", "fsdp", "load_checkpoint", "save_checkpoint"]


def fsdp(model: nn.Module, *, reshard_after_forward: bool) -> nn.Module:
    """Shard ``model`` in place over every process with FSDP2 (``fully_shard`` per block, then the root);
    ``reshard_after_forward`` is transformers' "full_shard" (True) or "shard_grad_op" (False)."""
    mesh = ParallelDims(dp_shard=dist.get_world_size()).build_mesh(device_type())
    return apply_fsdp(model, mesh, reshard_after_forward=reshard_after_forward)
