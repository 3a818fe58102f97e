"""Test scaffolding for xf-load and every package above it: one tiny config per model family, tiny random
checkpoints saved by transformers, the loader for transformers' own models, a toy causal LM that follows
xf's decoder contract, and the pytest fixtures built on them (plain functions; a conftest wires them with
``pytest.fixture``).

transformers is a **test-only dependency** of xf, the parity oracle: it is imported inside the functions that
need it and never at import time, and ``import xf_load`` does not import this module. Torch-free helpers
(tokenizer files, Hugging Face cache layouts) live in ``xf_core.testing``.

    path = save_tiny_transformers_checkpoint("Qwen2ForCausalLM", tmp_path / "hf", sliding_window=4)
    theirs = load_with_transformers(path, "Qwen2ForCausalLM")
    ours = xf_load.AutoModelForCausalLM.from_pretrained(path)
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

import torch
from torch import nn

from xf_load.cache import DynamicCache
from xf_load.generation import GenerationConfig, GenerationMixin
from xf_load.outputs import CausalLMOutput

__all__ = [
    "FAMILIES",
    "MINILM_BERT",
    "Family",
    "ToyCausalLM",
    "ToyConfig",
    "cached_checkpoint_factory",
    "family_of",
    "full_greedy",
    "left_padded_batch",
    "load_pair",
    "load_with_transformers",
    "make_toy",
    "save_tiny_transformers_checkpoint",
    "tiny_checkpoint_factory",
    "tiny_config",
    "tiny_transformers_model",
    "token_dataset",
    "xf_class",
]

# --- tiny configs ------------------------------------------------------------------------------------------

_DECODER = MappingProxyType(
    {
        "hidden_size": 64,
        "intermediate_size": 96,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,  # grouped-query attention
        "vocab_size": 128,
        "max_position_embeddings": 256,
        "pad_token_id": 0,
    }
)
_ENCODER = MappingProxyType(
    {
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "intermediate_size": 37,
        "vocab_size": 99,
        "max_position_embeddings": 64,
        "type_vocab_size": 2,
        "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0,
    }
)
_GPT2 = MappingProxyType(
    {
        "n_embd": 32,
        "n_layer": 2,
        "n_head": 4,
        "vocab_size": 99,
        "n_positions": 64,
        "bos_token_id": 0,
        "eos_token_id": 0,
        "resid_pdrop": 0.0,
        "embd_pdrop": 0.0,
        "attn_pdrop": 0.0,
    }
)
_VIT = MappingProxyType(
    {
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "intermediate_size": 37,
        "image_size": 30,
        "patch_size": 10,  # a 3x3 patch grid
        "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0,
    }
)
_CLIP_TOWER = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 37}
_CLIP_TEXT = MappingProxyType(
    {**_CLIP_TOWER, "vocab_size": 99, "max_position_embeddings": 16, "bos_token_id": 97, "eos_token_id": 98}
)
_CLIP_VISION = MappingProxyType({**_CLIP_TOWER, "image_size": 30, "patch_size": 10})
_CLIP = MappingProxyType(
    {"text_config": dict(_CLIP_TEXT), "vision_config": dict(_CLIP_VISION), "projection_dim": 16}
)


class Family(NamedTuple):
    config_class: str  # the config class name, the same in transformers and xf
    xf_module: str  # the xf_load module that holds the family's classes
    tiny: Mapping[str, Any]  # config values of a tiny model


FAMILIES: Mapping[str, Family] = MappingProxyType(
    {
        "Llama": Family("LlamaConfig", "xf_load.models.llama", _DECODER),
        "Mistral": Family("MistralConfig", "xf_load.models.llama", _DECODER),
        "Qwen2": Family("Qwen2Config", "xf_load.models.llama", _DECODER),
        "Qwen3": Family("Qwen3Config", "xf_load.models.llama", _DECODER),
        "GPT2": Family("GPT2Config", "xf_load.models.gpt2", _GPT2),
        "Bert": Family("BertConfig", "xf_load.models.bert", _ENCODER),
        "Roberta": Family("RobertaConfig", "xf_load.models.bert", _ENCODER),
        "ViT": Family("ViTConfig", "xf_load.models.vit", _VIT),
        "CLIP": Family("CLIPConfig", "xf_load.models.clip", _CLIP),
        "CLIPText": Family("CLIPTextConfig", "xf_load.models.clip", _CLIP_TEXT),
        "CLIPVision": Family("CLIPVisionConfig", "xf_load.models.clip", _CLIP_VISION),
    }
)
"""The tiny config table, by the family prefix of the class names (``Qwen2`` in ``Qwen2ForCausalLM``). Tiny:
two layers, small widths, dropout off (so training runs of two libraries can agree); read-only, and
:func:`tiny_config` returns a copy with overrides."""

MINILM_BERT: Mapping[str, Any] = MappingProxyType({"vocab_size": 30522, "max_position_embeddings": 128})
"""Overrides that let a tiny BERT read MiniLM's real tokenizer (``xf_core.testing.copy_minilm_tokenizer``)."""


