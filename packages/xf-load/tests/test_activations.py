"""Every activation, as a function and as a module (ACT2FN/ACT2CLS), equals transformers' of the same name."""

from __future__ import annotations

import pytest
import torch
import transformers.activations as hf

from xf_core.errors import XfConfigError
from xf_load.activations import ACT2CLS, ACT2FN, ACTIVATIONS, ClippedGELUActivation, get_activation

X = torch.linspace(-12, 12, 2001, dtype=torch.float64).reshape(3, 667)


@pytest.mark.parametrize("name", sorted(hf.ACT2CLS))
def test_module_equals_transformers(name):
    torch.manual_seed(0)
    ours = ACT2FN[name].double()
    torch.manual_seed(0)
    theirs = hf.ACT2FN[name].double()
    assert type(ours).__name__ == type(theirs).__name__ or name in ("gelu_pytorch_tanh", "gelu_python_tanh")
    assert sorted(ours.state_dict()) == sorted(theirs.state_dict())  # xielu: alpha_p, alpha_n, beta, eps
    torch.testing.assert_close(ours(X), theirs(X), rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_function_equals_transformers_module(name):
    torch.testing.assert_close(get_activation(name)(X), hf.ACT2FN[name].double()(X), rtol=0, atol=1e-12)


def test_tables_cover_transformers_names_and_each_lookup_is_a_new_module():
    assert set(ACT2CLS) == set(hf.ACT2CLS)
    assert set(ACTIVATIONS) == set(hf.ACT2CLS) - {"prelu", "xielu"}  # the two with parameters: modules only
    assert ACT2FN["gelu"] is not ACT2FN["gelu"]
    assert ACT2FN["gelu_10"](torch.tensor([100.0])).item() == 10.0


def test_bad_names_and_arguments_are_typed_errors():
    with pytest.raises(XfConfigError, match="'gelu_nope' is unknown; known: gelu"):
        ACT2FN["gelu_nope"]
    with pytest.raises(XfConfigError, match="min <= max"):
        ClippedGELUActivation(min=1, max=-1)
