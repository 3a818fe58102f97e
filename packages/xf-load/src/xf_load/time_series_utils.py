"""Distribution heads for probabilistic time-series models (transformers' ``time_series_utils`` names).

A head maps a model's features to the parameters of a distribution: :class:`ParameterProjection` (one
``nn.Linear`` per parameter) then the output class's ``domain_map`` (squareplus onto positive values, Student-T
degrees of freedom above 2). ``distribution(params, loc, scale)`` builds the ``torch.distributions`` object,
rescaled by the series' ``loc``/``scale`` through :class:`AffineTransformed` (the negative binomial folds the
scale into its logits instead). Training minimises :func:`nll`, averaged with :func:`weighted_average`.

Parameters outside their domain (a scale <= 0, df <= 0, total_count < 0) raise :class:`XfValueError` naming
the parameter, instead of torch's generic validation error or a NaN loss.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import nn
from torch.distributions import (
    AffineTransform,
    Distribution,
    Independent,
    NegativeBinomial,
    Normal,
    StudentT,
    TransformedDistribution,
)

from xf_core.errors import XfValueError

__all__ = [
    "AffineTransformed",
    "DistributionOutput",
    "LambdaLayer",
    "NegativeBinomialOutput",
    "NormalOutput",
    "ParameterProjection",
    "StudentTOutput",
    "nll",
    "weighted_average",
]


def _positive(name: str, value: Any, *, strict: bool = True) -> None:
    if isinstance(value, torch.Tensor):
        bad = (value <= 0) if strict else (value < 0)
        if bool(bad.any()) or bool(torch.isnan(value).any()):
            worst = value.detach().min().item()
            raise XfValueError(
                f"{name} must be {'> 0' if strict else '>= 0'} everywhere, got a minimum of {worst} (or NaN); "
                f"map raw outputs through the head's domain_map before building the distribution."
            )
    elif value is not None and (value <= 0 if strict else value < 0):
        raise XfValueError(f"{name} must be {'> 0' if strict else '>= 0'}, got {value}.")


class AffineTransformed(TransformedDistribution):
    """``base * scale + loc`` with the mean, variance and stddev worked out (TransformedDistribution has none)."""

    def __init__(
        self,
        base_distribution: Distribution,
        loc: torch.Tensor | float | None = None,
        scale: torch.Tensor | float | None = None,
        event_dim: int = 0,
    ) -> None:
        self.scale: float | torch.Tensor = 1.0 if scale is None else scale
        self.loc: float | torch.Tensor = 0.0 if loc is None else loc
        _positive("scale", self.scale)
        super().__init__(
            base_distribution, [AffineTransform(loc=self.loc, scale=self.scale, event_dim=event_dim)]
        )

    @property
    def mean(self) -> torch.Tensor:
        return self.base_dist.mean * self.scale + self.loc

    @property
    def variance(self) -> torch.Tensor:
        return self.base_dist.variance * self.scale**2

    @property
    def stddev(self) -> torch.Tensor:
        return self.variance.sqrt()


class ParameterProjection(nn.Module):
    """One linear layer per distribution parameter, then ``domain_map`` onto the parameters' domains."""

    def __init__(
        self, in_features: int, args_dim: dict[str, int], domain_map: Callable[..., tuple[torch.Tensor, ...]]
    ) -> None:
        super().__init__()
        self.args_dim = args_dim
        self.proj: nn.ModuleList = nn.ModuleList([nn.Linear(in_features, dim) for dim in args_dim.values()])
        self.domain_map = domain_map

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.domain_map(*(proj(x) for proj in self.proj))


class LambdaLayer(nn.Module):
    """A function as a module (so a projection's ``domain_map`` is part of the module tree)."""

    def __init__(self, function: Callable[..., Any]) -> None:
        super().__init__()
        self.function = function

    def forward(self, x: Any, *args: Any) -> Any:
        return self.function(x, *args)


