"""Activation functions by the names configs use (``hidden_act``): a registry of plain functions.

Same numerics as transformers' activations of the same name. None of them has parameters, so none appears
in a state dict.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from xf_core.errors import XfConfigError

__all__ = ["ACTIVATIONS", "get_activation"]

Activation = Callable[[torch.Tensor], torch.Tensor]

_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


def gelu_new(x: torch.Tensor) -> torch.Tensor:
    """GPT-2's tanh approximation of GELU."""
    return 0.5 * x * (1.0 + torch.tanh(_SQRT_2_OVER_PI * (x + 0.044715 * torch.pow(x, 3.0))))


def gelu_fast(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * x * (1.0 + torch.tanh(x * 0.7978845608 * (1.0 + 0.044715 * x * x)))


def gelu_python(x: torch.Tensor) -> torch.Tensor:
    return x * 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))


def gelu_python_tanh(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * x * (1.0 + torch.tanh(_SQRT_2_OVER_PI * (x + 0.044715 * torch.pow(x, 3.0))))


def gelu_pytorch_tanh(x: torch.Tensor) -> torch.Tensor:
    return F.gelu(x, approximate="tanh")


def quick_gelu(x: torch.Tensor) -> torch.Tensor:
    return x * torch.sigmoid(1.702 * x)


def gelu_10(x: torch.Tensor) -> torch.Tensor:
    """GELU clipped to [-10, 10] (for quantization-friendly ranges)."""
    return torch.clip(F.gelu(x), -10.0, 10.0)


def laplace(x: torch.Tensor, mu: float = 0.707107, sigma: float = 0.282095) -> torch.Tensor:
    x = (x - mu).div(sigma * math.sqrt(2.0))
    return 0.5 * (1.0 + torch.erf(x))


def relu2(x: torch.Tensor) -> torch.Tensor:
    return torch.square(F.relu(x))


def sqrtsoftplus(x: torch.Tensor) -> torch.Tensor:
    return torch.sqrt(F.softplus(x))


def linear(x: torch.Tensor) -> torch.Tensor:
    return x


ACTIVATIONS: dict[str, Activation] = {
    "gelu": F.gelu,
    "gelu_10": gelu_10,
    "gelu_accurate": gelu_new,
    "gelu_fast": gelu_fast,
    "gelu_new": gelu_new,
    "gelu_python": gelu_python,
    "gelu_python_tanh": gelu_python_tanh,
    "gelu_pytorch_tanh": gelu_pytorch_tanh,
    "hardswish": F.hardswish,
    "laplace": laplace,
    "leaky_relu": F.leaky_relu,
    "linear": linear,
    "mish": F.mish,
    "quick_gelu": quick_gelu,
    "relu": F.relu,
    "relu2": relu2,
    "relu6": F.relu6,
    "sigmoid": torch.sigmoid,
    "silu": F.silu,
    "sqrtsoftplus": sqrtsoftplus,
    "swish": F.silu,
    "tanh": torch.tanh,
}


def get_activation(name: str, *, key: str = "hidden_act") -> Activation:
    """The activation called ``name``; an unknown name raises an error naming the config ``key`` and listing the
    known ones (so a config's ``validate`` can call it too)."""
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise XfConfigError(
            f"{key}={name!r} is unknown; known: {', '.join(sorted(ACTIVATIONS))}.", key=key
        ) from None
