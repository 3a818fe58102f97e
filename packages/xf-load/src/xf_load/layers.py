"""Layers shared by model families and by plugins (quantizers, tensor parallelism) that need to recognise
or rebuild them. Import them from here: ``from xf_load.layers import Conv1D``."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["Conv1D"]


class Conv1D(nn.Module):
    """``y = x @ weight + bias`` with ``weight`` of shape ``(in_features, out_features)``: a Linear layer whose
    weight is stored transposed, exactly as GPT-2 checkpoints store it."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.weight: nn.Parameter = nn.Parameter(torch.empty(in_features, out_features))
        self.bias: nn.Parameter = nn.Parameter(torch.empty(out_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.addmm(self.bias, x.reshape(-1, self.in_features), self.weight)
        return y.view(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}"