_HEAD_LABELS = {
    "ForSequenceClassification": 3,  # more than two classes
    "ForTokenClassification": 3,
    "ForQuestionAnswering": 2,  # start and end logits
    "ForImageClassification": 3,
}


def family_of(name: str) -> str:
    """The family prefix of a model or config class name: ``"Qwen2ForCausalLM"`` -> ``"Qwen2"``."""
    matches = [prefix for prefix in FAMILIES if name.startswith(prefix)]
    if not matches:
        raise ValueError(
            f"{name!r} is not a class of a family with a tiny config; known prefixes: {', '.join(FAMILIES)} "
            "(add the family to xf_load.testing.FAMILIES)"
        )
    return max(matches, key=len)


def tiny_config(arch: str, **overrides: Any) -> dict[str, Any]:
    """The tiny config values for ``arch`` (a class name such as ``"BertForQuestionAnswering"``) with
    ``overrides`` on top, as keyword arguments for the family's config class."""
    values = dict(FAMILIES[family_of(arch)].tiny)
    for head, num_labels in _HEAD_LABELS.items():
        if arch.endswith(head) and "id2label" not in overrides:  # label names set the count themselves
            values["num_labels"] = num_labels
    return {**values, **overrides}


# --- tiny checkpoints saved by transformers -------------------------------------------------------------


def _is_norm(name: str) -> bool:
    # Llama's *norm, BERT's LayerNorm, GPT-2's ln_1/ln_2/ln_f, ViT's layernorm_*, CLIP's layer_norm*/pre_layrnorm
    return "norm" in name.lower() or "ln_" in name


def tiny_transformers_model(
    arch: str,
    *,
    seed: int = 0,
    perturb_norms: bool = True,
    dtype: torch.dtype = torch.float32,
    config_class: str | None = None,
    **overrides: Any,
) -> Any:
    """transformers' ``arch`` (e.g. ``"LlamaForCausalLM"``) on its tiny config, in eval mode, with random
    weights drawn after ``torch.manual_seed(seed)``.

    ``perturb_norms`` adds N(0, 0.1) noise to every norm weight and bias (they start at exactly 1 and 0, so a
    misplaced or missing norm would not show in the outputs otherwise). ``config_class``, when given, must be
    the family's (``"MistralConfig"`` for ``"MistralForCausalLM"``); it is derived from ``arch`` anyway.
    """
    import transformers

    family = FAMILIES[family_of(arch)]
    if config_class is not None and config_class != family.config_class:
        raise ValueError(f"{arch} is built on {family.config_class}, not on config_class={config_class!r}")
    config = getattr(transformers, family.config_class)(**tiny_config(arch, **overrides))
    torch.manual_seed(seed)
    model = getattr(transformers, arch)(config).eval()
    if perturb_norms:
        with torch.no_grad():
            for name, param in model.named_parameters():
                if _is_norm(name):
                    param.add_(torch.randn_like(param) * 0.1)
    return model.to(dtype)


def save_tiny_transformers_checkpoint(
    arch: str,
    path: str | os.PathLike[str],
    *,
    seed: int = 0,
    perturb_norms: bool = True,
    dtype: torch.dtype = torch.float32,
    config_class: str | None = None,
    save_kwargs: Mapping[str, Any] | None = None,
    **overrides: Any,
) -> Path:
    """Save :func:`tiny_transformers_model` with transformers' ``save_pretrained`` (``save_kwargs``, e.g.
    ``{"max_shard_size": "40KB"}``) into ``path``; return ``path``."""
    model = tiny_transformers_model(
        arch, seed=seed, perturb_norms=perturb_norms, dtype=dtype, config_class=config_class, **overrides
    )
    path = Path(path)
    model.save_pretrained(path, **dict(save_kwargs or {}))
    return path


