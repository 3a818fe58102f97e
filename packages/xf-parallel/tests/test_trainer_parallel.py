"""xf-train's Trainer on sharded models under torchrun (2 gloo processes), through xf-parallel's entry point:
``TrainingArguments(fsdp="full_shard")`` with batch 4 a process, and a model loaded with ``tp_plan="auto",
device_mesh=...`` (both processes read the same batch of 8), each log the loss curve and end with the weights of
one process with batch 8; their checkpoints (xf-parallel's DCP folders) resume under 2 processes to the same
curve and weights.

One torchrun launch runs the user script of xf-train's tests four times (FSDP, FSDP resumed, TP, TP resumed).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

HELPERS = Path(__file__).parents[2] / "xf-train" / "tests" / "test_trainer_distributed.py"


def _helpers():
    spec = importlib.util.spec_from_file_location("xf_train_distributed_helpers", HELPERS)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


h = _helpers()


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("trainer-parallel")
    model = h.save_tiny_llama(tmp / "model")
    h.run_jobs(tmp, model, h.jobs(tmp, "single", 8)[:1], nproc=1)
    sharded = h.jobs(tmp, "fsdp", 4, fsdp="full_shard") + h.jobs(tmp, "tp", 8, tp=True)
    h.run_jobs(tmp, model, sharded, nproc=2)
    return tmp


@pytest.mark.parametrize("name", ["fsdp", "tp"])
def test_sharded_training_equals_one_process(runs, name):
    single = h.curve(runs / "single")
    assert len(single) == h.STEPS
    h.assert_same_curve(h.curve(runs / name), single)
    h.assert_same_weights(runs / name / "final", runs / "single" / "final")


@pytest.mark.parametrize("name", ["fsdp", "tp"])
def test_sharded_checkpoint_is_dcp_and_resumes(runs, name):
    checkpoint = runs / name / f"checkpoint-{h.SAVE}"
    files = sorted(p.name for p in checkpoint.iterdir())
    assert "manifest.json" in files and "trainer_state.json" in files
    assert sum(f.endswith(".distcp") for f in files) == 2  # one shard file a process
    assert "model.safetensors" not in files
    assert json.loads((checkpoint / "state.json").read_text())["scheduler"]["last_epoch"] == h.SAVE
    h.assert_same_curve(h.curve(runs / f"{name}-resumed"), h.curve(runs / "single"))
    h.assert_same_weights(runs / f"{name}-resumed" / "final", runs / "single" / "final")
