"""Process groups and the device mesh: :func:`init_distributed` and :class:`ParallelDims` (torchtitan's shape).

torchrun sets ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``/``MASTER_ADDR``; :func:`init_distributed` reads them
(NCCL on CUDA, gloo on CPU). :class:`ParallelDims` holds one degree per kind of parallelism and builds the
named :class:`~torch.distributed.device_mesh.DeviceMesh` of the dims larger than one, in torchtitan's order
(``dp_replicate``, ``dp_shard``, ``cp``, ``tp``: the innermost dim changes fastest, so TP ranks are neighbours).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, fields
from datetime import timedelta

import torch
import torch.distributed as dist
from torch.distributed.device_mesh import DeviceMesh, init_device_mesh

from xf_parallel.errors import ParallelDimsError, ProcessGroupNotInitializedError

__all__ = ["ParallelDims", "device_type", "init_distributed", "require_process_group"]

_DIMS = ("dp_replicate", "dp_shard", "cp", "tp")


def device_type() -> str:
    """ "cuda" when this process has a CUDA device, else "cpu"."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def init_distributed(*, backend: str | None = None, timeout_s: float = 600.0) -> None:
    """Initialise the default process group from torchrun's environment; a no-op when already initialised.

    ``backend`` defaults to "nccl" with CUDA (each process then uses the GPU ``LOCAL_RANK``), else "gloo".
    Without torchrun's variables (a plain ``python script.py``) it starts a one-process group, so code written
    for several ranks runs unchanged on one.
    """
    if dist.is_initialized():
        return
    if backend is None:
        backend = "nccl" if device_type() == "cuda" else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    if "RANK" not in os.environ:  # a single process outside torchrun
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", str(_free_port()))
        os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0")
    dist.init_process_group(backend=backend, timeout=timedelta(seconds=timeout_s))


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def require_process_group(what: str) -> None:
    """Raise :class:`ProcessGroupNotInitializedError` saying ``what`` needs one, unless one is initialised."""
    if not (dist.is_available() and dist.is_initialized()):
        raise ProcessGroupNotInitializedError(
            f"{what} needs torch.distributed to be initialised; launch the script with "
            "`torchrun --nproc_per_node=N script.py` and call xf_parallel.init_distributed() (then build the "
            "mesh with ParallelDims(...).build_mesh()) before it."
        )


@dataclass
class ParallelDims:
    """The degree of each kind of parallelism; one dim may be -1 (inferred from the world size).

    ``dp_replicate``: replicated data parallel (DDP, or HSDP's replica groups); ``dp_shard``: FSDP sharding;
    ``cp``: context parallel (sequence split; CUDA only); ``tp``: tensor parallel. ``world_size`` defaults to
    the initialised process group's size.
    """

    dp_replicate: int = 1
    dp_shard: int = 1
    tp: int = 1
    cp: int = 1
    world_size: int | None = None

    def __post_init__(self) -> None:
        degrees = {name: getattr(self, name) for name in _DIMS}
        for name, value in degrees.items():
            if isinstance(value, bool) or not isinstance(value, int) or (value < 1 and value != -1):
                raise ParallelDimsError(
                    f"{name}={value!r} must be a positive integer, or -1 to infer it from the world size.",
                    dims=degrees,
                    world_size=self.world_size or 0,
                )
        if self.world_size is None:
            require_process_group("ParallelDims without world_size")
            self.world_size = dist.get_world_size()
        inferred = [name for name, value in degrees.items() if value == -1]
        if len(inferred) > 1:
            raise ParallelDimsError(
                f"only one dim may be -1 (inferred), but {', '.join(inferred)} are; give all but one of them.",
                dims=degrees,
                world_size=self.world_size,
            )
        known = math.prod(v for v in degrees.values() if v != -1)
        if inferred and self.world_size % known == 0:
            setattr(self, inferred[0], self.world_size // known)
            degrees[inferred[0]] = self.world_size // known
        product = math.prod(degrees.values())
        if (inferred and getattr(self, inferred[0]) == -1) or product != self.world_size:
            equation = " × ".join(f"{name} {'?' if v == -1 else v}" for name, v in degrees.items())
            result = "?" if inferred else str(product)
            raise ParallelDimsError(
                f"{equation} = {result}, but the world size is {self.world_size}; choose degrees whose product is "
                f"the number of processes (torchrun --nproc_per_node), or set one dim to -1 to infer it.",
                dims=degrees,
                world_size=self.world_size,
            )

    @property
    def dp(self) -> int:
        """The data-parallel degree (batches are split this many ways)."""
        return self.dp_replicate * self.dp_shard

    def as_dict(self) -> dict[str, int]:
        """The four degrees by name (dp_replicate, dp_shard, tp, cp)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name in _DIMS}

    def build_mesh(self, device: str | None = None) -> DeviceMesh:
        """The named mesh of the dims larger than one (a 1-D "dp_shard" mesh of size 1 when all are one).

        Flattened views torchtitan uses are added when their parts exist: "dp" (dp_replicate × dp_shard: batch
        split and loss averaging) and "dp_shard_cp" (dp_shard × cp: what FSDP shards over).
        """
        require_process_group("ParallelDims.build_mesh()")
        names = [name for name in _DIMS if getattr(self, name) > 1] or ["dp_shard"]
        shape = tuple(getattr(self, name) for name in names)
        mesh = init_device_mesh(device or device_type(), shape, mesh_dim_names=tuple(names))
        dp_names = tuple(n for n in ("dp_replicate", "dp_shard") if n in names)
        if len(dp_names) > 1:
            mesh[dp_names]._flatten("dp")
        shard_names = tuple(n for n in ("dp_shard", "cp") if n in names)
        if len(shard_names) > 1:
            mesh[shard_names]._flatten("dp_shard_cp")
        return mesh