def load_with_transformers(path: str | os.PathLike[str], arch: str | None = None, **kwargs: Any) -> Any:
    """transformers' own model from ``path`` in eval mode: class ``arch`` (a model or ``AutoModel*`` class
    name), by default the first of ``architectures`` in its ``config.json``.

    A bitsandbytes-quantized model gets bitsandbytes' CPU repacking of 4-bit weights turned off, as xf-quant
    does, so both libraries run the same kernels on the same bytes.
    """
    import transformers

    if arch is None:
        config = json.loads((Path(path) / "config.json").read_text())
        arch = config["architectures"][0]
    model = getattr(transformers, arch).from_pretrained(path, **kwargs).eval()
    for module in model.modules():
        if hasattr(module, "support_avx512bf16_for_cpu"):
            module.support_avx512bf16_for_cpu = False
    return model


def xf_class(arch: str) -> type:
    """xf's class of that name: ``xf_class("Qwen3ForCausalLM")`` is ``xf_load.models.llama.Qwen3ForCausalLM``."""
    found = getattr(importlib.import_module(FAMILIES[family_of(arch)].xf_module), arch, None)
    if found is None:
        raise ValueError(f"xf_load has no class {arch!r}; the family's module defines the heads xf supports")
    return found


def load_pair(path: str | os.PathLike[str], arch: str, **kwargs: Any) -> tuple[Any, Any]:
    """``(xf model, transformers model)`` of class ``arch`` from the same checkpoint, both in eval mode, with
    ``kwargs`` given to both ``from_pretrained`` calls."""
    return xf_class(arch).from_pretrained(path, **kwargs).eval(), load_with_transformers(path, arch, **kwargs)


# --- batches and datasets -----------------------------------------------------------------------------------


def left_padded_batch() -> dict[str, torch.Tensor]:
    """Two sequences of 11 tokens of the tiny decoder's vocabulary, the second left-padded by 3 (pad id 0)."""
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(1, _DECODER["vocab_size"], (2, 11), generator=g)
    mask = torch.ones_like(ids)
    mask[1, :3] = 0
    ids[1, :3] = 0
    return {"input_ids": ids, "attention_mask": mask}


def token_dataset() -> list[dict[str, Any]]:
    """11 rows of 12 tokens below 96 (pair it with ``vocab_size=96``); some rows right-padded (mask 0, label -100) so token counts differ per
    batch."""
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


# --- fixtures (plain functions: wire them in a conftest with pytest.fixture(...)) ---------------------------


def tiny_checkpoint_factory(root: Path, **defaults: Any) -> Callable[..., Path]:
    """``save(arch, *, name=None, **options)`` -> a directory under ``root`` holding
    :func:`save_tiny_transformers_checkpoint` of ``arch`` (same options, on top of ``defaults``); ``name``
    defaults to ``hf-<arch>``. Wire it in a conftest: ``return tiny_checkpoint_factory(tmp_path)``."""

    def save(arch: str, *, name: str | None = None, **options: Any) -> Path:
        path = Path(root) / (name or f"hf-{arch}")
        return save_tiny_transformers_checkpoint(arch, path, **{**defaults, **options})

    return save


def cached_checkpoint_factory(root: Path, **defaults: Any) -> Callable[..., Path]:
    """Like :func:`tiny_checkpoint_factory` but each ``(arch, options)`` is saved once and then reused, for
    session-scoped fixtures; ``defaults`` apply to every checkpoint unless a call overrides them."""
    made: dict[str, Path] = {}

    def get(arch: str, **options: Any) -> Path:
        options = {**defaults, **options}
        key = json.dumps([arch, options], sort_keys=True, default=str)
        if key not in made:
            made[key] = save_tiny_transformers_checkpoint(arch, Path(root) / f"{arch}-{len(made)}", **options)
        return made[key]

    return get


# --- a toy causal LM on xf's decoder contract ----------------------------------------------------------------


class ToyConfig:
    """Just what generation reads from a config."""

    def __init__(
        self,
        vocab_size: int = 97,
        hidden_size: int = 32,
        num_layers: int = 2,
        num_heads: int = 4,
        max_position_embeddings: int = 128,
        eos_token_id: int | list[int] | None = None,
        pad_token_id: int | None = None,
        bos_token_id: int | None = None,
    ) -> None:
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_layers
        self.num_attention_heads = num_heads
        self.max_position_embeddings = max_position_embeddings
        self.eos_token_id = eos_token_id
        self.pad_token_id = pad_token_id
        self.bos_token_id = bos_token_id

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))


