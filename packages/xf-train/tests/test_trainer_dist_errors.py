"""The Trainer's distributed refusals, in one process: unsupported fsdp options, fsdp without torchrun, and
xf-parallel missing when a sharded model needs it."""

from __future__ import annotations

import pytest
import torch

import xf_train._trainer_dist as trainer_dist
from xf_train import Trainer, TrainingArguments
from xf_train.errors import TrainingArgumentsError


class Tiny(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(2, 1)

    def forward(self, x, labels=None):
        return {"loss": (self.linear(x).squeeze(-1) - labels).pow(2).mean()}


ROWS = [{"x": [float(i), 1.0], "labels": float(i)} for i in range(8)]


def trainer(tmp_path, **kwargs) -> Trainer:
    args = TrainingArguments(str(tmp_path), max_steps=1, report_to=[], disable_tqdm=True, **kwargs)
    return Trainer(Tiny(), args, train_dataset=ROWS)


@pytest.mark.parametrize(
    ("fsdp", "named"),
    [("offload", "['offload'] are not supported"), ("auto_wrap", "no single sharding mode")],
)
def test_unsupported_fsdp_options_are_refused_before_a_step(tmp_path, fsdp, named):
    with pytest.raises(TrainingArgumentsError, match="full_shard") as e:
        trainer(tmp_path, fsdp=fsdp).train()
    assert named in str(e.value) and e.value.key == "fsdp"


def test_fsdp_in_one_process_says_to_launch_with_torchrun(tmp_path):
    with pytest.raises(TrainingArgumentsError, match="torchrun"):
        trainer(tmp_path, fsdp="full_shard").train()


def test_missing_xf_parallel_is_named(monkeypatch):
    monkeypatch.setattr(trainer_dist, "entry_points", lambda group: [])
    with pytest.raises(TrainingArgumentsError, match="needs xf-parallel, which is not installed") as e:
        trainer_dist.parallel_support("checkpointing a sharded model")
    assert "xf_train.parallel" in str(e.value)


def test_xf_parallel_registers_its_trainer_support():
    pytest.importorskip("xf_parallel")
    support = trainer_dist.parallel_support("a test")
    assert callable(support.fsdp) and callable(support.save_checkpoint) and callable(support.load_checkpoint)
