"""Weight initialisers for the families' ``_init_weights`` tables: in place, without autograd, and a no-op
for ``None`` (an absent bias) so a table needs no ``if`` per optional parameter, for ``meta`` tensors (a model
being built for loading has nothing to initialise), and for tensors already loaded (flagged with
:func:`mark_initialized`, transformers' ``_is_hf_initialized``), so initialising the weights a checkpoint lacks
never overwrites the ones it had.

:func:`skip_torch_init` turns torch's own initialisers (called by ``nn.Linear.__init__`` and friends) into
no-ops while a model is built on ``meta``: running them there costs nothing numerically but imports torch's
reference kernels, seconds of work for no result.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch

__all__ = [
    "constant_",
    "copy_",
    "guard_torch_init_functions",
    "kaiming_normal_",
    "kaiming_uniform_",
    "mark_initialized",
    "no_init_weights",
    "normal_",
    "ones_",
    "orthogonal_",
    "skip_torch_init",
    "trunc_normal_",
    "uniform_",
    "xavier_normal_",
    "xavier_uniform_",
    "zeros_",
]

_TORCH_INITS = (
    "uniform_",
    "normal_",
    "trunc_normal_",
    "constant_",
    "ones_",
    "zeros_",
    "xavier_uniform_",
    "xavier_normal_",
    "kaiming_uniform_",
    "kaiming_normal_",
    "orthogonal_",
)


def _keep(tensor: torch.Tensor, *args: object, **kwargs: object) -> torch.Tensor:
    return tensor


# torch's own initialisers, recorded before anything patches them.
_TORCH = {name: getattr(torch.nn.init, name) for name in _TORCH_INITS}


@contextlib.contextmanager
def _patched(replacements: dict[str, Any]) -> Iterator[None]:
    saved = {name: getattr(torch.nn.init, name) for name in replacements}
    try:
        for name, fn in replacements.items():
            setattr(torch.nn.init, name, fn)
        yield
    finally:
        for name, fn in saved.items():
            setattr(torch.nn.init, name, fn)


@contextlib.contextmanager
def skip_torch_init() -> Iterator[None]:
    """Within the block, ``torch.nn.init.*_`` functions return their tensor untouched."""
    with _patched(dict.fromkeys(_TORCH_INITS, _keep)):
        yield


def _skip(tensor: torch.Tensor | None) -> bool:
    """None (an absent bias), a ``meta`` tensor, or one already loaded (``_is_hf_initialized``) is left alone."""
    return tensor is None or tensor.device.type == "meta" or getattr(tensor, "_is_hf_initialized", False)


def mark_initialized(tensor: torch.Tensor) -> None:
    """Flag ``tensor`` as loaded: every initialiser here (and torch's, under :func:`guard_torch_init_functions`)
    skips it afterwards (transformers' ``_is_hf_initialized``)."""
    tensor._is_hf_initialized = True  # type: ignore[attr-defined]


@torch.no_grad()
def normal_(
    tensor: torch.Tensor | None, mean: float = 0.0, std: float = 1.0, generator: torch.Generator | None = None
) -> torch.Tensor | None:
    if not _skip(tensor):
        _TORCH["normal_"](tensor, mean=mean, std=std, generator=generator)
    return tensor


@torch.no_grad()
def uniform_(
    tensor: torch.Tensor | None, a: float = 0.0, b: float = 1.0, generator: torch.Generator | None = None
) -> torch.Tensor | None:
    if not _skip(tensor):
        _TORCH["uniform_"](tensor, a=a, b=b, generator=generator)
    return tensor


@torch.no_grad()
def zeros_(tensor: torch.Tensor | None) -> torch.Tensor | None:
    if not _skip(tensor):
        tensor.zero_()
    return tensor


@torch.no_grad()
def ones_(tensor: torch.Tensor | None) -> torch.Tensor | None:
    if not _skip(tensor):
        tensor.fill_(1.0)
    return tensor


@torch.no_grad()
def constant_(tensor: torch.Tensor | None, value: float) -> torch.Tensor | None:
    if not _skip(tensor):
        tensor.fill_(value)
    return tensor


@torch.no_grad()
def copy_(tensor: torch.Tensor | None, other: torch.Tensor) -> torch.Tensor | None:
    if not _skip(tensor):
        tensor.copy_(other)
    return tensor


@torch.no_grad()
def trunc_normal_(
    tensor: torch.Tensor | None,
    mean: float = 0.0,
    std: float = 1.0,
    a: float = -2.0,
    b: float = 2.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor | None:
    if not _skip(tensor):
        _TORCH["trunc_normal_"](tensor, mean=mean, std=std, a=a, b=b, generator=generator)
    return tensor


@torch.no_grad()
def xavier_uniform_(
    tensor: torch.Tensor | None, gain: float = 1.0, generator: torch.Generator | None = None
) -> torch.Tensor | None:
    if not _skip(tensor):
        _TORCH["xavier_uniform_"](tensor, gain=gain, generator=generator)
    return tensor


@torch.no_grad()
def xavier_normal_(
    tensor: torch.Tensor | None, gain: float = 1.0, generator: torch.Generator | None = None
) -> torch.Tensor | None:
    if not _skip(tensor):
        _TORCH["xavier_normal_"](tensor, gain=gain, generator=generator)
    return tensor


@torch.no_grad()
def kaiming_uniform_(
    tensor: torch.Tensor | None,
    a: float = 0.0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
    generator: torch.Generator | None = None,
) -> torch.Tensor | None:
    if not _skip(tensor):
        _TORCH["kaiming_uniform_"](tensor, a=a, mode=mode, nonlinearity=nonlinearity, generator=generator)
    return tensor


@torch.no_grad()
def kaiming_normal_(
    tensor: torch.Tensor | None,
    a: float = 0.0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
    generator: torch.Generator | None = None,
) -> torch.Tensor | None:
    if not _skip(tensor):
        _TORCH["kaiming_normal_"](tensor, a=a, mode=mode, nonlinearity=nonlinearity, generator=generator)
    return tensor


@torch.no_grad()
def orthogonal_(
    tensor: torch.Tensor | None, gain: float = 1.0, generator: torch.Generator | None = None
) -> torch.Tensor | None:
    if not _skip(tensor):
        _TORCH["orthogonal_"](tensor, gain=gain, generator=generator)
    return tensor


def _guarded(name: str) -> Any:
    def guarded(tensor: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        if _skip(tensor):
            return tensor
        return _TORCH[name](tensor, *args, **kwargs)

    return guarded


@contextlib.contextmanager
def guard_torch_init_functions() -> Iterator[None]:
    """Within the block, ``torch.nn.init.*_`` skip meta tensors and tensors flagged by :func:`mark_initialized`
    (so a module's own ``reset_parameters`` cannot overwrite loaded weights)."""
    with _patched({name: _guarded(name) for name in _TORCH_INITS}):
        yield


@contextlib.contextmanager
def no_init_weights() -> Iterator[None]:
    """Within the block, building a model initialises nothing: torch's initialisers and
    ``PreTrainedModel.init_weights`` are no-ops (for weights that will be loaded right after)."""
    from xf_load.modeling_utils import PreTrainedModel

    original = PreTrainedModel.init_weights
    PreTrainedModel.init_weights = lambda self: None  # type: ignore[method-assign]
    try:
        with skip_torch_init():
            yield
    finally:
        PreTrainedModel.init_weights = original  # type: ignore[method-assign]
