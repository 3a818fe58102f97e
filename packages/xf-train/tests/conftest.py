"""Fixtures of the xf-train tests, wired from ``xf_load.testing``: tiny random checkpoints written by
transformers (the parity oracle) and a tiny token dataset with padding and ignored labels."""

import pytest

from xf_load import testing


@pytest.fixture
def tiny_checkpoint(tmp_path):
    """``tiny_checkpoint("LlamaForCausalLM")`` -> a folder with a seeded random model saved by transformers."""
    return testing.tiny_checkpoint_factory(tmp_path, vocab_size=96)  # the token dataset's vocabulary


token_dataset = pytest.fixture(testing.token_dataset, name="token_dataset")
