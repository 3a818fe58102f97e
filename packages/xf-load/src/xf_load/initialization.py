"""Weight initialisers for the families' ``_init_weights`` tables: in place, without autograd, and a no-op
for ``None`` (an absent bias) so a table needs no ``if`` per optional parameter."""

from __future__ import annotations

import torch

__all__ = ["constant_", "normal_", "ones_", "zeros_"]


@torch.no_grad()
def normal_(tensor: torch.Tensor | None, *, mean: float = 0.0, std: float = 1.0) -> None:
    if tensor is not None:
        tensor.normal_(mean=mean, std=std)


@torch.no_grad()
def zeros_(tensor: torch.Tensor | None) -> None:
    if tensor is not None:
        tensor.zero_()


@torch.no_grad()
def ones_(tensor: torch.Tensor | None) -> None:
    if tensor is not None:
        tensor.fill_(1.0)


@torch.no_grad()
def constant_(tensor: torch.Tensor | None, value: float) -> None:
    if tensor is not None:
        tensor.fill_(value)
