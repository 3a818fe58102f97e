"""Fixtures of the xf-train tests: tiny random checkpoints written by transformers (the parity oracle) and
a tiny token dataset with padding and ignored labels."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

TINY = {
    "LlamaForCausalLM": (
        "LlamaConfig",
        {
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "vocab_size": 96,
            "max_position_embeddings": 64,
            "pad_token_id": 0,
        },
    ),
    "BertForSequenceClassification": (
        "BertConfig",
        {
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "vocab_size": 96,
            "max_position_embeddings": 64,
            "hidden_dropout_prob": 0.0,
            "attention_probs_dropout_prob": 0.0,
            "num_labels": 3,
        },
    ),
    "GPT2LMHeadModel": (
        "GPT2Config",
        {
            "n_embd": 32,
            "n_layer": 2,
            "n_head": 4,
            "vocab_size": 96,
            "n_positions": 64,
            "resid_pdrop": 0.0,
            "embd_pdrop": 0.0,
            "attn_pdrop": 0.0,
        },
    ),
}


@pytest.fixture
def tiny_checkpoint(tmp_path: Path) -> Callable[[str], Path]:
    """``tiny_checkpoint("LlamaForCausalLM")`` -> a folder with a seeded random model saved by transformers."""

    def save(model_class: str) -> Path:
        import transformers

        config_class, config = TINY[model_class]
        torch.manual_seed(0)
        model = getattr(transformers, model_class)(getattr(transformers, config_class)(**config))
        path = tmp_path / f"hf-{model_class}"
        model.save_pretrained(path)
        return path

    return save


@pytest.fixture
def token_dataset() -> list[dict[str, Any]]:
    """11 rows of 12 tokens; some rows right-padded (mask 0, label -100) so token counts differ per batch."""
    g = torch.Generator().manual_seed(3)
    rows = []
    for i in range(11):
        ids = torch.randint(1, 96, (12,), generator=g)
        n = 12 - (i % 4) * 2
        mask = torch.zeros(12, dtype=torch.long)
        mask[:n] = 1
        ids[n:] = 0
        labels = ids.clone()
        labels[n:] = -100
        rows.append({"input_ids": ids.tolist(), "attention_mask": mask.tolist(), "labels": labels.tolist()})
    return rows
