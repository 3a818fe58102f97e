"""The loader side of tensor-parallel loading: ``prepare`` on the skeleton, only each ``local_slice`` read from
the checkpoint (``bytes_read`` proves it), ``apply`` on the local tensors. A fake hook stands in for xf-parallel
(single process, no torch.distributed)."""

from __future__ import annotations

from typing import ClassVar

import pytest
import torch

from xf_load import options
from xf_load._checkpoint import Checkpoint
from xf_load.errors import CheckpointError
from xf_load.models.llama import LlamaForCausalLM
from xf_load.options import TensorParallelHook
from xf_load.testing import save_tiny_transformers_checkpoint


class HalfRows(TensorParallelHook):
    """Keeps rows [0:n/2] of every 2-D weight (``dim=1``: columns); records what it saw."""

    dim: ClassVar[int] = 0
    seen: ClassVar[list[HalfRows]] = []

    def prepare(self, model):
        self.prepared_on = {p.device.type for p in model.parameters()}
        self.seen.append(self)

    def local_slice(self, name, shape):
        if len(shape) != 2:
            return None
        part = [slice(None), slice(None)]
        part[self.dim] = slice(0, shape[self.dim] // 2)
        return tuple(part)

    def apply(self, model):
        self.applied = {n: p.detach().clone() for n, p in model.named_parameters(remove_duplicate=False)}


@pytest.fixture
def hook(monkeypatch):
    """Only the fake hook is installed (whatever registers the entry point in this environment)."""
    monkeypatch.setattr(options, "TP_HOOKS", {"fake": HalfRows})
    monkeypatch.setattr(options, "_loaded_tp_entry_points", True)
    HalfRows.seen = []
    HalfRows.dim = 0
    return HalfRows


@pytest.fixture(scope="module")
def path(tmp_path_factory):
    return save_tiny_transformers_checkpoint(
        "LlamaForCausalLM",
        tmp_path_factory.mktemp("tp") / "ckpt",
        dtype=torch.bfloat16,
        tie_word_embeddings=True,
        save_kwargs={"max_shard_size": "40KB"},
    )


@pytest.fixture(scope="module")
def full(path):
    model, info = LlamaForCausalLM.from_pretrained(path, disable_mmap=True, output_loading_info=True)
    return {n: p.detach() for n, p in model.state_dict().items()}, info["bytes_read"]


def _local_bytes(state: dict[str, torch.Tensor]) -> int:
    """Half of each 2-D tensor, all of each other one (a tied tensor is stored once)."""
    total = 0
    for name, t in state.items():
        if name == "lm_head.weight":
            continue
        nbytes = t.numel() * t.element_size()
        total += nbytes // 2 if t.dim() == 2 else nbytes
    return total


@pytest.mark.parametrize("disable_mmap", [False, True])
def test_loader_reads_only_the_local_rows_and_apply_sees_them(hook, path, full, disable_mmap):
    state, full_bytes = full
    model, info = LlamaForCausalLM.from_pretrained(
        path, tp_plan="auto", disable_mmap=disable_mmap, output_loading_info=True
    )
    (seen,) = hook.seen
    assert seen.prepared_on == {"meta"}  # prepare ran on the skeleton, before any weight was read
    assert info["bytes_read"] == _local_bytes(state) < 0.6 * full_bytes
    assert model.lm_head.weight is model.model.embed_tokens.weight  # tied after the local shards were set
    for name, local in seen.applied.items():
        whole = state[name]
        expected = whole[: whole.shape[0] // 2] if whole.dim() == 2 else whole
        assert local.shape == expected.shape, name  # the local shape, not the config's
        torch.testing.assert_close(local, expected, rtol=0, atol=0)


def test_column_slices_are_read_and_made_contiguous(hook, path, full):
    hook.dim = 1
    state, _ = full
    model, info = LlamaForCausalLM.from_pretrained(path, tp_plan="auto", output_loading_info=True)
    assert info["bytes_read"] == _local_bytes(state)  # mapped: only the slice's elements are copied
    proj = model.model.layers[0].self_attn.q_proj.weight
    assert proj.is_contiguous() and proj.shape == (64, 32)
    torch.testing.assert_close(proj, state["model.layers.0.self_attn.q_proj.weight"][:, :32], rtol=0, atol=0)


def test_prepare_fails_before_any_weight_is_read(hook, path, monkeypatch):
    class PlanError(ValueError):
        pass

    def refuse(self, model):
        raise PlanError("4 heads do not divide by a TP degree of 3")

    reads = []
    original = Checkpoint.read
    monkeypatch.setattr(hook, "prepare", refuse)
    monkeypatch.setattr(Checkpoint, "read", lambda self, *a, **k: reads.append(a) or original(self, *a, **k))
    with pytest.raises(PlanError, match="TP degree"):
        LlamaForCausalLM.from_pretrained(path, tp_plan="auto")
    assert reads == []


def test_a_slice_that_does_not_fit_the_tensor_names_it(hook, path, monkeypatch):
    monkeypatch.setattr(
        hook, "local_slice", lambda self, name, shape: (slice(0, 1),) if len(shape) == 2 else None
    )
    with pytest.raises(CheckpointError, match="one slice per dimension") as e:
        LlamaForCausalLM.from_pretrained(path, tp_plan="auto")
    assert e.value.key is not None and e.value.key in str(e.value)


def test_default_hook_reads_whole_tensors(path, full, monkeypatch):
    class WholeHook(TensorParallelHook):
        def apply(self, model):
            pass

    monkeypatch.setattr(options, "TP_HOOKS", {"whole": WholeHook})
    monkeypatch.setattr(options, "_loaded_tp_entry_points", True)
    hook = WholeHook(tp_plan="auto", device_mesh=None)
    assert hook.local_slice("lm_head.weight", (128, 64)) is None
    _, info = LlamaForCausalLM.from_pretrained(path, tp_plan="auto", output_loading_info=True)
    assert info["bytes_read"] == full[1]
