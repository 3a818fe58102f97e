"""Tensor, data, context and fully-sharded parallelism with torch.distributed."""

from importlib import metadata as _metadata

__version__ = _metadata.version("xf-parallel")

__all__ = ["__version__"]
