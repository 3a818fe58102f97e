"""Fixtures wired from ``xf_load.testing``: tiny random checkpoints saved by transformers (one per family, per
session), and a loader for transformers' own bnb-quantized models, the parity oracle."""

import functools

import pytest

from xf_load import testing

ARCH = {"llama": "LlamaForCausalLM", "gpt2": "GPT2LMHeadModel"}


@pytest.fixture(scope="session")
def float_checkpoint(tmp_path_factory):
    """``float_checkpoint(family)``: the directory of a float checkpoint saved by transformers."""
    make = testing.cached_checkpoint_factory(tmp_path_factory.mktemp("float"))
    return lambda family: make(ARCH[family])


@pytest.fixture(scope="session")
def hf_load():
    """``hf_load(path, **from_pretrained_kwargs)``: transformers' model, quantized when asked (with xf-quant's
    kernel choice, see ``xf_load.testing.load_with_transformers``)."""
    return functools.partial(testing.load_with_transformers, arch="AutoModelForCausalLM")
