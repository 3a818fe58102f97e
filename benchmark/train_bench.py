"""Training speed: ``xf_train.Trainer`` vs ``transformers.Trainer`` on the same small random Llama.

    uv run python benchmark/train_bench.py [--rounds 3] [--steps 20] [--tiny]

The checkpoint is saved once by transformers; every measurement runs in a fresh spawned process (xf and
transformers alternating round by round), loads it, and times ``train()`` for ``--steps`` steps of batch 8 x
64 tokens on CPU. Prints the medians of steps/s and the ratio xf/transformers (goal >= 1.0), and records every
measurement through the MetricsRecorder.
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


def train_once(who: str, path: str, steps: int, vocab: int) -> dict[str, float]:
    """One timed training run in this (fresh) process."""
    import torch

    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    rows = []
    for _ in range(8 * steps):
        ids = torch.randint(1, vocab, (64,), generator=g).tolist()
        rows.append({"input_ids": ids, "attention_mask": [1] * 64, "labels": ids})
    common = {"max_steps": steps, "per_device_train_batch_size": 8, "learning_rate": 1e-4, "seed": 0}
    with tempfile.TemporaryDirectory() as out:
        if who == "xf":
            from xf_load import AutoModelForCausalLM
            from xf_train import Trainer, TrainingArguments

            trainer = Trainer(
                AutoModelForCausalLM.from_pretrained(path),
                TrainingArguments(output_dir=out, **common),
                train_dataset=rows,
            )
        else:
            import transformers

            trainer = transformers.Trainer(
                model=transformers.AutoModelForCausalLM.from_pretrained(path),
                args=transformers.TrainingArguments(
                    output_dir=out, report_to=[], save_strategy="no", **common
                ),
                train_dataset=rows,
            )
        start = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - start
    return {"train_s": seconds, "train_steps_per_s": steps / seconds}


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
                ["xf", "transformers"], args.rounds, _Measure(str(path), args.steps, vocab), fresh=True
            )
        recorder.record_all(results, steps=args.steps)
    summary = medians(results)
    xf, hf = summary["xf"]["train_steps_per_s"], summary["transformers"]["train_steps_per_s"]
    print(f"{args.steps} steps, batch 8 x 64 tokens, {args.rounds} rounds, medians (steps/s):")
    print(f"xf {xf:.2f}  transformers {hf:.2f}  ratio xf/transformers {xf / hf:.2f}  (goal >= 1.0)")


class _Measure:
    """A picklable ``measure(who)`` for :func:`harness.alternate` (it runs in a spawned process)."""

    def __init__(self, path: str, steps: int, vocab: int) -> None:
        self.path, self.steps, self.vocab = path, steps, vocab

    def __call__(self, who: str) -> dict[str, float]:
        return train_once(who, self.path, self.steps, self.vocab)


if __name__ == "__main__":
    main()
