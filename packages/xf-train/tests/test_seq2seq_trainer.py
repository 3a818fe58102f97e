"""Fine-tuning a tiny T5 with xf's Trainer gives transformers' Trainer's loss curve, grad norms and weights.

Batches are padded by a small local collator (inputs with the pad id, labels with -100), the same function on
both sides; the model builds its decoder inputs from the labels (shifted right from decoder_start_token_id).
"""

from __future__ import annotations

import pytest
import torch

from xf_load import AutoModelForSeq2SeqLM
from xf_train import Trainer, TrainingArguments

transformers = pytest.importorskip("transformers")

VOCAB = 64
ARGS = {
    "per_device_train_batch_size": 2,
    # One micro-batch per step: transformers' T5 takes num_items_in_batch in **kwargs but returns a plain mean,
    # so with accumulation transformers' Trainer sums the means (its gradients grow with the steps); xf's T5
    # normalises by the window's tokens. Without accumulation the two definitions agree.
    "gradient_accumulation_steps": 1,
    "learning_rate": 3e-3,
    "weight_decay": 0.1,
    "warmup_steps": 1,
    "max_grad_norm": 0.5,
    "num_train_epochs": 2,
    "lr_scheduler_type": "linear",
    "logging_steps": 1,
    "save_strategy": "no",
    "train_sampling_strategy": "sequential",
    "optim": "adamw_torch",
    "report_to": "none",
    "disable_tqdm": True,
    "seed": 3,
}


def _dataset() -> list[dict[str, list[int]]]:
    """Ten source/target pairs of different lengths (the target is the source reversed, so there is
    something to learn)."""
    g = torch.Generator().manual_seed(0)
    rows = []
    for i in range(10):
        source = torch.randint(2, VOCAB, (3 + i % 4,), generator=g).tolist()
        target = [*reversed(source), 1][: 2 + i % 3]
        rows.append({"input_ids": source, "attention_mask": [1] * len(source), "labels": target})
    return rows


def _pad(features: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
    """Right-pad each key to the longest row: input ids with 0 (T5's pad), the mask with 0, labels with -100."""
    fill = {"input_ids": 0, "attention_mask": 0, "labels": -100}
    batch = {}
    for key, value in fill.items():
        width = max(len(f[key]) for f in features)
        batch[key] = torch.tensor([f[key] + [value] * (width - len(f[key])) for f in features])
    return batch


@pytest.fixture(scope="module")
def t5_checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("t5") / "tiny"
    torch.manual_seed(0)
    config = transformers.T5Config(
        vocab_size=VOCAB, d_model=32, d_kv=8, d_ff=48, num_layers=2, num_heads=4, dropout_rate=0.0,
        relative_attention_num_buckets=8, relative_attention_max_distance=16, decoder_start_token_id=0,
    )  # fmt: skip
    transformers.T5ForConditionalGeneration(config).save_pretrained(path)
    return path


def test_t5_fine_tuning_matches_transformers_trainer(t5_checkpoint, tmp_path):
    data = _dataset()
    hf_model = transformers.T5ForConditionalGeneration.from_pretrained(t5_checkpoint)
    hf_args = transformers.TrainingArguments(output_dir=str(tmp_path / "hf"), use_cpu=True, **ARGS)
    hf = transformers.Trainer(model=hf_model, args=hf_args, train_dataset=data, data_collator=_pad)
    hf.train()

    model = AutoModelForSeq2SeqLM.from_pretrained(t5_checkpoint)
    args = TrainingArguments(output_dir=str(tmp_path / "xf"), **ARGS)
    state = Trainer(model, args, train_dataset=data, data_collator=_pad).train()

    hf_steps = [e for e in hf.state.log_history if "loss" in e]
    xf_steps = [e for e in state.log_history if "loss" in e]
    assert len(xf_steps) == len(hf_steps) == 10  # 10 rows / 2 = 5 batches per epoch, 2 epochs
    for key in ("loss", "grad_norm", "learning_rate"):
        torch.testing.assert_close(
            torch.tensor([e[key] for e in xf_steps], dtype=torch.float64),
            torch.tensor([e[key] for e in hf_steps], dtype=torch.float64),
            rtol=0,
            atol=1e-5,
            msg=lambda m, key=key: f"{key}: {m}",
        )
    assert xf_steps[-1]["loss"] < xf_steps[0]["loss"]  # it learns
    xf_state = model.state_dict()
    for name, value in hf_model.state_dict().items():
        torch.testing.assert_close(
            xf_state[name], value, rtol=0, atol=1e-5, msg=lambda m, n=name: f"{n}: {m}"
        )
