"""Issue 18 on the Trainer side: a run that would do nothing or could never save is refused up front, saves are
all-or-nothing (a full disk leaves the previous checkpoint whole and resumable), and OS errors surface as typed
errors naming the path."""

from __future__ import annotations

import errno
import hashlib
import os
import pathlib
import shutil
from pathlib import Path

import pytest
import torch

import xf_train._state_io
from xf_core.errors import XfError, XfOSError
from xf_load import AutoModelForCausalLM
from xf_train import Trainer, TrainingArguments
from xf_train.errors import OutputDirError, TrainingArgumentsError

COMMON = {
    "per_device_train_batch_size": 4,
    "learning_rate": 1e-3,
    "seed": 0,
    "train_sampling_strategy": "random",
}


def _model(tiny_checkpoint):
    return AutoModelForCausalLM.from_pretrained(tiny_checkpoint("LlamaForCausalLM"))


def _digest(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (relative name -> sha256), to prove a folder was left untouched."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


# ---- up-front checks --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dataset_rows", "settings", "key"),
    [
        (0, {}, "train_dataset"),
        (11, {"num_train_epochs": 0}, "num_train_epochs"),
        (11, {"max_steps": 0}, "max_steps"),
        (3, {"dataloader_drop_last": True}, "dataloader_drop_last"),  # 3 rows < batch 4: no batch at all
    ],
)
def test_a_run_with_no_step_is_refused_before_training(
    tiny_checkpoint, token_dataset, tmp_path, dataset_rows, settings, key
):
    model = _model(tiny_checkpoint)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    args = TrainingArguments(output_dir=str(tmp_path / "run"), **{**COMMON, **settings})
    trainer = Trainer(model, args, train_dataset=token_dataset[:dataset_rows])
    with pytest.raises(TrainingArgumentsError) as info:
        trainer.train()
    assert info.value.key == key and key in str(info.value)
    assert trainer.state.global_step == 0 and not (tmp_path / "run").exists()
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name]), name


def test_an_empty_eval_dataset_is_refused(tiny_checkpoint, token_dataset, tmp_path):
    def accuracy(prediction):
        return {"accuracy": 1.0}

    model = _model(tiny_checkpoint)
    args = TrainingArguments(output_dir=str(tmp_path / "run"), eval_strategy="epoch", **COMMON)
    trainer = Trainer(model, args, train_dataset=token_dataset, eval_dataset=[], compute_metrics=accuracy)
    with pytest.raises(TrainingArgumentsError, match="eval_dataset is empty") as info:
        trainer.train()  # refused before the first step, not after an epoch of training
    assert info.value.key == "eval_dataset" and trainer.state.global_step == 0
    with pytest.raises(TrainingArgumentsError, match="empty eval_dataset"):
        trainer.evaluate()  # was an IndexError from inside evaluate()


@pytest.mark.parametrize("name", ["per_device_train_batch_size", "gradient_accumulation_steps"])
def test_sizes_changed_after_validation_are_refused_at_train(tiny_checkpoint, token_dataset, tmp_path, name):
    args = TrainingArguments(output_dir=str(tmp_path / "run"), **COMMON)
    setattr(args, name, 0)  # the dataclass is mutable: __post_init__ cannot see this
    trainer = Trainer(_model(tiny_checkpoint), args, train_dataset=token_dataset)
    with pytest.raises(TrainingArgumentsError, match=f"{name}=0"):
        trainer.train()


