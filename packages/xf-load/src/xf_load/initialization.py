"""Weight initialisers for the families' ``_init_weights`` tables: in place, without autograd, and a no-op
for ``None`` (an absent bias) so a table needs no ``if`` per optional parameter, and for ``meta`` tensors
(a model being built for loading has nothing to initialise).

:func:`skip_torch_init` turns torch's own initialisers (called by ``nn.Linear.__init__`` and friends) into
no-ops while a model is built on ``meta``: running them there costs nothing numerically but imports torch's
reference kernels, seconds of work for no result.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

__all__ = ["constant_", "normal_", "ones_", "skip_torch_init", "zeros_"]

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


@contextlib.contextmanager
def skip_torch_init() -> Iterator[None]:
    """Within the block, ``torch.nn.init.*_`` functions return their tensor untouched."""
    saved = {name: getattr(torch.nn.init, name) for name in _TORCH_INITS}
    try:
        for name in _TORCH_INITS:
            setattr(torch.nn.init, name, _keep)
        yield
    finally:
        for name, fn in saved.items():
            setattr(torch.nn.init, name, fn)


def _skip(tensor: torch.Tensor | None) -> bool:
    return tensor is None or tensor.device.type == "meta"


@torch.no_grad()
def normal_(tensor: torch.Tensor | None, *, mean: float = 0.0, std: float = 1.0) -> None:
    if not _skip(tensor):
        tensor.normal_(mean=mean, std=std)


@torch.no_grad()
def zeros_(tensor: torch.Tensor | None) -> None:
    if not _skip(tensor):
        tensor.zero_()


@torch.no_grad()
def ones_(tensor: torch.Tensor | None) -> None:
    if not _skip(tensor):
        tensor.fill_(1.0)


@torch.no_grad()
def constant_(tensor: torch.Tensor | None, value: float) -> None:
    if not _skip(tensor):
        tensor.fill_(value)
