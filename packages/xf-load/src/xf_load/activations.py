"""Activation functions by the names configs use (``hidden_act``): a registry of plain functions, and the same
activations as ``nn.Module`` classes under transformers' names (``ACT2CLS``, ``ACT2FN``) for code that wants a
module (``ACT2FN["gelu"]`` is a fresh ``GELUActivation()``, as in transformers).

Same numerics as transformers' activations of the same name. Only ``xielu`` has parameters (a module only).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from xf_core.errors import XfConfigError

__all__ = ["ACT2CLS", "ACT2FN", "ACTIVATIONS", "get_activation"]

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


# ---- the same activations as modules, under transformers' class names ----------------------------------------
class _FunctionActivation(nn.Module):
    """A parameter-free activation module: ``forward`` is the registry function ``fn``."""

    fn: ClassVar[Activation]

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return type(self).fn(input)


class NewGELUActivation(_FunctionActivation):
    """GPT-2's tanh approximation of GELU."""

    fn: ClassVar[Activation] = staticmethod(gelu_new)


class FastGELUActivation(_FunctionActivation):
    """A faster tanh approximation of GELU."""

    fn: ClassVar[Activation] = staticmethod(gelu_fast)


class QuickGELUActivation(_FunctionActivation):
    """x * sigmoid(1.702 x)."""

    fn: ClassVar[Activation] = staticmethod(quick_gelu)


class AccurateGELUActivation(_FunctionActivation):
    """The tanh approximation of GELU."""

    fn: ClassVar[Activation] = staticmethod(gelu_new)


class MishActivation(_FunctionActivation):
    """x * tanh(softplus(x))."""

    fn: ClassVar[Activation] = staticmethod(F.mish)


class LinearActivation(_FunctionActivation):
    """The identity."""

    fn: ClassVar[Activation] = staticmethod(linear)


class LaplaceActivation(_FunctionActivation):
    """The Laplace CDF (MEGA)."""

    fn: ClassVar[Activation] = staticmethod(laplace)


class ReLUSquaredActivation(_FunctionActivation):
    """relu(x) ** 2 (Primer)."""

    fn: ClassVar[Activation] = staticmethod(relu2)


class SqrtSoftplusActivation(_FunctionActivation):
    """sqrt(softplus(x))."""

    fn: ClassVar[Activation] = staticmethod(sqrtsoftplus)


class SiLUActivation(_FunctionActivation):
    """x * sigmoid(x)."""

    fn: ClassVar[Activation] = staticmethod(F.silu)


class GELUActivation(nn.Module):
    """Exact GELU; ``use_gelu_python`` computes it with ``erf`` in Python (transformers' ``gelu_python``)."""

    def __init__(self, use_gelu_python: bool = False) -> None:
        super().__init__()
        self.act: Activation = gelu_python if use_gelu_python else F.gelu

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return self.act(input)


class GELUTanh(nn.Module):
    """The tanh approximation of GELU, by torch's kernel or (``use_gelu_tanh_python``) in Python."""

    def __init__(self, use_gelu_tanh_python: bool = False) -> None:
        super().__init__()
        self.act: Activation = gelu_python_tanh if use_gelu_tanh_python else gelu_pytorch_tanh

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return self.act(input)


PytorchGELUTanh = GELUTanh


class ClippedGELUActivation(nn.Module):
    """GELU clipped to ``[min, max]`` (quantization-friendly ranges)."""

    def __init__(self, min: float, max: float) -> None:
        if min > max:
            raise XfConfigError(
                f"ClippedGELUActivation needs min <= max, got min={min}, max={max}.", key="min"
            )
        super().__init__()
        self.min: float = min
        self.max: float = max

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clip(F.gelu(x), self.min, self.max)


class XIELUActivation(nn.Module):
    """xIELU (arXiv 2411.13010): trainable positive/negative slopes; transformers' parameter and buffer names."""

    def __init__(
        self,
        alpha_p_init: float = 0.8,
        alpha_n_init: float = 0.8,
        beta: float = 0.5,
        eps: float = -1e-6,
        dtype: torch.dtype = torch.bfloat16,
        with_vector_loads: bool = False,
    ) -> None:
        super().__init__()
        inverse_softplus = lambda v: torch.log(torch.expm1(torch.tensor(v, dtype=dtype))).unsqueeze(0)  # noqa: E731
        self.alpha_p: nn.Parameter = nn.Parameter(inverse_softplus(alpha_p_init))
        self.alpha_n: nn.Parameter = nn.Parameter(inverse_softplus(alpha_n_init - beta))
        self.register_buffer("beta", torch.tensor(beta, dtype=dtype))
        self.register_buffer("eps", torch.tensor(eps, dtype=dtype))
        self.with_vector_loads = with_vector_loads

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        alpha_p = F.softplus(self.alpha_p)
        alpha_n = self.beta + F.softplus(self.alpha_n)
        positive = alpha_p * input * input + self.beta * input
        negative = (torch.expm1(torch.min(input, self.eps)) - input) * alpha_n + self.beta * input
        return torch.where(input > 0, positive, negative)


ACT2CLS: dict[str, type[nn.Module] | tuple[type[nn.Module], dict[str, Any]]] = {
    "gelu": GELUActivation,
    "gelu_10": (ClippedGELUActivation, {"min": -10, "max": 10}),
    "gelu_accurate": AccurateGELUActivation,
    "gelu_fast": FastGELUActivation,
    "gelu_new": NewGELUActivation,
    "gelu_python": (GELUActivation, {"use_gelu_python": True}),
    "gelu_python_tanh": (GELUTanh, {"use_gelu_tanh_python": True}),
    "gelu_pytorch_tanh": GELUTanh,
    "hardswish": nn.Hardswish,
    "laplace": LaplaceActivation,
    "leaky_relu": nn.LeakyReLU,
    "linear": LinearActivation,
    "mish": MishActivation,
    "prelu": nn.PReLU,
    "quick_gelu": QuickGELUActivation,
    "relu": nn.ReLU,
    "relu2": ReLUSquaredActivation,
    "relu6": nn.ReLU6,
    "sigmoid": nn.Sigmoid,
    "silu": SiLUActivation,
    "sqrtsoftplus": SqrtSoftplusActivation,
    "swish": nn.SiLU,
    "tanh": nn.Tanh,
    "xielu": XIELUActivation,
}


class _Instantiator(dict[str, Any]):
    """``ACT2FN[name]`` -> a new module of ``ACT2CLS[name]`` (with its preset arguments); an unknown name
    raises the same error as :func:`get_activation`."""

    def __getitem__(self, name: str) -> nn.Module:
        if name not in self:
            get_activation(name)  # raises XfConfigError naming the known ones
            raise XfConfigError(f"hidden_act={name!r} has no module form; known: {', '.join(sorted(self))}.")
        entry = super().__getitem__(name)
        cls, kwargs = entry if isinstance(entry, tuple) else (entry, {})
        return cls(**kwargs)


ACT2FN = _Instantiator(ACT2CLS)
