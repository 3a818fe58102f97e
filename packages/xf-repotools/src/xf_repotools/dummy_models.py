"""``xf-repotools dummy-models OUT``: a tiny random checkpoint for every family registered in xf-load's auto
table, for tests and for other repositories' CI.

``OUT/<model_type>/`` gets ``config.json``, ``model.safetensors`` (written by the family's own
``save_pretrained``, so the files are exactly what ``from_pretrained`` reads) and a word-level
``tokenizer.json`` + ``tokenizer_config.json`` whose vocabulary matches the config. Building models needs
xf-load and torch: they are imported here, on use, and a clear MissingDependencyError names what to install
(``pip install xf-load``); every checker of xf-repotools stays torch-free.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from xf_core.lazy import require
from xf_repotools.errors import RepoToolsError

__all__ = ["TINY", "VOCAB_SIZE", "build", "main"]

VOCAB_SIZE = 96
# Config field -> tiny value; only the fields a family's config has are used.
TINY = {
    "vocab_size": VOCAB_SIZE,
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 8,
    "max_position_embeddings": 64,
    "type_vocab_size": 2,
    "n_embd": 32,
    "n_layer": 2,
    "n_head": 4,
    "n_positions": 64,
    "pad_token_id": 0,
    "bos_token_id": 1,
    "eos_token_id": 2,
}
# Head preference: the richest head a family has is the checkpoint other repositories' tests want.
HEADS = ("causal_lm", "masked_lm", "base")
SPECIAL = ["[PAD]", "[BOS]", "[EOS]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def _tokenizer(out: Path) -> None:
    tokenizers = require("tokenizers", purpose="writing dummy tokenizers")
    words = [f"w{i}" for i in range(VOCAB_SIZE - len(SPECIAL))]
    vocab = {tok: i for i, tok in enumerate([*SPECIAL, *words])}
    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    tok.save(str(out / "tokenizer.json"))
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "pad_token": "[PAD]",
        "bos_token": "[BOS]",
        "eos_token": "[EOS]",
        "unk_token": "[UNK]",
        "cls_token": "[CLS]",
        "sep_token": "[SEP]",
        "mask_token": "[MASK]",
        "model_max_length": 64,
    }
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")


def build(out: Path, *, families: list[str] | None = None, seed: int = 0) -> list[Path]:
    """Write one tiny checkpoint folder per family under ``out``; return the folders."""
    torch = require("torch", purpose="building dummy model checkpoints")
    require("xf_load", purpose="building dummy model checkpoints", package="xf-load")
    import importlib

    from xf_load.auto import FAMILIES

    unknown = sorted(set(families or []) - set(FAMILIES))
    if unknown:
        raise RepoToolsError(f"unknown model types {unknown}; registered: {', '.join(sorted(FAMILIES))}")
    written = []
    for model_type, family in sorted(FAMILIES.items()):
        if families and model_type not in families:
            continue
        module = importlib.import_module(family.module)
        config_cls = getattr(module, family.config)
        fields = {f.name for f in dataclasses.fields(config_cls)}
        config = config_cls(**{k: v for k, v in TINY.items() if k in fields})
        head = next(h for h in HEADS if h in family.heads)
        torch.manual_seed(seed)
        model = getattr(module, family.heads[head])(config)
        folder = out / model_type
        model.save_pretrained(folder)
        _tokenizer(folder)
        written.append(folder)
    return written


def main(out: Path, *, families: list[str] | None = None) -> int:
    for folder in build(out, families=families):
        print(folder)
    return 0
