"""Fixtures of the generation tests: the toy causal LM of ``xf_load.testing`` and the full-forward greedy
reference."""

import pytest

from xf_load import testing


@pytest.fixture
def toy():
    return testing.make_toy


@pytest.fixture
def greedy_reference():
    return testing.full_greedy
