"""Training speed: ``xf_train.Trainer`` vs a hand-written loop vs ``transformers.Trainer`` on the same small
random Llama, and the time of one checkpoint save.

    uv run python benchmark/train_bench.py [--rounds 3] [--steps 20] [--tiny]

The checkpoint is saved once by transformers; every measurement runs in a fresh spawned process (the three
alternating round by round), loads it, and times ``--steps`` steps of batch 8 x 64 tokens on CPU with fused
AdamW and no saving; then the Trainers time one checkpoint save. Every import a run needs happens before the
clock starts. Prints the medians and the ratios xf/hand (goal >= 0.97) and xf/transformers (goal >= 1.0; save
time goal <= 1.0), and records every measurement through the MetricsRecorder.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from harness import alternate, medians
from metrics import MetricsRecorder  # benchmark/ is on sys.path: this file runs as a script

MODEL = {
    "hidden_size": 256,
    "intermediate_size": 688,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "vocab_size": 4000,
    "max_position_embeddings": 128,
    "pad_token_id": 0,
}
TINY = {**MODEL, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "vocab_size": 96}


def make_checkpoint(path: Path, tiny: bool) -> None:
    import torch
    import transformers

    torch.manual_seed(0)
    transformers.LlamaForCausalLM(transformers.LlamaConfig(**(TINY if tiny else MODEL))).save_pretrained(path)


def _rows(steps: int, vocab: int) -> list[dict]:
    import torch

    g = torch.Generator().manual_seed(0)
    rows = []
    for _ in range(8 * steps):
        ids = torch.randint(1, vocab, (64,), generator=g).tolist()
        rows.append({"input_ids": ids, "attention_mask": [1] * 64, "labels": ids})
    return rows


def _hand_loop(path: str, rows: list[dict], steps: int) -> float:
    """The floor: the same model, batches, fused AdamW and linear schedule in a plain loop."""
    import torch

    from xf_load import AutoModelForCausalLM
    from xf_train import default_data_collator

    model = AutoModelForCausalLM.from_pretrained(path)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 - step / steps)
    batches = [default_data_collator(rows[i * 8 : (i + 1) * 8]) for i in range(steps)]
    start = time.perf_counter()
    model.train()
    for batch in batches:
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        loss.item()
    return time.perf_counter() - start


def train_once(who: str, path: str, steps: int, vocab: int) -> dict[str, float]:
    """One timed training run (and one timed checkpoint save) in this (fresh) process."""
    import torch

    torch.set_num_threads(1)
    rows = _rows(steps, vocab)
    common = {
        "max_steps": steps,
        "per_device_train_batch_size": 8,
        "learning_rate": 1e-4,
        "seed": 0,
        "save_strategy": "no",
        "report_to": [],
        "optim": "adamw_torch_fused",
        "disable_tqdm": True,
        "logging_steps": 500,
        "train_sampling_strategy": "sequential",
    }
    if who == "hand":
        seconds = _hand_loop(path, rows, steps)
        return {"train_s": seconds, "train_steps_per_s": steps / seconds}
    with tempfile.TemporaryDirectory() as out:
        if who == "xf":
            # One-time imports outside the clock, as transformers does them at its own import: torch's
            # Optimizer() imports torch._dynamo on first use (seconds without bytecode caches), and the
            # end-of-training plot imports matplotlib.
            import matplotlib.figure  # noqa: F401
            import torch._dynamo

            from xf_load import AutoModelForCausalLM
            from xf_train import Trainer, TrainingArguments

            trainer = Trainer(
                AutoModelForCausalLM.from_pretrained(path),
                TrainingArguments(output_dir=out, **common),
                train_dataset=rows,
            )
            save = trainer.save_checkpoint
        else:
            import transformers

            trainer = transformers.Trainer(
                model=transformers.AutoModelForCausalLM.from_pretrained(path),
                args=transformers.TrainingArguments(output_dir=out, use_cpu=True, **common),
                train_dataset=rows,
            )

            def save() -> None:
                trainer._save_checkpoint(trainer.model, trial=None)

        start = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - start
        start = time.perf_counter()
        save()
        save_seconds = time.perf_counter() - start
    return {"train_s": seconds, "train_steps_per_s": steps / seconds, "save_s": save_seconds}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--tiny", action="store_true", help="a 2-layer model, to check the script quickly")
    args = parser.parse_args(argv)
    vocab = (TINY if args.tiny else MODEL)["vocab_size"]
    with MetricsRecorder("train", steps=args.steps, tiny=args.tiny) as recorder:
        with tempfile.TemporaryDirectory(prefix="xf-trainbench-") as tmp:
            path = Path(tmp) / "llama"
            make_checkpoint(path, args.tiny)
            results = alternate(
                ["xf", "hand", "transformers"],
                args.rounds,
                _Measure(str(path), args.steps, vocab),
                fresh=True,
            )
        recorder.record_all(results, steps=args.steps)
    summary = medians(results)
    xf, hand, hf = (summary[k]["train_steps_per_s"] for k in ("xf", "hand", "transformers"))
    print(f"{args.steps} steps, batch 8 x 64 tokens, {args.rounds} rounds, medians (steps/s):")
    print(f"xf {xf:.2f}  hand loop {hand:.2f}  transformers {hf:.2f}")
    print(f"xf/hand {xf / hand:.3f} (goal >= 0.97)  xf/transformers {xf / hf:.3f} (goal >= 1.0)")
    xf_save, hf_save = summary["xf"]["save_s"], summary["transformers"]["save_s"]
    print(
        f"checkpoint save: xf {xf_save:.3f} s  transformers {hf_save:.3f} s  ratio {xf_save / hf_save:.2f} (goal <= 1.0)"
    )


class _Measure:
    """A picklable ``measure(who)`` for :func:`harness.alternate` (it runs in a spawned process)."""

    def __init__(self, path: str, steps: int, vocab: int) -> None:
        self.path, self.steps, self.vocab = path, steps, vocab

    def __call__(self, who: str) -> dict[str, float]:
        return train_once(who, self.path, self.steps, self.vocab)


if __name__ == "__main__":
    main()
