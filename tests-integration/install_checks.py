"""The checks of each install-matrix cell, run by the cell's own venv python (no pytest there):

    VENV/bin/python tests-integration/install_checks.py CELL WORKDIR [REPO_ROOT]

Each check uses only what its cell installs, builds its tiny inputs itself (a word-level tokenizer, a random
Llama), and exits non-zero (an AssertionError, an ImportError) when the cell does not work.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

VOCAB = {"[PAD]": 0, "[UNK]": 1, "a": 2, "cat": 3, "sat": 4, "on": 5, "the": 6, "mat": 7}
LLAMA = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "vocab_size": 96,
    "max_position_embeddings": 64,
    "pad_token_id": 0,
}


def no_torch() -> None:
    assert importlib.util.find_spec("torch") is None, "torch is installed in a cell that must not need it"


def no_transformers() -> None:
    assert importlib.util.find_spec("transformers") is None, (
        "transformers is installed: it must never be needed"
    )


def word_tokenizer(workdir: Path) -> Path:
    from tokenizers import Tokenizer, models, pre_tokenizers

    tokenizer = Tokenizer(models.WordLevel(VOCAB, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    path = workdir / "tokenizer"
    path.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(path / "tokenizer.json"))
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "pad_token": "[PAD]", "unk_token": "[UNK]"}
    (path / "tokenizer_config.json").write_text(json.dumps(config))
    return path


def tiny_llama(workdir: Path) -> Path:
    import torch

    from xf_load import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    path = workdir / "llama"
    LlamaForCausalLM(LlamaConfig(**LLAMA)).save_pretrained(path)
    return path


def check_tokenize(workdir: Path) -> None:
    no_torch()
    from xf_tokenize import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(word_tokenizer(workdir))
    batch = tokenizer(["a cat sat", "the cat sat on the mat"], padding=True)
    assert batch["input_ids"] == [[2, 3, 4, 0, 0, 0], [6, 3, 4, 5, 6, 7]], batch["input_ids"]
    assert batch["attention_mask"] == [[1, 1, 1, 0, 0, 0], [1] * 6], batch["attention_mask"]


def check_load_tokenize(workdir: Path) -> None:
    import torch

    from xf_load import AutoModelForCausalLM
    from xf_tokenize import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(word_tokenizer(workdir))
    model = AutoModelForCausalLM.from_pretrained(tiny_llama(workdir))
    batch = tokenizer(["a cat sat", "the cat sat on the mat"], padding=True, return_tensors="pt")
    with torch.no_grad():
        logits = model(**batch).logits
    assert tuple(logits.shape) == (2, 6, LLAMA["vocab_size"]) and torch.isfinite(logits).all()


def check_pipeline(workdir: Path) -> None:
    no_transformers()
    out = subprocess.run(
        [
            str(Path(sys.executable).with_name("xf")),
            "pipeline",
            "sentence-similarity",
            "A cat sat.",
            "A cat sits.",
            "Stock prices fell.",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    (scores,) = [json.loads(line) for line in out.stdout.splitlines()]
    assert scores[0] > scores[1], scores


def check_train(workdir: Path) -> None:
    import torch

    from xf_load import AutoModelForCausalLM
    from xf_train import Trainer, TrainingArguments

    model = AutoModelForCausalLM.from_pretrained(tiny_llama(workdir))
    g = torch.Generator().manual_seed(3)
    rows = []
    for _ in range(8):
        ids = torch.randint(1, LLAMA["vocab_size"], (12,), generator=g).tolist()
        rows.append({"input_ids": ids, "attention_mask": [1] * 12, "labels": ids})
    args = TrainingArguments(
        output_dir=str(workdir / "run"),
        max_steps=2,
        per_device_train_batch_size=4,
        learning_rate=1e-3,
        seed=0,
    )
    trainer = Trainer(model, args, train_dataset=rows)
    trainer.train()
    assert trainer.state.global_step == 2
    (summary,) = [entry for entry in trainer.state.log_history if "train_loss" in entry]
    assert 0 < summary["train_loss"] < 100, trainer.state.log_history


def check_quant(workdir: Path) -> None:
    import torch

    from xf_load import AutoModelForCausalLM
    from xf_quant import BitsAndBytesConfig, get_memory_footprint

    path = tiny_llama(workdir)
    full = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    int8 = AutoModelForCausalLM.from_pretrained(
        path, quantization_config=BitsAndBytesConfig(load_in_8bit=True)
    )
    assert get_memory_footprint(int8) < 0.6 * get_memory_footprint(full)
    with torch.no_grad():
        logits = int8(torch.arange(1, 9).view(1, 8)).logits
    assert torch.isfinite(logits).all()


def gloo_worker(rank: int, world: int, init_file: str) -> None:
    """One of the ``check_parallel`` processes: join the gloo group and all-reduce its rank."""
    import torch
    import torch.distributed as dist

    import xf_parallel  # noqa: F401  (the package imports in every process)

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        tensor = torch.tensor([float(rank + 1)])
        dist.all_reduce(tensor)
        assert tensor.item() == world * (world + 1) / 2, tensor
    finally:
        dist.destroy_process_group()


def check_parallel(workdir: Path) -> None:
    """Two processes in one gloo process group."""
    init = workdir / "gloo-init"
    init.unlink(missing_ok=True)
    workers = [
        subprocess.Popen([sys.executable, __file__, "gloo-worker", str(rank), "2", str(init)])
        for rank in range(2)
    ]
    codes = [w.wait(timeout=300) for w in workers]
    assert codes == [0, 0], codes


def check_repotools(workdir: Path, root: Path) -> None:
    no_torch()
    out = subprocess.run(
        [str(Path(sys.executable).with_name("xf-repotools")), "all", "--root", str(root)],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr


CHECKS = {
    "tokenize": check_tokenize,
    "load-tokenize": check_load_tokenize,
    "pipeline": check_pipeline,
    "train": check_train,
    "quant": check_quant,
    "parallel": check_parallel,
}


if __name__ == "__main__":
    if sys.argv[1] == "gloo-worker":
        gloo_worker(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
        sys.exit(0)
    cell, workdir = sys.argv[1], Path(sys.argv[2])
    workdir.mkdir(parents=True, exist_ok=True)
    if cell == "repotools":
        check_repotools(workdir, Path(sys.argv[3]))
    else:
        CHECKS[cell](workdir)
    print(f"cell {cell}: ok")
