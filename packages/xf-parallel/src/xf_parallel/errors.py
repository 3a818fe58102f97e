"""Typed errors of xf-parallel. Each names what is wrong (the dim, the module, the file) and how to fix it."""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "CheckpointCorruptedError",
    "CheckpointNotFoundError",
    "ContextParallelUnavailableError",
    "ParallelDimsError",
    "ProcessGroupNotInitializedError",
    "TensorParallelPlanError",
]


class ParallelDimsError(ValueError):
    """The parallel degrees do not multiply to the world size (the message shows the equation), or a degree is
    not a positive integer / -1. ``dims`` maps each dim to its degree."""

    def __init__(self, message: str, *, dims: dict[str, int], world_size: int) -> None:
        super().__init__(message)
        self.dims: dict[str, int] = dims
        self.world_size: int = world_size


class ProcessGroupNotInitializedError(RuntimeError):
    """Something needs ``torch.distributed`` initialised (tensor-parallel loading, a device mesh) and it is not;
    launch with torchrun and call :func:`xf_parallel.init_distributed` first."""


class TensorParallelPlanError(ValueError):
    """A tensor-parallel plan does not fit the model: an unknown style, a pattern that matches no module, or a
    size (heads, features) the TP degree does not divide. ``module`` names the module, when one is at fault."""

    def __init__(self, message: str, *, module: str | None = None) -> None:
        super().__init__(message)
        self.module: str | None = module


class ContextParallelUnavailableError(RuntimeError):
    """Context parallelism was asked for where PyTorch cannot run it (it needs CUDA devices and NCCL)."""


class CheckpointNotFoundError(FileNotFoundError):
    """The directory holds no complete distributed checkpoint (no manifest: missing, or a save that did not
    finish). ``path`` is the directory."""

    def __init__(self, message: str, *, path: str | Path) -> None:
        super().__init__(message)
        self.path: Path = Path(path)


class CheckpointCorruptedError(OSError):
    """A file of a distributed checkpoint differs from the checksum manifest written after it (flipped bytes,
    truncation, a missing shard). ``file`` names it."""

    def __init__(self, message: str, *, file: str | Path) -> None:
        super().__init__(message)
        self.file: Path = Path(file)
