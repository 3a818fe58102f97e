"""Fixtures of the xf-load tests, wired from ``xf_load.testing``: tiny random checkpoints written by
transformers (the parity oracle), transformers' loader, and a left-padded batch."""

import pytest

from xf_load import testing


@pytest.fixture
def save_hf(tmp_path):
    """``save_hf("MistralForCausalLM", sliding_window=4)`` -> a directory under ``tmp_path`` holding a seeded
    random checkpoint saved by transformers (see ``xf_load.testing.save_tiny_transformers_checkpoint``)."""
    return testing.tiny_checkpoint_factory(tmp_path)


@pytest.fixture
def load_hf():
    """``load_hf(path, "LlamaForCausalLM", **kwargs)``: transformers' own model from ``path``, in eval mode."""
    return testing.load_with_transformers


batch = pytest.fixture(testing.left_padded_batch, name="batch")