def test_output_dir_that_is_a_file_is_refused_at_init(tiny_checkpoint, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(OutputDirError) as info:
        Trainer(_model(tiny_checkpoint), TrainingArguments(output_dir=str(blocker)))
    assert "output_dir" in str(info.value) and "a-file" in str(info.value)
    assert info.value.errno == errno.ENOTDIR and isinstance(info.value, OSError)


def test_output_dir_under_a_file_is_refused_at_init(tiny_checkpoint, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(OutputDirError) as info:
        Trainer(_model(tiny_checkpoint), TrainingArguments(output_dir=str(blocker / "deep" / "run")))
    assert str(blocker) in str(info.value) and info.value.path == str(blocker / "deep" / "run")


def test_read_only_output_dir_is_refused_at_init(tiny_checkpoint, tmp_path, monkeypatch):
    # the tests run as root, which chmod does not stop: the permission check itself is patched
    read_only = tmp_path / "read-only"
    read_only.mkdir()
    real_access = os.access
    monkeypatch.setattr(
        os, "access", lambda p, mode, **kw: False if Path(p) == read_only else real_access(p, mode, **kw)
    )
    for target in (read_only, read_only / "run"):  # the folder itself, and one to be created inside it
        with pytest.raises(OutputDirError, match="not writable") as info:
            Trainer(_model(tiny_checkpoint), TrainingArguments(output_dir=str(target)))
        assert str(read_only) in str(info.value) and info.value.errno == errno.EACCES
    assert list(read_only.iterdir()) == []


def test_a_valid_output_dir_is_not_created_at_init(tiny_checkpoint, tmp_path):
    Trainer(_model(tiny_checkpoint), TrainingArguments(output_dir=str(tmp_path / "later" / "run")))
    assert not (tmp_path / "later").exists()


def test_a_save_interval_beyond_the_run_still_saves_at_the_last_step(
    tiny_checkpoint, token_dataset, tmp_path
):
    args = TrainingArguments(
        output_dir=str(tmp_path / "run"), max_steps=2, save_steps=500, logging_steps=500, **COMMON
    )
    Trainer(_model(tiny_checkpoint), args, train_dataset=token_dataset).train()
    # nothing was logged (logging_steps=500) but the final train metrics, so there is no curve to plot
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["checkpoint-2", "logs.jsonl"]


# ---- all-or-nothing saves -----------------------------------------------------------------------------------


def test_save_model_swaps_the_whole_set_and_keeps_what_it_does_not_own(
    tiny_checkpoint, token_dataset, tmp_path
):
    out = tmp_path / "run"
    args = TrainingArguments(output_dir=str(out), max_steps=2, save_steps=2, **COMMON)
    trainer = Trainer(_model(tiny_checkpoint), args, train_dataset=token_dataset)
    trainer.train()  # leaves out/checkpoint-2
    trainer.save_model()
    (out / "README.md").write_text("card")
    (out / "model-00001-of-00009.safetensors").write_bytes(b"a stale shard of an older save")
    checkpoint = _digest(out / "checkpoint-2")
    trainer.save_model()
    names = sorted(p.name for p in out.iterdir())
    assert names == ["README.md", "checkpoint-2", "config.json", "generation_config.json", "logs.jsonl",
                     "model.safetensors", "training_args.json"]  # fmt: skip
    assert _digest(out / "checkpoint-2") == checkpoint
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no stage left beside it


def test_disk_full_during_save_model_leaves_the_previous_save(tiny_checkpoint, tmp_path, monkeypatch):
    out = tmp_path / "model"
    trainer = Trainer(_model(tiny_checkpoint), TrainingArguments(output_dir=str(tmp_path / "run")))
    trainer.save_model(out)
    before = _digest(out)
    with torch.no_grad():
        for p in trainer.model.parameters():
            p.add_(1.0)
    real_write_text = pathlib.Path.write_text

    def write_text(self, *args, **kwargs):  # the weights are written; the last file hits a full disk
        if self.name == "training_args.json":
            _disk_full()
        return real_write_text(self, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "write_text", write_text)
    with pytest.raises(XfOSError) as info:
        trainer.save_model(out)
    assert (
        str(out) in str(info.value) and info.value.errno == errno.ENOSPC and "disk is full" in str(info.value)
    )
    assert _digest(out) == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_disk_full_during_a_checkpoint_keeps_the_previous_one_resumable(
    tiny_checkpoint, token_dataset, tmp_path, monkeypatch
):
    def args(folder: str) -> TrainingArguments:
        return TrainingArguments(output_dir=str(tmp_path / folder), max_steps=4, save_steps=2, **COMMON)

    reference = _model(tiny_checkpoint)
    Trainer(reference, args("full"), train_dataset=token_dataset).train()

    run = tmp_path / "run"
    save_file = xf_train._state_io.save_file

    def fills_the_disk_on_the_second_checkpoint(tensors, filename, **kw):
        if "checkpoint-4" in filename:  # the stage of checkpoint-4, after its weights were written
            _disk_full()
        return save_file(tensors, filename, **kw)

    monkeypatch.setattr(xf_train._state_io, "save_file", fills_the_disk_on_the_second_checkpoint)
    trainer = Trainer(_model(tiny_checkpoint), args("run"), train_dataset=token_dataset)
    with pytest.raises(XfOSError) as info:
        trainer.train()
    assert str(run / "checkpoint-4") in str(info.value) and info.value.errno == errno.ENOSPC
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint-2"]  # nothing half-written, no stage left
    previous = _digest(run / "checkpoint-2")

    # overwriting the same checkpoint folder with a full disk leaves it byte for byte as it was
    monkeypatch.setattr(xf_train._state_io, "save_file", _disk_full)
    trainer.state.global_step = 2
    with pytest.raises(XfOSError, match="checkpoint-2"):
        trainer.save_checkpoint()
    assert _digest(run / "checkpoint-2") == previous

    monkeypatch.setattr(xf_train._state_io, "save_file", save_file)
    resumed = _model(tiny_checkpoint)
    state = Trainer(resumed, args("run"), train_dataset=token_dataset).train(resume_from_checkpoint=True)
    assert state.global_step == 4
    for name, value in reference.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[name], value, rtol=0, atol=1e-6)


# ---- OS errors at Trainer.train ---------------------------------------------------------------------------------


def test_permission_error_while_rotating_checkpoints_names_the_folder(
    tiny_checkpoint, token_dataset, tmp_path, monkeypatch
):
    run = tmp_path / "run"
    args = TrainingArguments(output_dir=str(run), max_steps=4, save_steps=2, save_total_limit=1, **COMMON)
    real_rmtree = shutil.rmtree

    def rmtree(path, *a, **kw):
        if Path(path).name == "checkpoint-2":
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_rmtree(path, *a, **kw)

    monkeypatch.setattr(shutil, "rmtree", rmtree)
    with pytest.raises(XfOSError) as info:
        Trainer(_model(tiny_checkpoint), args, train_dataset=token_dataset).train()
    assert str(run / "checkpoint-2") in str(info.value) and "permission denied" in str(info.value)
    assert isinstance(info.value.__cause__, PermissionError)


def test_os_error_from_logging_is_typed_and_names_the_file(tiny_checkpoint, token_dataset, tmp_path):
    log_file = tmp_path / "logs" / "train.jsonl"

    def write_log(event, trainer, payload):  # a logging callback whose disk fills up
        if event == "log":
            raise OSError(errno.ENOSPC, "No space left on device", str(log_file))

    args = TrainingArguments(output_dir=str(tmp_path / "run"), max_steps=1, logging_steps=1, **COMMON)
    trainer = Trainer(_model(tiny_checkpoint), args, train_dataset=token_dataset, callbacks=[write_log])
    with pytest.raises(XfError) as info:
        trainer.train()
    assert isinstance(info.value, XfOSError) and str(log_file) in str(info.value)
    assert "disk is full" in str(info.value)


@pytest.mark.parametrize("unreadable", ["optimizer.safetensors", "scheduler.json", "rng_state.safetensors"])
def test_an_unreadable_state_file_on_resume_is_an_os_error_naming_it(
    tiny_checkpoint, token_dataset, tmp_path, monkeypatch, unreadable
):
    args = TrainingArguments(output_dir=str(tmp_path / "run"), max_steps=2, save_steps=2, **COMMON)
    Trainer(_model(tiny_checkpoint), args, train_dataset=token_dataset).train()
    checkpoint = tmp_path / "run" / "checkpoint-2"

    def denied(path):
        return PermissionError(errno.EACCES, "Permission denied", str(path))

    real_safe_open, real_read_text = xf_train._state_io.safe_open, pathlib.Path.read_text

    def safe_open(path, *a, **kw):
        if Path(path).name == unreadable:
            raise denied(path)
        return real_safe_open(path, *a, **kw)

    def read_text(self, *a, **kw):
        if self.name == unreadable:
            raise denied(self)
        return real_read_text(self, *a, **kw)

    monkeypatch.setattr(xf_train._state_io, "safe_open", safe_open)
    monkeypatch.setattr(pathlib.Path, "read_text", read_text)
    args = TrainingArguments(output_dir=str(tmp_path / "run"), max_steps=4, save_strategy="no", **COMMON)
    with pytest.raises(XfOSError) as info:  # not "corrupt or truncated": the file may be fine
        Trainer(_model(tiny_checkpoint), args, train_dataset=token_dataset).train(
            resume_from_checkpoint=checkpoint
        )
    assert str(checkpoint / unreadable) in str(info.value) and "permission denied" in str(info.value)
    assert info.value.errno == errno.EACCES


def test_resuming_a_checkpoint_whose_swap_was_interrupted_names_the_parked_copy(
    tiny_checkpoint, token_dataset, tmp_path
):
    args = TrainingArguments(output_dir=str(tmp_path / "run"), max_steps=2, save_steps=2, **COMMON)
    Trainer(_model(tiny_checkpoint), args, train_dataset=token_dataset).train()
    checkpoint = tmp_path / "run" / "checkpoint-2"
    parked = (
        tmp_path / "run" / ".checkpoint-2.xf-old-0123abcd"
    )  # what the two-rename fallback leaves if killed
    checkpoint.rename(parked)
    trainer = Trainer(_model(tiny_checkpoint), args, train_dataset=token_dataset)
    with pytest.raises(FileNotFoundError, match="interrupted") as info:
        trainer.train(resume_from_checkpoint=checkpoint)
    assert isinstance(info.value, XfError) and str(parked) in str(info.value)
