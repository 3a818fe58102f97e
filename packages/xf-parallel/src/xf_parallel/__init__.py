"""Tensor, data, context and fully-sharded parallelism with torch.distributed."""

__version__ = "0.1.0"

__all__ = ["__version__"]
