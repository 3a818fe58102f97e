"""Context parallelism: the sequence split across the "cp" ranks, attention run as ring attention.

A thin guard around PyTorch's ``torch.distributed.tensor.experimental.context_parallel``, which only runs on
CUDA (NCCL, and SDPA's flash / memory-efficient kernels); elsewhere :class:`ContextParallelUnavailableError`
says so before anything is split. Inside the block the model must attend with ``attn_implementation="sdpa"``
and no explicit attention mask (causal attention, unpadded batches).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch
from torch.distributed.device_mesh import DeviceMesh

from xf_parallel.errors import ContextParallelUnavailableError

__all__ = ["context_parallel", "require_context_parallel"]


def require_context_parallel(mesh: DeviceMesh | None = None) -> None:
    """Raise :class:`ContextParallelUnavailableError` unless context parallelism can run here."""
    device = mesh.device_type if mesh is not None else ("cuda" if torch.cuda.is_available() else "cpu")
    if device != "cuda" or not torch.cuda.is_available():
        raise ContextParallelUnavailableError(
            f"context parallelism needs CUDA devices: PyTorch's ring attention runs only with NCCL and SDPA's "
            f"CUDA kernels, and this {'mesh' if mesh is not None else 'process'} is on {device!r}. Set cp=1 (use "
            "dp_shard/tp instead), or run on GPUs."
        )


@contextlib.contextmanager
def context_parallel(
    mesh: DeviceMesh,
    *,
    buffers: Sequence[torch.Tensor],
    seq_dims: Sequence[int],
    no_restore_buffers: set[torch.Tensor] | None = None,
) -> Iterator[None]:
    """Inside the block, ``buffers`` (input ids, labels, position ids, ...) hold this rank's part of the
    sequence along ``seq_dims`` and SDPA runs as ring attention over ``mesh``'s "cp" dim (or the whole 1-D mesh).
    On exit the buffers are restored unless listed in ``no_restore_buffers``."""
    require_context_parallel(mesh)
    from torch.distributed.tensor.experimental import context_parallel as torch_context_parallel

    names = mesh.mesh_dim_names or ()
    cp_mesh = mesh["cp"] if mesh.ndim > 1 and "cp" in names else mesh
    with torch_context_parallel(
        cp_mesh, buffers=list(buffers), buffer_seq_dims=list(seq_dims), no_restore_buffers=no_restore_buffers
    ):
        yield
