"""Every family passes ``torch.export`` with a dynamic batch size and sequence length, and the exported
program gives the eager model's outputs on other shapes, with and without padding."""

from __future__ import annotations

import importlib

import pytest
import torch
from torch.export import Dim

from xf_load.testing import FAMILIES, family_of, tiny_config, xf_class

# class -> the output compared, and whether its forward takes use_cache (a traced program returns no cache)
ARCHES = {
    "BertModel": ("last_hidden_state", False),
    "RobertaModel": ("last_hidden_state", False),
    "GPT2LMHeadModel": ("logits", True),
    "LlamaForCausalLM": ("logits", True),
    "Qwen3ForCausalLM": ("logits", True),
}


def tiny(arch: str) -> torch.nn.Module:
    family = FAMILIES[family_of(arch)]
    config_class = getattr(importlib.import_module(family.xf_module), family.config_class)
    torch.manual_seed(0)
    return xf_class(arch).from_config(config_class(**tiny_config(arch))).eval()


def batch(rows: int, length: int, *, padded: bool) -> dict[str, torch.Tensor]:
    ids = torch.randint(3, 90, (rows, length))
    mask = torch.ones_like(ids)
    if padded:
        mask[0, length // 2 :] = 0  # right padding
    return {"input_ids": ids, "attention_mask": mask}


@pytest.mark.parametrize("arch", ARCHES)
def test_torch_export_with_dynamic_batch_and_length_equals_eager(arch):
    model = tiny(arch)
    field, takes_cache = ARCHES[arch]
    extra = {"use_cache": False} if takes_cache else {}
    rows, length = Dim("batch", min=1, max=32), Dim("length", min=2, max=48)
    shapes = {"input_ids": {0: rows, 1: length}, "attention_mask": {0: rows, 1: length}}
    shapes |= dict.fromkeys(extra)
    exported = torch.export.export(
        model, (), {**batch(2, 7, padded=True), **extra}, dynamic_shapes=shapes, strict=False
    )
    program = exported.module()
    for inputs in (batch(3, 11, padded=True), batch(1, 5, padded=False), batch(4, 40, padded=False)):
        with torch.no_grad():
            want = getattr(model(**inputs, **extra), field)
        got = getattr(program(**inputs, **extra), field)
        assert got.shape == want.shape
        mask = inputs["attention_mask"].bool()  # padded positions' outputs are not compared
        torch.testing.assert_close(got[mask], want[mask], atol=1e-5, rtol=1e-4)