class _ToyBlock(nn.Module):
    def __init__(self, config: ToyConfig, layer_idx: int) -> None:
        super().__init__()
        self.layer_idx = layer_idx
        self.nh = config.num_attention_heads
        self.norm1 = nn.LayerNorm(config.hidden_size)
        self.qkv = nn.Linear(config.hidden_size, 3 * config.hidden_size)
        self.proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.norm2 = nn.LayerNorm(config.hidden_size)
        self.mlp = nn.Sequential(
            nn.Linear(config.hidden_size, 64), nn.GELU(), nn.Linear(64, config.hidden_size)
        )

    def forward(self, x, mask, cache, cache_position):
        B, T, C = x.shape
        q, k, v = self.qkv(self.norm1(x)).split(C, dim=-1)
        q, k, v = (t.view(B, T, self.nh, C // self.nh).transpose(1, 2) for t in (q, k, v))  # (B, nh, T, hs)
        if cache is not None:
            k, v = cache.update(k, v, self.layer_idx, cache_position)
        y = nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        x = x + self.proj(y.transpose(1, 2).reshape(B, T, C))
        return x + self.mlp(self.norm2(x))


class ToyCausalLM(GenerationMixin, nn.Module):
    """A tiny causal LM for testing generation without a model family.

    Learned absolute positions (so left padding only works when generate passes position_ids), a KV cache
    through ``cache.update``, an additive causal + padding mask from ``cache_position`` and ``kv_length``
    (no host syncs, so ``torch.compile`` can capture a decode step).
    """

    def __init__(self, config: ToyConfig) -> None:
        super().__init__()
        self.config = config
        self.generation_config: GenerationConfig | None = None
        self.tok: nn.Embedding = nn.Embedding(config.vocab_size, config.hidden_size)
        self.pos: nn.Embedding = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.blocks: nn.ModuleList = nn.ModuleList(
            _ToyBlock(config, i) for i in range(config.num_hidden_layers)
        )
        self.norm: nn.LayerNorm = nn.LayerNorm(config.hidden_size)
        self.head: nn.Linear = nn.Linear(config.hidden_size, config.vocab_size, bias=False)

    @property
    def device(self) -> torch.device:
        return self.head.weight.device

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        past_key_values: Any = None,
        use_cache: bool | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        cache_position: torch.Tensor | None = None,
        logits_to_keep: int = 0,
        **kwargs: Any,
    ) -> CausalLMOutput:
        B, T = input_ids.shape
        cache = past_key_values
        if use_cache and cache is None:
            cache = DynamicCache()
        past = cache.get_seq_length() if cache is not None else 0
        if cache_position is None:
            cache_position = torch.arange(past, past + T, device=input_ids.device)
        if position_ids is None:
            position_ids = cache_position[None, :].expand(B, T)
        kv_len = cache.kv_length(T) if cache is not None else T
        kv = torch.arange(kv_len, device=input_ids.device)
        visible = (kv[None, :] <= cache_position[:, None])[None, None]  # (1, 1, T, S)
        if attention_mask is not None:
            pad = attention_mask[:, :kv_len].bool()
            if pad.shape[-1] < kv_len:
                pad = nn.functional.pad(pad, (0, kv_len - pad.shape[-1]), value=False)
            visible = visible & pad[:, None, None, :]
        dtype = self.head.weight.dtype
        mask = torch.where(visible, torch.zeros((), dtype=dtype), torch.finfo(dtype).min)
        x = self.tok(input_ids) + self.pos(position_ids)
        for block in self.blocks:
            x = block(x, mask, cache, cache_position)
        x = self.norm(x)
        if logits_to_keep:
            x = x[:, -logits_to_keep:]
        return CausalLMOutput(logits=self.head(x), past_key_values=cache if use_cache else None)


def make_toy(seed: int = 0, **config_kwargs: Any) -> ToyCausalLM:
    """A seeded :class:`ToyCausalLM` in eval mode, its head sharpened (greedy paths are less tie-prone)."""
    torch.manual_seed(seed)
    model = ToyCausalLM(ToyConfig(**config_kwargs)).eval()
    with torch.no_grad():
        model.head.weight.mul_(8.0)
    return model


def full_greedy(model: nn.Module, ids: torch.Tensor, new_tokens: int) -> torch.Tensor:
    """Reference decoding: argmax over a fresh full forward per step (no cache, no generate)."""
    with torch.no_grad():
        for _ in range(new_tokens):
            logits = model(input_ids=ids).logits[:, -1]
            ids = torch.cat([ids, logits.argmax(-1, keepdim=True)], dim=1)
    return ids
