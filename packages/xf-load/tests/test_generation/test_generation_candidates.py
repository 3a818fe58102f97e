"""Assisted (draft model) and prompt-lookup decoding: token for token greedy decoding of the target, checked
against transformers' greedy generate and its own assisted / prompt-lookup generate on the same checkpoint."""

from __future__ import annotations

import logging

import pytest
import torch

from xf_core.errors import XfValueError
from xf_load.generation import GenerationConfig
from xf_load.testing import load_pair, tiny_transformers_model, xf_class

transformers = pytest.importorskip("transformers")


def _save(path, seed: int, **overrides):
    model = tiny_transformers_model(
        "LlamaForCausalLM", seed=seed, perturb_norms=False, bos_token_id=1, eos_token_id=2, **overrides
    )
    with torch.no_grad():  # spread the logits so greedy paths are not decided by float noise
        model.lm_head.weight.mul_(4.0)
    model.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("cand")
    ours, theirs = load_pair(_save(root / "target", seed=0), "LlamaForCausalLM")
    # A draft that rarely agrees (other weights, one layer) and one that always does (the target itself).
    draft_path = _save(root / "draft", seed=1, num_hidden_layers=1)
    draft = xf_class("LlamaForCausalLM").from_pretrained(draft_path).eval()
    draft_theirs = transformers.LlamaForCausalLM.from_pretrained(draft_path).eval()
    return ours, theirs, draft, draft_theirs


def _prompt(seed: int = 0, length: int = 6) -> torch.Tensor:
    return torch.randint(3, 128, (1, length), generator=torch.Generator().manual_seed(seed))


def _repeating_prompt() -> torch.Tensor:
    # A pattern repeated: prompt lookup finds n-gram matches from the first step on.
    return torch.tensor([[5, 9, 17, 33, 8, 5, 9, 17, 33, 8, 5, 9]])


@pytest.mark.parametrize(
    "settings",
    [
        {"max_new_tokens": 24},
        {"max_new_tokens": 24, "num_assistant_tokens": 3},
        {
            "max_new_tokens": 24,
            "num_assistant_tokens": 4,
            "num_assistant_tokens_schedule": "heuristic_transient",
        },
        {"max_new_tokens": 20, "repetition_penalty": 1.3, "eos_token_id": [2, 7, 11], "min_new_tokens": 2},
    ],
    ids=["default", "3-tokens", "heuristic", "processors-eos"],
)
def test_assisted_matches_greedy(models, settings):
    ours, theirs, draft, draft_theirs = models
    ids = _prompt(len(settings))
    with torch.no_grad():
        greedy = theirs.generate(ids, **settings)
        assisted_theirs = theirs.generate(ids, assistant_model=draft_theirs, **settings)
        out = ours.generate(ids, assistant_model=draft, return_dict_in_generate=True, **settings)
    assert out.sequences.tolist() == greedy.tolist() == assisted_theirs.tolist()
    assert out.num_candidate_tokens > 0 and 0 <= out.num_accepted_tokens <= out.num_candidate_tokens


def test_assisted_with_the_target_as_draft_accepts_everything(models, caplog):
    ours, theirs, _, _ = models
    ids = _prompt(3)
    with torch.no_grad(), caplog.at_level(logging.DEBUG, logger="xf_load.generation._candidates"):
        out = ours.generate(
            ids, assistant_model=ours, num_assistant_tokens=5, max_new_tokens=16, return_dict_in_generate=True
        )
        greedy = theirs.generate(ids, max_new_tokens=16)
    assert out.sequences.tolist() == greedy.tolist()
    assert out.acceptance_rate == 1.0
    # 16 tokens in rounds of 5 candidates + 1 of the target's: 3 rounds of 6, cut at the budget.
    assert "accepted (100.0%) over 3 target forwards for 16 new tokens" in caplog.text


def test_heuristic_schedule_carries_over_to_the_next_call(models):
    ours, _, draft, _ = models
    draft.generation_config.num_assistant_tokens = None
    with torch.no_grad():
        ours.generate(
            _prompt(0), assistant_model=ours, num_assistant_tokens_schedule="heuristic", max_new_tokens=12
        )
    # Rounds of 20 are all accepted: the draft (here the target) gets +2 per round.
    assert ours.generation_config.num_assistant_tokens == 22
    ours.generation_config.num_assistant_tokens = None


