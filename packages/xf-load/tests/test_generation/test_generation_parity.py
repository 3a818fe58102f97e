"""Token-for-token parity with transformers' generate on random checkpoints transformers saves.

Both sides load the same directory (weights and generation_config.json) and decode the same prompts.
"""

from __future__ import annotations

import pytest
import torch

import xf_load
from xf_load.testing import load_pair, tiny_transformers_model

transformers = pytest.importorskip("transformers")

PROMPT_LEN = 6


@pytest.fixture(scope="module")
def llama_pair(tmp_path_factory):
    path = tmp_path_factory.mktemp("gen") / "llama"
    model = tiny_transformers_model("LlamaForCausalLM", perturb_norms=False, bos_token_id=1, eos_token_id=2)
    with torch.no_grad():  # spread the logits so greedy paths are not decided by float noise
        model.lm_head.weight.mul_(4.0)
    model.save_pretrained(path)
    return load_pair(path, "LlamaForCausalLM")


def _prompts(rows: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.randint(3, 128, (rows, PROMPT_LEN), generator=torch.Generator().manual_seed(seed))


def _left_padded() -> dict[str, torch.Tensor]:
    ids = _prompts(3, seed=4)
    mask = torch.ones_like(ids)
    for row, n_pad in ((1, 2), (2, 4)):
        ids[row, :n_pad] = 0
        mask[row, :n_pad] = 0
    return {"input_ids": ids, "attention_mask": mask}


def _both(pair, inputs: dict[str, torch.Tensor], **kwargs):
    ours, theirs = pair
    with torch.no_grad():
        a = ours.generate(**inputs, **kwargs)
        b = theirs.generate(**inputs, **kwargs)
    return a, b


SETTINGS = {
    "greedy": {"max_new_tokens": 16},
    "greedy-eos-min-new": {"max_new_tokens": 16, "eos_token_id": [2, 7, 9], "min_new_tokens": 3},
    "repetition-penalty": {"max_new_tokens": 16, "repetition_penalty": 1.4},
    "no-repeat-ngram": {"max_new_tokens": 16, "no_repeat_ngram_size": 2},
    "beam-3": {"max_new_tokens": 10, "num_beams": 3},
    "beam-4-lp2-return2": {
        "max_new_tokens": 10,
        "num_beams": 4,
        "length_penalty": 2.0,
        "num_return_sequences": 2,
    },
    "beam-4-lp-neg-early": {
        "max_new_tokens": 10,
        "num_beams": 4,
        "length_penalty": -0.5,
        "early_stopping": True,
    },
    "beam-5-never": {"max_new_tokens": 8, "num_beams": 5, "early_stopping": "never", "eos_token_id": [2, 5]},
    "beam-ngram": {"max_new_tokens": 10, "num_beams": 3, "no_repeat_ngram_size": 2},
}


@pytest.mark.parametrize("setting", list(SETTINGS))
@pytest.mark.parametrize("padded", [False, True], ids=["plain", "left-padded"])
def test_llama_generate_matches_transformers(llama_pair, setting, padded):
    inputs = _left_padded() if padded else {"input_ids": _prompts()}
    a, b = _both(llama_pair, inputs, **SETTINGS[setting])
    assert a.tolist() == b.tolist()


def test_llama_beam_scores_match_transformers(llama_pair):
    kwargs = dict(
        max_new_tokens=8,
        num_beams=3,
        num_return_sequences=3,
        return_dict_in_generate=True,
        output_scores=True,
    )
    a, b = _both(llama_pair, {"input_ids": _prompts()}, **kwargs)
    assert a.sequences.tolist() == b.sequences.tolist()
    torch.testing.assert_close(a.sequences_scores, b.sequences_scores, atol=1e-4, rtol=0)
    assert a.beam_indices.tolist() == b.beam_indices.tolist()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"do_sample": True, "top_k": 0},
        {"do_sample": True, "temperature": 0.7, "top_k": 20, "top_p": 0.9},
        {"do_sample": True, "min_p": 0.1, "top_k": 0},
        {"do_sample": True, "typical_p": 0.8},
        {"do_sample": True, "num_beams": 3, "top_k": 10},
    ],
    ids=["plain", "temp-topk-topp", "min-p", "typical", "beam-sample"],
)
def test_llama_sampling_matches_transformers_under_a_fixed_seed(llama_pair, kwargs):
    ours, theirs = llama_pair
    ids = _prompts(3, seed=7)
    with torch.no_grad():
        torch.manual_seed(123)
        a = ours.generate(ids, max_new_tokens=12, **kwargs)
        torch.manual_seed(123)
        b = theirs.generate(ids, max_new_tokens=12, **kwargs)
    assert a.tolist() == b.tolist()


def test_llama_scores_and_logits_match_transformers(llama_pair):
    kwargs = dict(
        max_new_tokens=5,
        return_dict_in_generate=True,
        output_scores=True,
        output_logits=True,
        repetition_penalty=1.2,
    )
    a, b = _both(llama_pair, _left_padded(), **kwargs)
    assert a.sequences.tolist() == b.sequences.tolist()
    for x, y in zip(a.scores + a.logits, b.scores + b.logits):
        torch.testing.assert_close(x, y, atol=1e-4, rtol=0)


def test_llama_static_cache_and_compiled_step_match_dynamic(llama_pair):
    ours, _ = llama_pair
    inputs = _left_padded()
    with torch.no_grad():
        dynamic = ours.generate(**inputs, max_new_tokens=10)
        static = ours.generate(**inputs, max_new_tokens=10, cache_implementation="static")
        compiled = ours.generate(**inputs, max_new_tokens=10, compile={"backend": "eager"})
    assert static.tolist() == dynamic.tolist()
    assert compiled.tolist() == dynamic.tolist()


def test_llama_generation_config_file_drives_defaults(tmp_path, llama_pair):
    _, theirs = llama_pair
    theirs.save_pretrained(tmp_path)
    hf_config = transformers.GenerationConfig.from_pretrained(tmp_path)
    hf_config.max_new_tokens = 4
    hf_config.save_pretrained(tmp_path)
    reloaded = xf_load.AutoModelForCausalLM.from_pretrained(tmp_path)
    assert reloaded.generation_config.max_new_tokens == 4 and reloaded.generation_config.eos_token_id == 2
    out = reloaded.generate(_prompts())
    assert out.shape[1] <= PROMPT_LEN + 4
    assert out.tolist() == theirs.generate(_prompts(), max_new_tokens=4).tolist()
