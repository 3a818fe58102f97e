"""Small PyTorch helpers that model code and users reach for (transformers' ``pytorch_utils`` names).

``prune_linear_layer`` (head pruning), ``apply_chunking_to_forward`` (feed-forward chunking to save memory),
``id_tensor_storage`` (which tensors share memory, for tied weights and saving), ``meshgrid`` (explicit
indexing), ``isin_mps_friendly`` (``torch.isin`` that also runs on MPS), ``move_to_device`` (nested
containers) and ``compile_compatible_method_lru_cache`` (a cache that steps aside under ``torch.compile``).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, Literal

import torch
from torch import nn

from xf_core.errors import XfValueError

__all__ = [
    "apply_chunking_to_forward",
    "compile_compatible_method_lru_cache",
    "id_tensor_storage",
    "isin_mps_friendly",
    "meshgrid",
    "move_to_device",
    "prune_linear_layer",
]


@torch.no_grad()
def prune_linear_layer(layer: nn.Linear, index: torch.Tensor, dim: int = 0) -> nn.Linear:
    """A new ``nn.Linear`` keeping only rows (``dim=0``, outputs) or columns (``dim=1``, inputs) ``index``."""
    if dim not in (0, 1):
        raise XfValueError(f"prune_linear_layer: dim must be 0 (outputs) or 1 (inputs), got {dim}.")
    index = index.to(layer.weight.device)
    weight = layer.weight.index_select(dim, index)
    out_features, in_features = weight.shape
    new = nn.Linear(
        in_features, out_features, bias=layer.bias is not None, device=weight.device, dtype=weight.dtype
    )
    new.weight.copy_(weight)
    if layer.bias is not None:
        new.bias.copy_(layer.bias if dim == 1 else layer.bias[index])
    return new


def apply_chunking_to_forward(
    forward_fn: Callable[..., torch.Tensor], chunk_size: int, chunk_dim: int, *input_tensors: torch.Tensor
) -> torch.Tensor:
    """``forward_fn(*input_tensors)`` computed in chunks of ``chunk_size`` along ``chunk_dim`` (0: no chunking).

    Equal to the unchunked call when ``forward_fn`` is independent along ``chunk_dim``; peak memory of the
    intermediate activations drops by the number of chunks."""
    if not input_tensors:
        raise XfValueError("apply_chunking_to_forward needs at least one input tensor.")
    n_params = len(inspect.signature(forward_fn).parameters)
    if n_params != len(input_tensors):
        raise XfValueError(
            f"forward_fn takes {n_params} arguments but {len(input_tensors)} input tensors were given."
        )
    if chunk_size <= 0:
        return forward_fn(*input_tensors)
    length = input_tensors[0].shape[chunk_dim]
    if any(t.shape[chunk_dim] != length for t in input_tensors):
        raise XfValueError(
            f"every input must have the same size along dim {chunk_dim}: {[t.shape[chunk_dim] for t in input_tensors]}."
        )
    if length % chunk_size:
        raise XfValueError(f"dim {chunk_dim} has size {length}, not a multiple of chunk_size={chunk_size}.")
    chunks = zip(*(t.chunk(length // chunk_size, dim=chunk_dim) for t in input_tensors))
    return torch.cat([forward_fn(*chunk) for chunk in chunks], dim=chunk_dim)


def meshgrid(*tensors: torch.Tensor, indexing: Literal["ij", "xy"] | None = None) -> tuple[torch.Tensor, ...]:
    """``torch.meshgrid`` with the indexing spelled out ("ij" when None, torch's historical default)."""
    return torch.meshgrid(*tensors, indexing=indexing or "ij")


def id_tensor_storage(tensor: torch.Tensor) -> tuple[torch.device, int, int]:
    """(device, storage pointer, storage bytes): equal for tensors that share memory (e.g. tied weights).

    A DTensor is identified by its local shard. Two storages whose lifetimes do not overlap may get the same id.
    """
    local = tensor.to_local() if hasattr(tensor, "to_local") else tensor
    storage = local.untyped_storage()
    pointer = 0 if tensor.device.type == "meta" else storage.data_ptr()
    return tensor.device, pointer, storage.nbytes()


def isin_mps_friendly(elements: torch.Tensor, test_elements: torch.Tensor | int) -> torch.Tensor:
    """``torch.isin(elements, test_elements)``; on MPS (where ``isin`` was missing before torch 2.4) an
    equivalent broadcast comparison."""
    if not isinstance(test_elements, torch.Tensor):
        test_elements = torch.tensor(test_elements, device=elements.device)
    if elements.device.type == "mps":
        test = test_elements.reshape(-1).to(elements.device)
        return (elements.unsqueeze(-1) == test).any(-1)
    return torch.isin(elements, test_elements)


def move_to_device(value: Any, device: torch.device | str) -> Any:
    """Tensors in ``value`` (nested dicts, lists, tuples) moved to ``device``; everything else unchanged."""
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, dict):
        return type(value)({k: move_to_device(v, device) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return type(value)(move_to_device(v, device) for v in value)
    return value


def compile_compatible_method_lru_cache(*lru_args: Any, **lru_kwargs: Any) -> Callable[[Callable], Callable]:
    """``functools.lru_cache`` that is bypassed while dynamo traces (a cache hit is invisible to the graph)."""

    def decorator(fn: Callable) -> Callable:
        cached = functools.lru_cache(*lru_args, **lru_kwargs)(fn)

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if torch.compiler.is_compiling():
                return fn(*args, **kwargs)
            return cached(*args, **kwargs)

        wrapper.cache_clear = cached.cache_clear  # type: ignore[attr-defined]
        return wrapper

    return decorator
