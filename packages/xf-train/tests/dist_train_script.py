"""A user's training script, the same under ``python`` and ``torchrun``: load a model, train with the Trainer,
save it. test_trainer_distributed.py runs it in one process and under torchrun with 2 gloo processes.

    python dist_train_script.py MODEL_DIR JOBS_JSON

JOBS_JSON is a list of runs done one after the other in this process: each is the TrainingArguments'
keywords, plus ``"tp": true`` to load the model tensor parallel over every process
(``tp_plan="auto", device_mesh=...``) and ``"final"``, a folder for ``Trainer.save_model`` at the end.
"""

from __future__ import annotations

import json
import os
import sys

import torch

from xf_load import AutoModelForCausalLM
from xf_train import Trainer, TrainingArguments

VOCAB, LENGTH, ROWS = 64, 12, 32


def dataset() -> list[dict[str, list[int]]]:
    """32 rows of 12 tokens; about a third of the labels are -100, so rows hold different target counts."""
    g = torch.Generator().manual_seed(7)
    ids = torch.randint(0, VOCAB, (ROWS, LENGTH), generator=g)
    labels = ids.clone()
    labels[torch.rand(ROWS, LENGTH, generator=g) < 0.3] = -100
    return [{"input_ids": i.tolist(), "labels": lab.tolist()} for i, lab in zip(ids, labels, strict=True)]


def run(model_dir: str, job: dict) -> None:
    job = dict(job)
    final = job.pop("final", None)
    kwargs = {}
    if job.pop("tp", False):
        from torch.distributed.device_mesh import init_device_mesh

        if not torch.distributed.is_initialized():
            torch.distributed.init_process_group("gloo")
        world = int(os.environ["WORLD_SIZE"])
        kwargs = {"tp_plan": "auto", "device_mesh": init_device_mesh("cpu", (world,), mesh_dim_names=("tp",))}
    model = AutoModelForCausalLM.from_pretrained(model_dir, **kwargs)
    args = TrainingArguments(
        use_cpu=True, logging_steps=1, learning_rate=1e-2, disable_tqdm=True, report_to=[], **job
    )
    trainer = Trainer(model, args, train_dataset=dataset())
    trainer.train()
    if final is not None:
        trainer.save_model(final)


if __name__ == "__main__":
    for job in json.loads(sys.argv[2]):
        run(sys.argv[1], job)
