"""Diverse (group) beam search against transformers 4.50's ``_group_beam_search``.

transformers moved group beam search to the Hub (``transformers-community/group-beam-search``) in 4.51, so the
installed version cannot run it offline. ``group_beam_transformers_4_50.json`` holds what transformers 4.50.3
generated on the checkpoint the ``checkpoint`` fixture saves (the same seed and weights), made with
``make_group_beam_reference.py`` (``PYTHONPATH=<transformers 4.50.3> python make_group_beam_reference.py CKPT
group_beam_transformers_4_50.json.settings``). Its plain beam-search entries are checked against the installed
transformers too, which shows that the checkpoint is the one the reference was made from.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from xf_core.errors import XfValueError
from xf_load.testing import load_pair, tiny_transformers_model

transformers = pytest.importorskip("transformers")

REFERENCE = json.loads((Path(__file__).parent / "group_beam_transformers_4_50.json").read_text())


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    path = tmp_path_factory.mktemp("group") / "llama"
    model = tiny_transformers_model("LlamaForCausalLM", perturb_norms=False, bos_token_id=1, eos_token_id=2)
    with torch.no_grad():
        model.lm_head.weight.mul_(4.0)
    model.save_pretrained(path)
    return load_pair(path, "LlamaForCausalLM")


def _inputs(tag: str) -> dict[str, torch.Tensor]:
    ids = torch.randint(3, 128, (2, 6), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    if tag == "padded":
        ids[1, :2] = 0
        mask[1, :2] = 0
    return {"input_ids": ids, "attention_mask": mask}


@pytest.mark.parametrize("tag", ["plain", "padded"])
@pytest.mark.parametrize("name", list(REFERENCE["settings"]))
def test_group_beam_matches_transformers_4_50(pair, name, tag):
    ours, theirs = pair
    settings = REFERENCE["settings"][name]
    expected = REFERENCE["expected"][f"{name}/{tag}"]
    with torch.no_grad():
        out = ours.generate(**_inputs(tag), return_dict_in_generate=True, output_scores=True, **settings)
        if "num_beam_groups" not in settings:  # the checkpoint is the reference's
            assert theirs.generate(**_inputs(tag), **settings).tolist() == expected["sequences"]
    assert out.sequences.tolist() == expected["sequences"]
    assert [round(s, 3) for s in out.sequences_scores.tolist()] == pytest.approx(expected["scores"], abs=2e-3)


def test_groups_make_returned_beams_differ(pair):
    ours, _ = pair
    ids = _inputs("plain")["input_ids"][:1]
    with torch.no_grad():
        plain = ours.generate(ids, max_new_tokens=6, num_beams=4, num_return_sequences=4)
        diverse = ours.generate(
            ids,
            max_new_tokens=6,
            num_beams=4,
            num_beam_groups=4,
            diversity_penalty=50.0,
            num_return_sequences=4,
        )
    # A large penalty forbids the token an earlier group took: the first new tokens all differ.
    assert len(set(diverse[:, 6].tolist())) == 4
    assert len(set(plain[:, 6].tolist())) < 4


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_beams": 4, "num_beam_groups": 3, "diversity_penalty": 1.0}, "divide num_beams"),
        ({"num_beams": 4, "num_beam_groups": 2}, "diversity_penalty > 0"),
        (
            {"num_beams": 4, "num_beam_groups": 2, "diversity_penalty": 1.0, "do_sample": True},
            "cannot sample",
        ),
    ],
)
def test_group_beam_refuses_impossible_settings(pair, kwargs, match):
    ours, _ = pair
    with pytest.raises(ValueError, match=match):
        ours.generate(_inputs("plain")["input_ids"], max_new_tokens=3, **kwargs)
    assert issubclass(XfValueError, ValueError)
