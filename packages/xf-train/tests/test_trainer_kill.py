"""A training run SIGKILLed at random moments (many of them while a checkpoint is being written), resumed each
time from its newest checkpoint, ends with weights bit-identical to a run that was never interrupted.

Each run is a process forked from a forkserver that has imported torch, xf_load and xf_train once, so a kill
and a restart cost a fork, not a fresh interpreter."""

from __future__ import annotations

import multiprocessing
import random
from multiprocessing.connection import Connection
from pathlib import Path

import torch
from safetensors.torch import load_file

from xf_load import testing

STEPS = 20  # 11 rows, batch 4: 3 steps an epoch, so the resumed runs cross epoch boundaries


def _train(checkpoint: str, out: str, conn: Connection, pause_in_save: bool = False) -> None:
    """Train to STEPS, saving every step, resuming from the newest checkpoint in ``out`` if there is one;
    report every step end (a checkpoint is written right after it) and the end of the run. With
    ``pause_in_save``, a save reports "saving" and waits half a second after the weights are staged and before
    the optimizer state is written, so that a kill lands in the middle of writing a checkpoint."""
    import time

    import xf_train._trainer_ckpt
    from xf_load import AutoModelForCausalLM
    from xf_train import Trainer, TrainingArguments

    if pause_in_save:
        write = xf_train._trainer_ckpt.save_training_state

        def slow_write(*args):
            conn.send(("saving", 0))
            time.sleep(0.5)
            write(*args)

        xf_train._trainer_ckpt.save_training_state = slow_write

    args = TrainingArguments(
        output_dir=out,
        per_device_train_batch_size=4,
        learning_rate=3e-3,
        warmup_steps=3,
        max_steps=STEPS,
        save_steps=1,
        save_total_limit=2,
        logging_steps=1,
        optim="adamw_torch",
        report_to="none",
        disable_tqdm=True,
        seed=5,
    )
    trainer = Trainer(
        AutoModelForCausalLM.from_pretrained(checkpoint),
        args,
        train_dataset=testing.token_dataset(),
        callbacks=[lambda event, t, payload: event == "log" and conn.send(("step", t.state.global_step))],
    )
    trainer.train(resume_from_checkpoint=any(Path(out).glob("checkpoint-*")) or None)
    trainer.save_model(Path(out) / "final")
    conn.send(("done", trainer.state.global_step))


def _run(
    context, checkpoint: Path, out: Path, pause_in_save: bool = False
) -> tuple[multiprocessing.Process, Connection]:
    receive, send = context.Pipe(duplex=False)
    proc = context.Process(target=_train, args=(str(checkpoint), str(out), send, pause_in_save))
    proc.start()
    send.close()
    return proc, receive


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(folder / "model.safetensors")


def test_sigkill_at_random_moments_then_resume_is_bit_identical(tmp_path):
    checkpoint = testing.tiny_checkpoint_factory(tmp_path, vocab_size=96)("LlamaForCausalLM")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(
        ["torch", "xf_load", "xf_load.models.llama", "xf_train._trainer", __name__]
    )

    proc, conn = _run(context, checkpoint, tmp_path / "straight")
    proc.join(300)
    assert proc.exitcode == 0, "the uninterrupted run failed"

    rng = random.Random(0)
    out, kills, finished = tmp_path / "killed", 0, False
    for attempt in range(30):
        # every other run is killed while it writes a checkpoint (its weights staged, its optimizer state not
        # yet), the others at a random moment shortly after a step ends, which is often in a save too
        in_save = attempt % 2 == 0
        proc, conn = _run(context, checkpoint, out, pause_in_save=in_save)
        assert conn.poll(120), "the training process reported nothing within 120 s"
        kind, _ = conn.recv()
        while in_save and kind == "step":
            assert conn.poll(120), "the training process reported nothing within 120 s"
            kind, _ = conn.recv()
        if kind == "done":
            finished = True
            proc.join(60)
            break
        if not in_save and conn.poll(rng.uniform(0.0, 0.06)) and conn.recv()[0] == "done":
            finished = True
            proc.join(60)
            break
        proc.kill()
        kills += 1
        proc.join(60)
        if kills == 10:
            break
    if not finished:  # the last run resumes to the end undisturbed
        proc, conn = _run(context, checkpoint, out)
        proc.join(300)
        assert proc.exitcode == 0, "the final resumed run failed"
    assert kills >= 10
    assert any(out.glob(".checkpoint-*"))  # the stages of the checkpoints killed mid-save were left aside

    straight, resumed = _weights(tmp_path / "straight" / "final"), _weights(out / "final")
    assert straight.keys() == resumed.keys()
    for name, value in straight.items():
        assert torch.equal(resumed[name], value), name
    # and the last step's optimizer state too: the runs are the same run
    name = f"checkpoint-{STEPS}/optimizer.safetensors"
    straight, resumed = load_file(tmp_path / "straight" / name), load_file(out / name)
    assert straight.keys() == resumed.keys()
    for key, value in straight.items():
        assert torch.equal(resumed[key], value), key
