"""Shared fixtures of the xf-load tests: tiny random checkpoints written by transformers (the parity oracle)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

TINY_DECODER = {
    "hidden_size": 64,
    "intermediate_size": 96,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "vocab_size": 128,
    "max_position_embeddings": 256,
    "pad_token_id": 0,
}


@pytest.fixture
def save_hf(tmp_path: Path) -> Callable[..., Path]:
    """``save_hf("LlamaForCausalLM", config_class="LlamaConfig", **config)`` -> a directory holding a
    random-weight checkpoint saved by transformers (seeded, fp32 unless ``dtype`` is given)."""

    def save(
        model_class: str,
        *,
        config_class: str = "LlamaConfig",
        dtype: torch.dtype = torch.float32,
        name: str = "hf",
        save_kwargs: dict[str, Any] | None = None,
        **config: Any,
    ) -> Path:
        import transformers

        torch.manual_seed(0)
        cfg = getattr(transformers, config_class)(**{**TINY_DECODER, **config})
        model = getattr(transformers, model_class)(cfg).eval()
        with torch.no_grad():  # norms start at 1: perturb them so a wrong norm weight shows in the logits
            for n, p in model.named_parameters():
                if "norm" in n:
                    p.add_(torch.randn_like(p) * 0.1)
        model = model.to(dtype)
        path = tmp_path / name
        model.save_pretrained(path, **(save_kwargs or {}))
        return path

    return save


@pytest.fixture
def batch() -> dict[str, torch.Tensor]:
    """Two sequences of 11 tokens, the second left-padded by 3."""
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(1, 128, (2, 11), generator=g)
    mask = torch.ones_like(ids)
    mask[1, :3] = 0
    ids[1, :3] = 0
    return {"input_ids": ids, "attention_mask": mask}


@pytest.fixture
def load_hf() -> Callable[..., Any]:
    """``load_hf(path, "LlamaForCausalLM", **kwargs)``: transformers' own model from ``path``, in eval mode."""

    def load(path: Path, model_class: str, **kwargs: Any) -> Any:
        import transformers

        return getattr(transformers, model_class).from_pretrained(path, **kwargs).eval()

    return load
