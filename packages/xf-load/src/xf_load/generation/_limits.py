"""What ``generate`` checks before it allocates anything: the prompt, the length against a learned position
table, and the buffers against the memory of the model's devices. Each failure is one typed error naming the
value, the limit and what to do.

* The prompt: ``(batch, length)`` with ``batch >= 1`` and ``length >= 1``, every id in ``[0, vocab_size)``
  (one min/max reduction, once per call: the decode steps do not check again).
* The length: a family with a learned position table names its size's config field in the model class's
  ``learned_positions_key`` (GPT-2: ``n_positions``); ``max_length`` may not run past it. RoPE families have no
  such table and may generate past ``max_position_embeddings``, as in transformers.
* The memory: :func:`estimate_generate_bytes` counts what the loop holds at once for ``rows = batch x
  max(num_beams, num_return_sequences)`` rows of ``max_length`` positions — the KV cache (a dynamic cache
  grows to it when no row stops early; a static cache is that size from the start), the token buffers, the
  float32 scores and the prefill's activations — and the call is refused when that exceeds the memory
  available on the model's devices (CPU: ``psutil``'s available memory when installed, else the physical
  memory; CUDA: ``torch.cuda.mem_get_info``). The estimate is a floor, not a peak: a call it lets through
  may still run out of memory, but a call it refuses could not have run.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from .._decoder import check_token_ids
from ..errors import GenerationLengthError, GenerationMemoryError, InputIdsError
from ._config import GenerationConfig

__all__ = ["available_memory", "check_generation_size", "check_prompt", "estimate_generate_bytes"]


def check_prompt(model: Any, input_ids: torch.Tensor) -> None:
    """Refuse an empty batch, an empty prompt, or ids outside the model's vocabulary."""
    B, L = input_ids.shape
    if B == 0 or L == 0:
        what = "batch size 0 (no prompts)" if B == 0 else "length 0 (no tokens)"
        raise InputIdsError(
            f"input_ids has shape {(B, L)}, {what}; generate needs at least one prompt of at least one token "
            "(pass input_ids=None to start from bos_token_id).",
            value=(B, L),
        )
    embeddings = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    vocab_size = getattr(embeddings, "num_embeddings", None) or _config_int(model, "vocab_size")
    check_token_ids(input_ids, vocab_size, owner=type(model).__name__)


def check_generation_size(
    model: Any, config: GenerationConfig, *, batch_size: int, prompt_length: int
) -> None:
    """Refuse a ``max_length`` past the model's learned positions, or buffers that cannot fit in memory."""
    assert config.max_length is not None
    max_length = config.max_length
    length = _length_words(config, prompt_length)
    key = getattr(model, "learned_positions_key", None)
    limit = _config_int(model, key) if key else None
    if limit is not None and max_length > limit:
        name = "max_new_tokens" if config.max_new_tokens is not None else "max_length"
        room = limit - prompt_length
        fix = (
            f"set {name} <= {room if name == 'max_new_tokens' else limit}"
            if room >= 1
            else f"the prompt alone fills them: truncate it to fewer than {limit} tokens"
        )
        raise GenerationLengthError(
            f"{length} needs {max_length} positions, but {type(model).__name__} has {key}={limit} learned "
            f"position embeddings; {fix}.",
            key=name,
            value=getattr(config, name),
            limit=limit,
        )

    num_beams = config.num_beams or 1
    rows = batch_size * max(num_beams, config.num_return_sequences or 1)
    parts = estimate_generate_bytes(
        model, rows=rows, prompt_length=prompt_length, max_length=max_length, beams=num_beams > 1
    )
    devices = sorted({p.device for p in model.parameters()}, key=str)
    available = [available_memory(d) for d in devices]
    if not parts or not devices or any(a is None for a in available):
        return  # an unknown model shape or a device whose memory torch cannot tell
    total, free = sum(parts.values()), sum(a for a in available if a is not None)
    if total <= free:
        return
    breakdown = ", ".join(f"{name} {_gib(size)}" for name, size in parts.items() if size * 1000 >= total)
    raise GenerationMemoryError(
        f"generate() would hold about {_gib(total)} ({breakdown}) for {batch_size} prompt(s) x "
        f"num_beams={num_beams} x num_return_sequences={config.num_return_sequences or 1} with {length}, but "
        f"only {_gib(free)} is available on {', '.join(map(str, devices))}; lower num_beams, max_new_tokens or "
        "the batch size (or generate in several calls).",
        estimate=total,
        available=free,
    )


def estimate_generate_bytes(
    model: Any, *, rows: int, prompt_length: int, max_length: int, beams: bool
) -> dict[str, int]:
    """Bytes the decoding loop holds at once, by buffer (``{}`` when the config lacks the sizes).

    KV cache: ``rows x max_length x layers x 2 x kv_heads x head_dim x dtype size``. Token buffers: int64
    ``(rows, max_length)`` — two (sequences and positions), eight in beam search (running, finished, the
    top-K candidates and their merge). Scores: float32 ``(rows, vocab)`` — two, four in beam search. Prefill:
    ``rows x prompt_length`` tokens of hidden states and MLP activations."""
    layers = _config_int(model, "num_hidden_layers")
    heads = _config_int(model, "num_attention_heads")
    hidden = _config_int(model, "hidden_size")
    vocab = _config_int(model, "vocab_size")
    if None in (layers, heads, hidden, vocab):
        return {}
    assert layers is not None and heads is not None and hidden is not None and vocab is not None
    kv_heads = _config_int(model, "num_key_value_heads") or heads
    head_dim = _config_int(model, "head_dim") or hidden // heads
    inner = _config_int(model, "intermediate_size") or _config_int(model, "n_inner") or 4 * hidden
    itemsize = next(model.parameters()).element_size()
    return {
        "KV cache": rows * max_length * layers * 2 * kv_heads * head_dim * itemsize,
        "token buffers": rows * max_length * 8 * (8 if beams else 2),
        "scores": rows * vocab * 4 * (4 if beams else 2),
        "prefill activations": rows * prompt_length * (4 * hidden + 2 * inner) * itemsize,
    }


def available_memory(device: torch.device) -> int | None:
    """Bytes free for new buffers on ``device``; ``None`` where torch cannot tell (mps, meta, ...)."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    if device.type != "cpu":
        return None
    try:
        import psutil
    except ImportError:
        try:
            return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):  # no sysconf (Windows) or no such name
            return None
    return int(psutil.virtual_memory().available)


def _length_words(config: GenerationConfig, prompt_length: int) -> str:
    if config.max_new_tokens is not None:
        return f"max_new_tokens={config.max_new_tokens} after a prompt of {prompt_length} tokens"
    return f"max_length={config.max_length}"


def _config_int(model: Any, key: str) -> int | None:
    value = getattr(getattr(model, "config", None), key, None)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _gib(size: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size / 2**10:.1f} KiB"
