"""The Trainer under torchrun, data parallel: 2 gloo processes with ``per_device_train_batch_size=4`` log the
loss curve and end with the weights of one process with batch 8 on the same data, only rank 0 writes, and a
run resumed under 2 processes from a checkpoint continues the same curve. ``xf train --nproc 2`` runs the CLI
that way end to end.

One torchrun launch runs the user script (dist_train_script.py) twice: the full run, then the resumed one; the
single-process reference runs the same script's function in this process.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from xf_load.models.llama import LlamaConfig, LlamaForCausalLM

SCRIPT = Path(__file__).with_name("dist_train_script.py")
ENV = {**os.environ, "XF_DISABLE_PROGRESS": "1", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
STEPS, SAVE = 6, 3  # 32 rows, 8 a step: 4 steps an epoch, so the runs cross an epoch (a new permutation)
CURVE_KEYS = ("loss", "grad_norm", "learning_rate", "epoch", "step")


def _script():
    spec = importlib.util.spec_from_file_location("xf_train_dist_script", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def save_tiny_llama(folder: Path) -> Path:
    torch.manual_seed(3)
    config = LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
    )
    LlamaForCausalLM(config).save_pretrained(folder)
    return folder


def torchrun(nproc: int, *argv: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", *argv]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=600)
    if proc.returncode:
        pytest.fail(f"torchrun exited with {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return proc


def curve(output_dir: Path) -> list[dict]:
    """The per-step log lines of ``output_dir/logs.jsonl`` (loss, grad norm, learning rate, epoch, step)."""
    lines = [json.loads(line) for line in (output_dir / "logs.jsonl").read_text().splitlines()]
    return [{k: e[k] for k in CURVE_KEYS} for e in lines if "loss" in e]


def assert_same_curve(got: list[dict], want: list[dict]) -> None:
    assert [e["step"] for e in got] == [e["step"] for e in want]
    for g, w in zip(got, want, strict=True):
        for key in CURVE_KEYS:
            assert g[key] == pytest.approx(w[key], rel=1e-5, abs=1e-6), (g["step"], key, g[key], w[key])


def assert_same_weights(got: Path, want: Path, atol: float = 1e-4) -> None:
    a, b = load_file(got / "model.safetensors"), load_file(want / "model.safetensors")
    assert sorted(a) == sorted(b)
    worst = max((a[k] - b[k]).abs().max().item() for k in a)
    assert worst < atol, worst


def run_jobs(tmp: Path, model: Path, jobs: list[dict], nproc: int) -> None:
    """Run the user script's jobs in this process (nproc=1) or under torchrun."""
    if nproc == 1:
        script = _script()
        for job in jobs:
            script.run(str(model), job)
    else:
        torchrun(nproc, str(SCRIPT), str(model), json.dumps(jobs))


def jobs(tmp: Path, name: str, batch: int, **extra) -> list[dict]:
    """A full run with a checkpoint at step 3, then a run resumed from that checkpoint in another folder."""
    base = {"per_device_train_batch_size": batch, "max_steps": STEPS, "save_steps": SAVE, **extra}
    full, resumed = tmp / name, tmp / f"{name}-resumed"
    return [
        {**base, "output_dir": str(full), "final": str(full / "final")},
        {
            **base,
            "output_dir": str(resumed),
            "resume_from_checkpoint": str(full / f"checkpoint-{SAVE}"),
            "final": str(resumed / "final"),
        },
    ]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("ddp")
    model = save_tiny_llama(tmp / "model")
    run_jobs(tmp, model, jobs(tmp, "single", 8)[:1], nproc=1)
    run_jobs(tmp, model, jobs(tmp, "ddp", 4), nproc=2)
    return tmp


def test_ddp_two_ranks_of_four_equal_one_process_of_eight(runs):
    single = curve(runs / "single")
    assert len(single) == STEPS and single[0]["loss"] != single[-1]["loss"]
    assert_same_curve(curve(runs / "ddp"), single)
    assert_same_weights(runs / "ddp" / "final", runs / "single" / "final")


def test_ddp_only_rank_zero_writes(runs):
    out = runs / "ddp"
    lines = (out / "logs.jsonl").read_text().splitlines()
    assert len(lines) == STEPS + 1  # one line a step and the summary: rank 1 appended nothing
    assert sorted(p.name for p in out.iterdir() if p.name.startswith("checkpoint")) == [
        "checkpoint-3",
        "checkpoint-6",
    ]
    state = json.loads((out / "checkpoint-6" / "trainer_state.json").read_text())
    assert state["global_step"] == STEPS


def test_ddp_resume_under_two_ranks_continues_the_curve(runs):
    resumed = curve(runs / "ddp-resumed")
    assert_same_curve(resumed, curve(runs / "single"))
    assert_same_weights(runs / "ddp-resumed" / "final", runs / "single" / "final")
