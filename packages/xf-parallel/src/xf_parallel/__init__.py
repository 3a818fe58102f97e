"""Tensor, data, context and fully-sharded parallelism with torch.distributed.

Built on PyTorch's own engine (torchrun, DeviceMesh, DTensor, FSDP2 ``fully_shard``,
``torch.distributed.tensor.parallel``, ``torch.distributed.checkpoint``); composed in torchtitan's order.
"""

from importlib import metadata as _metadata

from xf_parallel._dist import ParallelDims, init_distributed
from xf_parallel.checkpoint import export_pretrained, load_checkpoint, save_checkpoint, verify_checkpoint
from xf_parallel.context_parallel import context_parallel
from xf_parallel.data_parallel import (
    ShardedSampler,
    apply_ddp,
    clip_grad_norm_,
    global_token_count,
    no_sync,
    scaled_loss,
)
from xf_parallel.errors import (
    CheckpointCorruptedError,
    CheckpointNotFoundError,
    ContextParallelUnavailableError,
    ParallelDimsError,
    ProcessGroupNotInitializedError,
    TensorParallelPlanError,
)
from xf_parallel.parallelize import (
    MixedPrecisionPolicy,
    apply_activation_checkpointing,
    apply_fsdp,
    parallelize,
)
from xf_parallel.tensor_parallel import TensorParallelLoader, apply_tp

__version__ = _metadata.version("xf-parallel")

__all__ = [
    "CheckpointCorruptedError",
    "CheckpointNotFoundError",
    "ContextParallelUnavailableError",
    "MixedPrecisionPolicy",
    "ParallelDims",
    "ParallelDimsError",
    "ProcessGroupNotInitializedError",
    "ShardedSampler",
    "TensorParallelLoader",
    "TensorParallelPlanError",
    "__version__",
    "apply_activation_checkpointing",
    "apply_ddp",
    "apply_fsdp",
    "apply_tp",
    "clip_grad_norm_",
    "context_parallel",
    "export_pretrained",
    "global_token_count",
    "init_distributed",
    "load_checkpoint",
    "no_sync",
    "parallelize",
    "save_checkpoint",
    "scaled_loss",
    "verify_checkpoint",
]