class DistributionOutput:
    """Base of the heads: ``args_dim`` (parameter -> size per dimension) and ``domain_map`` per family."""

    distribution_class: ClassVar[type[Distribution]]
    args_dim: dict[str, int]

    def __init__(self, dim: int = 1) -> None:
        if not isinstance(dim, int) or dim < 1:
            raise XfValueError(f"dim (the number of target series) must be a positive integer, got {dim!r}.")
        self.dim = dim
        self.args_dim = {k: dim * v for k, v in type(self).args_dim.items()}

    def _base_distribution(self, distr_args: tuple[torch.Tensor, ...]) -> Distribution:
        # by name: the parameters of args_dim are the distribution's keywords (NegativeBinomial's 2nd is probs)
        distr = self.distribution_class(**dict(zip(type(self).args_dim, distr_args)))
        return distr if self.dim == 1 else Independent(distr, 1)

    def distribution(
        self,
        distr_args: tuple[torch.Tensor, ...],
        loc: torch.Tensor | None = None,
        scale: torch.Tensor | None = None,
    ) -> Distribution:
        self._check(distr_args)
        distr = self._base_distribution(distr_args)
        if loc is None and scale is None:
            return distr
        return AffineTransformed(distr, loc=loc, scale=scale, event_dim=self.event_dim)

    def _check(self, distr_args: tuple[torch.Tensor, ...]) -> None:
        names = list(type(self).args_dim)
        if len(distr_args) != len(names):
            raise XfValueError(
                f"{type(self).__name__} takes {len(names)} parameters ({', '.join(names)}), got {len(distr_args)}."
            )
        for name, value in zip(names, distr_args):
            if name in ("scale", "df"):
                _positive(name, value)
            elif name == "total_count":
                _positive(name, value, strict=False)

    @property
    def event_shape(self) -> tuple[int, ...]:
        return () if self.dim == 1 else (self.dim,)

    @property
    def event_dim(self) -> int:
        return len(self.event_shape)

    @property
    def value_in_support(self) -> float:
        """A value with a finite log-likelihood, used to pad series."""
        return 0.0

    def get_parameter_projection(self, in_features: int) -> nn.Module:
        return ParameterProjection(in_features, self.args_dim, LambdaLayer(self.domain_map))

    def domain_map(self, *args: torch.Tensor) -> tuple[torch.Tensor, ...]:
        raise NotImplementedError(f"{type(self).__name__} must define domain_map")

    @staticmethod
    def squareplus(x: torch.Tensor) -> torch.Tensor:
        """A smooth map onto the positive reals: (x + sqrt(x^2 + 4)) / 2."""
        return (x + torch.sqrt(torch.square(x) + 4.0)) / 2.0


class StudentTOutput(DistributionOutput):
    args_dim: ClassVar[dict[str, int]] = {"df": 1, "loc": 1, "scale": 1}
    distribution_class: ClassVar[type[Distribution]] = StudentT

    @classmethod
    def domain_map(  # type: ignore[override]
        cls, df: torch.Tensor, loc: torch.Tensor, scale: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        scale = cls.squareplus(scale).clamp_min(torch.finfo(scale.dtype).eps)
        df = 2.0 + cls.squareplus(df)
        return df.squeeze(-1), loc.squeeze(-1), scale.squeeze(-1)


class NormalOutput(DistributionOutput):
    args_dim: ClassVar[dict[str, int]] = {"loc": 1, "scale": 1}
    distribution_class: ClassVar[type[Distribution]] = Normal

    @classmethod
    def domain_map(cls, loc: torch.Tensor, scale: torch.Tensor) -> tuple[torch.Tensor, ...]:  # type: ignore[override]
        scale = cls.squareplus(scale).clamp_min(torch.finfo(scale.dtype).eps)
        return loc.squeeze(-1), scale.squeeze(-1)


class NegativeBinomialOutput(DistributionOutput):
    """Counts: the series' scale multiplies the mean by shifting the logits (``loc`` does not apply)."""

    args_dim: ClassVar[dict[str, int]] = {"total_count": 1, "logits": 1}
    distribution_class: ClassVar[type[Distribution]] = NegativeBinomial

    @classmethod
    def domain_map(  # type: ignore[override]
        cls, total_count: torch.Tensor, logits: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        return cls.squareplus(total_count).squeeze(-1), logits.squeeze(-1)

    def distribution(
        self,
        distr_args: tuple[torch.Tensor, ...],
        loc: torch.Tensor | None = None,
        scale: torch.Tensor | None = None,
    ) -> Distribution:
        self._check(distr_args)
        total_count, logits = distr_args
        if scale is not None:
            _positive("scale", scale)
            logits = logits + scale.log()  # not in place: the caller's tensor is left as it was
        return self._base_distribution((total_count, logits))


def nll(input: Distribution, target: torch.Tensor) -> torch.Tensor:
    """Negative log-likelihood of ``target`` under the predicted distribution (elementwise)."""
    return -input.log_prob(target)


def weighted_average(
    input_tensor: torch.Tensor, weights: torch.Tensor | None = None, dim: int | None = None
) -> torch.Tensor:
    """Mean of ``input_tensor`` over ``dim`` counting only entries where ``weights`` != 0 (a padding mask; a
    NaN there does not poison the mean). ``dim=0`` means dim 0 (transformers reads it as "every dim")."""
    if weights is None:
        return input_tensor.mean(dim=dim)
    weighted = torch.where(weights != 0, input_tensor * weights, torch.zeros_like(input_tensor))
    total = torch.clamp(weights.sum(dim=dim) if dim is not None else weights.sum(), min=1.0)
    return (weighted.sum(dim=dim) if dim is not None else weighted.sum()) / total
