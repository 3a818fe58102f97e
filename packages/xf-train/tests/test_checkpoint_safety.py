"""Resuming never unpickles code: state files are safetensors/JSON, transformers' pickle files are read
weights-only, and a doctored file is refused with an error naming it, before any code in it can run."""

from __future__ import annotations

import pickle
import re
import shutil
from pathlib import Path

import pytest
import torch

from xf_load import AutoModelForCausalLM
from xf_train import Trainer, TrainingArguments
from xf_train.errors import UnsafeCheckpointError

COMMON = {
    "per_device_train_batch_size": 4,
    "learning_rate": 1e-3,
    "seed": 0,
    "train_sampling_strategy": "random",
}
PACKAGES = Path(__file__).resolve().parents[2]


class _RunsCode:
    """Unpickling this calls ``Path.touch(marker)``: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _run(tmp_path: Path, tiny_checkpoint, token_dataset, max_steps: int = 2) -> tuple[Trainer, Path]:
    model = AutoModelForCausalLM.from_pretrained(tiny_checkpoint("LlamaForCausalLM"))
    args = TrainingArguments(
        output_dir=str(tmp_path / "run"), max_steps=max_steps, save_strategy="steps", save_steps=2, **COMMON
    )
    trainer = Trainer(model, args, train_dataset=token_dataset)
    trainer.train()
    return trainer, tmp_path / "run" / f"checkpoint-{max_steps}"


def _fresh(tmp_path: Path, tiny_checkpoint, token_dataset, max_steps: int) -> Trainer:
    model = AutoModelForCausalLM.from_pretrained(tiny_checkpoint("LlamaForCausalLM"))
    args = TrainingArguments(
        output_dir=str(tmp_path / "run"), max_steps=max_steps, save_strategy="no", **COMMON
    )
    return Trainer(model, args, train_dataset=token_dataset)


def test_no_source_unpickles_with_weights_only_false():
    pattern = re.compile(r"weights_only\s*=\s*False|pickle\.loads?\(|\bUnpickler\(")
    offenders = [
        f"{path}:{n}"
        for path in PACKAGES.glob("*/src/**/*.py")
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert offenders == []


def test_checkpoint_state_is_stored_without_pickle(tmp_path, tiny_checkpoint, token_dataset):
    _, ckpt = _run(tmp_path, tiny_checkpoint, token_dataset)
    names = {p.name for p in ckpt.iterdir()}
    assert {"optimizer.safetensors", "scheduler.json", "rng_state.safetensors"} <= names
    assert not {n for n in names if n.endswith((".pt", ".pth", ".bin"))}


@pytest.mark.parametrize(
    ("legacy", "replaces"),
    [
        ("optimizer.pt", "optimizer.safetensors"),
        ("scheduler.pt", "scheduler.json"),
        ("rng_state.pth", "rng_state.safetensors"),
    ],
)
def test_doctored_pickle_is_refused_naming_the_file(
    tmp_path, tiny_checkpoint, token_dataset, legacy, replaces
):
    _, ckpt = _run(tmp_path, tiny_checkpoint, token_dataset)
    marker = tmp_path / "pwned"
    (ckpt / replaces).unlink()
    with open(ckpt / legacy, "wb") as f:
        pickle.dump({"state": _RunsCode(marker)}, f)
    trainer = _fresh(tmp_path, tiny_checkpoint, token_dataset, max_steps=4)
    with pytest.raises(UnsafeCheckpointError, match=re.escape(legacy)) as info:
        trainer.train(resume_from_checkpoint=str(ckpt))
    assert info.value.path == str(ckpt / legacy)
    assert not marker.exists()


def test_transformers_pickle_files_resume_weights_only(tmp_path, tiny_checkpoint, token_dataset):
    """A checkpoint in transformers' format (plain-data pickles) still resumes, to the same weights."""
    full, _ = _run(tmp_path / "full", tiny_checkpoint, token_dataset, max_steps=4)
    ckpt = tmp_path / "full" / "run" / "checkpoint-2"

    # rewrite the state the way transformers does: torch.save of the plain state dicts
    legacy = tmp_path / "legacy"
    shutil.copytree(ckpt, legacy)
    probe = _fresh(tmp_path / "probe", tiny_checkpoint, token_dataset, max_steps=4)
    probe.create_optimizer_and_scheduler(num_training_steps=4)
    probe._load_checkpoint(legacy)  # our files, read back
    torch.save(probe.optimizer.state_dict(), legacy / "optimizer.pt")
    torch.save(probe.lr_scheduler.state_dict(), legacy / "scheduler.pt")
    import random

    torch.save({"python": random.getstate(), "cpu": torch.random.get_rng_state()}, legacy / "rng_state.pth")
    for name in ("optimizer.safetensors", "scheduler.json", "rng_state.safetensors"):
        (legacy / name).unlink()

    resumed = _fresh(tmp_path / "b", tiny_checkpoint, token_dataset, max_steps=4)
    resumed.train(resume_from_checkpoint=str(legacy))
    for name, value in full.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[name], value, rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", ["optimizer.safetensors", "rng_state.safetensors", "scheduler.json"])
def test_corrupt_state_file_is_named(tmp_path, tiny_checkpoint, token_dataset, name):
    _, ckpt = _run(tmp_path, tiny_checkpoint, token_dataset)
    data = (ckpt / name).read_bytes()
    (ckpt / name).write_bytes(data[: len(data) // 3])
    trainer = _fresh(tmp_path, tiny_checkpoint, token_dataset, max_steps=4)
    with pytest.raises(UnsafeCheckpointError, match=re.escape(name)):
        trainer.train(resume_from_checkpoint=str(ckpt))
