"""Rotary position embeddings (RoPE): a registry of inverse-frequency functions and one module.

``ROPE_INIT[rope_type](params, head_dim, max_position_embeddings, seq_len=None)`` returns
``(inv_freq, attention_scaling)``; ``params`` is the config's ``rope_parameters`` dict (v5 form:
``{"rope_type": ..., "rope_theta": ..., "factor": ...}``). Same numerics as transformers' functions of the
same names. :class:`RotaryEmbedding` turns positions into ``(cos, sin)``; "dynamic" and "longrope" recompute
their frequencies from the longest position seen, as transformers does.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from xf_core.errors import XfConfigError

__all__ = [
    "ROPE_INIT",
    "RotaryEmbedding",
    "apply_rotary_pos_emb",
    "rotate_half",
    "standardize_rope_parameters",
]

RopeInit = Callable[..., tuple[torch.Tensor, float]]

# Keys each rope type requires besides rope_type and rope_theta.
_REQUIRED = {
    "default": (),
    "linear": ("factor",),
    "dynamic": ("factor",),
    "yarn": ("factor",),
    "longrope": ("short_factor", "long_factor"),
    "llama3": ("factor", "low_freq_factor", "high_freq_factor"),
}


def _base_inv_freq(theta: float, dim: int) -> torch.Tensor:
    return 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))


def _rotary_dim(params: dict[str, Any], head_dim: int) -> int:
    return int(head_dim * params.get("partial_rotary_factor", 1.0))


def default(
    params: dict[str, Any], head_dim: int, max_pos: int, seq_len: int | None = None
) -> tuple[torch.Tensor, float]:
    return _base_inv_freq(params["rope_theta"], _rotary_dim(params, head_dim)), 1.0


def linear(
    params: dict[str, Any], head_dim: int, max_pos: int, seq_len: int | None = None
) -> tuple[torch.Tensor, float]:
    inv_freq, _ = default(params, head_dim, max_pos)
    return inv_freq / params["factor"], 1.0


def dynamic(
    params: dict[str, Any], head_dim: int, max_pos: int, seq_len: int | None = None
) -> tuple[torch.Tensor, float]:
    """NTK-aware scaling: the base grows once the sequence is longer than ``max_position_embeddings``."""
    dim = _rotary_dim(params, head_dim)
    factor = params["factor"]
    seq_len = max(seq_len or max_pos, max_pos)
    base = params["rope_theta"] * ((factor * seq_len / max_pos) - (factor - 1)) ** (dim / (dim - 2))
    return _base_inv_freq(base, dim), 1.0


def yarn(
    params: dict[str, Any], head_dim: int, max_pos: int, seq_len: int | None = None
) -> tuple[torch.Tensor, float]:
    dim = _rotary_dim(params, head_dim)
    base = params["rope_theta"]
    original = params.get("original_max_position_embeddings") or max_pos
    factor = params.get("factor") or max_pos / original

    def mscale(scale: float, m: float = 1.0) -> float:
        return 1.0 if scale <= 1 else 0.1 * m * math.log(scale) + 1.0

    attention_factor = params.get("attention_factor")
    if attention_factor is None:
        m, m_all = params.get("mscale"), params.get("mscale_all_dim")
        attention_factor = float(mscale(factor, m) / mscale(factor, m_all)) if m and m_all else mscale(factor)
    beta_fast = params.get("beta_fast") or 32
    beta_slow = params.get("beta_slow") or 1

    def correction_dim(rotations: float) -> float:
        return (dim * math.log(original / (rotations * 2 * math.pi))) / (2 * math.log(base))

    low, high = correction_dim(beta_fast), correction_dim(beta_slow)
    if params.get("truncate", True):
        low, high = math.floor(low), math.ceil(high)
    low, high = max(low, 0), min(high, dim - 1)
    if low == high:
        high += 0.001
    ramp = torch.clamp((torch.arange(dim // 2, dtype=torch.float32) - low) / (high - low), 0, 1)
    pos_freqs = base ** (torch.arange(0, dim, 2).float() / dim)
    extrapolation = 1 - ramp
    inv_freq = (1.0 / (factor * pos_freqs)) * (1 - extrapolation) + (1.0 / pos_freqs) * extrapolation
    return inv_freq, attention_factor


def longrope(
    params: dict[str, Any], head_dim: int, max_pos: int, seq_len: int | None = None
) -> tuple[torch.Tensor, float]:
    dim = _rotary_dim(params, head_dim)
    original = params.get("original_max_position_embeddings") or max_pos
    factor = params.get("factor") or max_pos / original
    attention_factor = params.get("attention_factor")
    if attention_factor is None:
        attention_factor = 1.0 if factor <= 1.0 else math.sqrt(1 + math.log(factor) / math.log(original))
    ext = params["long_factor"] if seq_len and seq_len > original else params["short_factor"]
    ext_factors = torch.tensor(ext, dtype=torch.float32)
    inv_freq = 1.0 / (ext_factors * params["rope_theta"] ** (torch.arange(0, dim, 2).float() / dim))
    return inv_freq, attention_factor


def llama3(
    params: dict[str, Any], head_dim: int, max_pos: int, seq_len: int | None = None
) -> tuple[torch.Tensor, float]:
    inv_freq, _ = default(params, head_dim, max_pos)
    factor, low_ff, high_ff = params["factor"], params["low_freq_factor"], params["high_freq_factor"]
    old_len = params.get("original_max_position_embeddings") or max_pos
    low_wavelen, high_wavelen = old_len / low_ff, old_len / high_ff
    wavelen = 2 * math.pi / inv_freq
    scaled = torch.where(wavelen > low_wavelen, inv_freq / factor, inv_freq)
    smooth = (old_len / wavelen - low_ff) / (high_ff - low_ff)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    is_medium = ~(wavelen < high_wavelen) * ~(wavelen > low_wavelen)
    return torch.where(is_medium, smoothed, scaled), 1.0


ROPE_INIT: dict[str, RopeInit] = {
    "default": default,
    "linear": linear,
    "dynamic": dynamic,
    "yarn": yarn,
    "longrope": longrope,
    "llama3": llama3,
}


def standardize_rope_parameters(
    rope_parameters: dict[str, Any] | None,
    *,
    rope_scaling: dict[str, Any] | None = None,
    rope_theta: float | None = None,
    max_position_embeddings: int,
    default_theta: float = 10_000.0,
) -> dict[str, Any]:
    """The v5 ``rope_parameters`` dict from either form (v5, or legacy ``rope_scaling`` + ``rope_theta``).

    Fills ``rope_type`` (from the legacy ``type`` key), ``rope_theta`` and, for scaled types,
    ``original_max_position_embeddings``; checks the type and its required keys.
    """
    params = dict(rope_scaling or rope_parameters or {})
    params.setdefault("rope_theta", rope_theta if rope_theta is not None else default_theta)
    params.setdefault("rope_type", params.get("type", "default"))
    rope_type = params["rope_type"]
    if rope_type not in ROPE_INIT:
        raise XfConfigError(
            f"rope_parameters.rope_type={rope_type!r} is not supported; supported: {', '.join(ROPE_INIT)}.",
            key="rope_parameters",
        )
    missing = [k for k in _REQUIRED[rope_type] if params.get(k) is None]
    if missing:
        raise XfConfigError(
            f"rope_parameters of type {rope_type!r} needs {', '.join(missing)}; add them to rope_parameters.",
            key="rope_parameters",
        )
    if rope_type in ("llama3", "yarn", "longrope"):
        params.setdefault("original_max_position_embeddings", max_position_embeddings)
    return params


class RotaryEmbedding(nn.Module):
    """Positions -> ``(cos, sin)`` of shape (B, T, rotary_dim), in the input's dtype."""

    def __init__(
        self, rope_parameters: dict[str, Any], *, head_dim: int, max_position_embeddings: int
    ) -> None:
        super().__init__()
        self.params = rope_parameters
        self.rope_type: str = rope_parameters["rope_type"]
        self.head_dim = head_dim
        self.max_position_embeddings = max_position_embeddings
        self.original_max_seq_len = max_position_embeddings
        self.max_seq_len_cached = max_position_embeddings
        self.attention_scaling: float = 1.0
        self.register_buffer("inv_freq", torch.empty(0), persistent=False)
        self.register_buffer("original_inv_freq", torch.empty(0), persistent=False)
        self.reset_buffers()

    def reset_buffers(self) -> None:
        """(Re)compute the frequency buffers. They are computed on the CPU even while the model is built on
        ``meta`` (they are not in the checkpoint) and stay on the buffers' device otherwise."""
        device = self.inv_freq.device
        device = torch.device("cpu") if device.type == "meta" else device
        with torch.device("cpu"):
            inv_freq, self.attention_scaling = ROPE_INIT[self.rope_type](
                self.params, self.head_dim, self.max_position_embeddings
            )
        self.inv_freq = inv_freq.to(device)
        self.original_inv_freq: torch.Tensor = inv_freq.clone().to(device)
        self.max_seq_len_cached: int = self.original_max_seq_len
        self._long_inv_freq: torch.Tensor | None = None

    def _update_dynamic(self, seq_len: int, device: torch.device) -> None:
        if seq_len > self.max_seq_len_cached:  # grow
            inv_freq, self.attention_scaling = dynamic(
                self.params, self.head_dim, self.max_position_embeddings, seq_len
            )
            self.inv_freq = inv_freq.to(device)
            self.max_seq_len_cached = seq_len
        if seq_len < self.original_max_seq_len < self.max_seq_len_cached:  # back to the original scale
            self.inv_freq = self.original_inv_freq.to(device)
            self.max_seq_len_cached = self.original_max_seq_len

    def _update_longrope(self, seq_len: int, device: torch.device) -> None:
        original = self.params["original_max_position_embeddings"]
        if self._long_inv_freq is None:
            self._long_inv_freq, _ = longrope(
                self.params, self.head_dim, self.max_position_embeddings, original + 1
            )
        chosen = self._long_inv_freq if seq_len > original else self.original_inv_freq
        self.inv_freq: torch.Tensor = chosen.to(device)

    @torch.no_grad()
    def forward(self, x: torch.Tensor, position_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.rope_type in ("dynamic", "longrope"):
            seq_len = int(position_ids.max()) + 1
            update = self._update_dynamic if self.rope_type == "dynamic" else self._update_longrope
            update(seq_len, x.device)
        freqs = position_ids[..., None].float() * self.inv_freq.to(device=x.device, dtype=torch.float)
        emb = torch.cat((freqs, freqs), dim=-1)  # (B, T, rotary_dim)
        cos = emb.cos() * self.attention_scaling
        sin = emb.sin() * self.attention_scaling
        return cos.to(x.dtype), sin.to(x.dtype)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary_pos_emb(
    q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotate q (B, nh, T, hs) and k (B, nkv, T, hs) by (cos, sin) of shape (B, T, hs)."""
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)  # (B, 1, T, hs)
    return (q * cos) + (rotate_half(q) * sin), (k * cos) + (rotate_half(k) * sin)
