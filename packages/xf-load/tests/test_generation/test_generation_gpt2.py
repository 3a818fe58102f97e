"""GPT-2 generate parity with transformers (learned positions: left padding needs the position ids)."""

from __future__ import annotations

import pytest
import torch

from xf_load.testing import load_pair, tiny_transformers_model

transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def gpt2_pair(tmp_path_factory):
    path = tmp_path_factory.mktemp("gen") / "gpt2"
    model = tiny_transformers_model(
        "GPT2LMHeadModel",
        perturb_norms=False,
        n_embd=64,
        vocab_size=128,
        n_positions=128,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )
    with torch.no_grad():  # spread the logits so greedy paths are not decided by float noise
        model.transformer.wte.weight.mul_(6.0)
    model.save_pretrained(path)
    return load_pair(path, "GPT2LMHeadModel")


def _inputs(padded: bool) -> dict[str, torch.Tensor]:
    ids = torch.randint(3, 128, (3, 7), generator=torch.Generator().manual_seed(2))
    mask = torch.ones_like(ids)
    if padded:
        ids[1, :3], mask[1, :3] = 0, 0
        ids[2, :5], mask[2, :5] = 0, 0
    return {"input_ids": ids, "attention_mask": mask}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_new_tokens": 12},
        {"max_new_tokens": 12, "repetition_penalty": 1.3, "no_repeat_ngram_size": 3},
        {"max_new_tokens": 8, "num_beams": 4, "num_return_sequences": 2, "length_penalty": 0.5},
    ],
    ids=["greedy", "penalties", "beam"],
)
@pytest.mark.parametrize("padded", [False, True], ids=["plain", "left-padded"])
def test_gpt2_generate_matches_transformers(gpt2_pair, kwargs, padded):
    ours, theirs = gpt2_pair
    inputs = _inputs(padded)
    with torch.no_grad():
        assert ours.generate(**inputs, **kwargs).tolist() == theirs.generate(**inputs, **kwargs).tolist()


def test_gpt2_static_cache_and_sampling_match(gpt2_pair):
    ours, theirs = gpt2_pair
    inputs = _inputs(True)
    with torch.no_grad():
        dynamic = ours.generate(**inputs, max_new_tokens=10)
        assert (
            ours.generate(**inputs, max_new_tokens=10, cache_implementation="static").tolist()
            == dynamic.tolist()
        )
        torch.manual_seed(5)
        a = ours.generate(**inputs, max_new_tokens=10, do_sample=True, top_p=0.9)
        torch.manual_seed(5)
        b = theirs.generate(**inputs, max_new_tokens=10, do_sample=True, top_p=0.9)
    assert a.tolist() == b.tolist()