def test_assisted_scores_match_greedy_scores(models):
    ours, _, draft, _ = models
    ids = _prompt(5)
    kwargs = {
        "max_new_tokens": 10,
        "return_dict_in_generate": True,
        "output_scores": True,
        "output_logits": True,
    }
    with torch.no_grad():
        a = ours.generate(ids, assistant_model=draft, num_assistant_tokens=4, **kwargs)
        b = ours.generate(ids, **kwargs)
    assert a.sequences.tolist() == b.sequences.tolist()
    assert len(a.scores) == len(b.scores) == 10
    torch.testing.assert_close(torch.stack(a.scores), torch.stack(b.scores), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(torch.stack(a.logits), torch.stack(b.logits), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize(
    "settings",
    [
        {"max_new_tokens": 24, "prompt_lookup_num_tokens": 5},
        {"max_new_tokens": 24, "prompt_lookup_num_tokens": 3, "max_matching_ngram_size": 1},
        {"max_new_tokens": 24, "prompt_lookup_num_tokens": 10, "eos_token_id": [2, 8]},
        {"max_new_tokens": 20, "prompt_lookup_num_tokens": 4, "no_repeat_ngram_size": 3},
    ],
    ids=["5", "unigram", "eos", "no-repeat"],
)
@pytest.mark.parametrize("prompt", ["random", "repeating"])
def test_prompt_lookup_matches_greedy(models, settings, prompt):
    ours, theirs, _, _ = models
    ids = _prompt(2, length=10) if prompt == "random" else _repeating_prompt()
    with torch.no_grad():
        greedy = theirs.generate(ids, **_plain(settings))
        lookup_theirs = theirs.generate(ids, **settings)
        out = ours.generate(ids, return_dict_in_generate=True, **settings)
    assert out.sequences.tolist() == lookup_theirs.tolist()
    assert out.sequences.tolist() == ours.generate(ids, **_plain(settings)).tolist() == greedy.tolist()


def _plain(settings):
    return {
        k: v for k, v in settings.items() if k not in ("prompt_lookup_num_tokens", "max_matching_ngram_size")
    }


def test_prompt_lookup_accepts_copied_text(models):
    """A model that copies its prompt: every proposal is right, so few target forwards."""
    ours, _, _, _ = models
    ids = _repeating_prompt()
    with torch.no_grad():
        greedy = ours.generate(ids, max_new_tokens=30)
        # Prompt = the model's own greedy output: the continuation repeats text that is in the prompt.
        prompt = torch.cat([greedy, greedy[:, ids.shape[1] :]], dim=1)[:, :30]
        out = ours.generate(
            prompt, prompt_lookup_num_tokens=8, max_new_tokens=12, return_dict_in_generate=True
        )
        plain = ours.generate(prompt, max_new_tokens=12)
    assert out.sequences.tolist() == plain.tolist()
    assert out.num_candidate_tokens > 0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"do_sample": True}, "greedy decoding only"),
        ({"num_beams": 2}, "num_beams=1"),
        ({"use_cache": False}, "needs the KV cache"),
    ],
)
def test_candidate_decoding_refuses_what_it_does_not_do(models, kwargs, match):
    ours, _, draft, _ = models
    with pytest.raises(XfValueError, match=match):
        ours.generate(_prompt(0), assistant_model=draft, max_new_tokens=4, **kwargs)
    with pytest.raises(XfValueError, match=match):
        ours.generate(_prompt(0), prompt_lookup_num_tokens=3, max_new_tokens=4, **kwargs)


def test_candidate_decoding_needs_batch_1(models):
    ours, _, draft, _ = models
    ids = torch.cat([_prompt(0), _prompt(1)])
    with pytest.raises(XfValueError, match="one prompt at a time"):
        ours.generate(ids, assistant_model=draft, max_new_tokens=4)
    with pytest.raises(XfValueError, match="not both"):
        ours.generate(_prompt(0), assistant_model=draft, prompt_lookup_num_tokens=2, max_new_tokens=4)


def test_generation_config_fields_round_trip(tmp_path):
    config = GenerationConfig(
        prompt_lookup_num_tokens=4, num_assistant_tokens=7, num_assistant_tokens_schedule="heuristic"
    )
    config.save_pretrained(tmp_path)
    back = transformers.GenerationConfig.from_pretrained(tmp_path)
    assert (back.prompt_lookup_num_tokens, back.num_assistant_tokens) == (4, 7)
    with pytest.raises(ValueError, match="num_assistant_tokens_schedule"):
        GenerationConfig(num_assistant_tokens_schedule="fast")
