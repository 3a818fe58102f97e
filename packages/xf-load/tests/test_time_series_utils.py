"""Distribution heads against transformers' time_series_utils and torch.distributions on the same inputs."""

from __future__ import annotations

import pytest
import torch
import transformers.time_series_utils as hf
from transformers.models.time_series_transformer import modeling_time_series_transformer as hf_model

from xf_core.errors import XfValueError
from xf_load import time_series_utils as ts

HEADS = ["StudentTOutput", "NormalOutput", "NegativeBinomialOutput"]


def _head_pair(name: str, dim: int, in_features: int = 8):
    ours, theirs = getattr(ts, name)(dim=dim), getattr(hf, name)(dim=dim)
    torch.manual_seed(0)
    proj_ours = ours.get_parameter_projection(in_features)
    torch.manual_seed(0)
    proj_theirs = theirs.get_parameter_projection(in_features)
    return ours, theirs, proj_ours, proj_theirs


@pytest.mark.parametrize("name", HEADS)
@pytest.mark.parametrize("dim", [1, 3])
@pytest.mark.parametrize("scaled", [False, True])
def test_head_equals_transformers(name, dim, scaled):
    ours, theirs, proj_ours, proj_theirs = _head_pair(name, dim)
    assert ours.args_dim == theirs.args_dim and ours.event_shape == theirs.event_shape
    assert sorted(proj_ours.state_dict()) == sorted(proj_theirs.state_dict())
    g = torch.Generator().manual_seed(1)
    features = torch.randn(4, 5, 8, generator=g)
    params_ours, params_theirs = proj_ours(features), proj_theirs(features)
    for a, b in zip(params_ours, params_theirs):
        torch.testing.assert_close(a, b)
    stat_shape = (4, 1) if dim == 1 else (4, 1, dim)  # per-series loc/scale, broadcast over time
    loc = torch.randn(stat_shape, generator=g) if scaled and name != "NegativeBinomialOutput" else None
    scale = torch.rand(stat_shape, generator=g) + 0.5 if scaled else None
    d_ours = ours.distribution(params_ours, loc=loc, scale=scale)
    d_theirs = theirs.distribution(tuple(p.clone() for p in params_theirs), loc=loc, scale=scale)
    target = d_theirs.sample()
    torch.testing.assert_close(ts.nll(d_ours, target), hf_model.nll(d_theirs, target))
    torch.testing.assert_close(d_ours.mean, d_theirs.mean)
    torch.testing.assert_close(d_ours.variance, d_theirs.variance)


def test_affine_transformed_moments_match_torch_distributions():
    base = torch.distributions.Normal(torch.tensor([1.0, -2.0]), torch.tensor([0.5, 3.0]))
    scaled = ts.AffineTransformed(base, loc=torch.tensor(4.0), scale=torch.tensor(2.0))
    direct = torch.distributions.Normal(torch.tensor([6.0, 0.0]), torch.tensor([1.0, 6.0]))
    x = torch.tensor([5.0, 1.0])
    torch.testing.assert_close(scaled.log_prob(x), direct.log_prob(x))
    torch.testing.assert_close(scaled.mean, direct.mean)
    torch.testing.assert_close(scaled.stddev, direct.stddev)


def test_weighted_average_equals_transformers():
    x = torch.tensor([[1.0, float("nan"), 3.0], [4.0, 5.0, 6.0]])
    w = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
    for dim in (None, 1):
        torch.testing.assert_close(
            ts.weighted_average(x, w, dim), hf_model.weighted_average(x, w, dim), equal_nan=True
        )
    torch.testing.assert_close(ts.weighted_average(x[1:]), hf_model.weighted_average(x[1:]))
    # dim=0 averages over dim 0 (transformers' `if dim` treats 0 as "all dims": a bug not carried over)
    torch.testing.assert_close(ts.weighted_average(x, w, 0), torch.tensor([1.0, 0.0, 3.0]))


def test_parameters_outside_their_domain_are_named():
    normal = ts.NormalOutput()
    with pytest.raises(XfValueError, match="scale must be > 0 everywhere, got a minimum of -1"):
        normal.distribution((torch.zeros(3), torch.tensor([1.0, -1.0, 2.0])))
    with pytest.raises(XfValueError, match="df must be > 0"):
        ts.StudentTOutput().distribution((torch.tensor([0.0]), torch.zeros(1), torch.ones(1)))
    with pytest.raises(XfValueError, match="total_count must be >= 0"):
        ts.NegativeBinomialOutput().distribution((torch.tensor([-2.0]), torch.zeros(1)))
    with pytest.raises(XfValueError, match="scale must be > 0"):
        normal.distribution((torch.zeros(1), torch.ones(1)), scale=torch.tensor([0.0]))
    with pytest.raises(XfValueError, match="takes 2 parameters"):
        normal.distribution((torch.zeros(1),))
    with pytest.raises(XfValueError, match="positive integer"):
        ts.NormalOutput(dim=0)
