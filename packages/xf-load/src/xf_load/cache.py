"""Key/value caches for decoder models.

The contract every decoder attention layer follows::

    k, v = cache.update(k, v, layer_idx, cache_position)   # k, v: (B, n_kv_heads, T_new, head_dim)
    # returns the keys/values to attend over: (B, n_kv_heads, T_kv, head_dim)

``cache_position`` (1-D LongTensor of length T_new) holds the absolute positions of the new tokens.
``DynamicCache`` grows by concatenation; ``StaticCache`` (generation) preallocates ``max_cache_len`` slots and
writes in place, so its ``T_kv`` is always ``max_cache_len`` and the attention mask hides unused slots.
``get_seq_length()`` is the number of positions already cached; ``kv_length(T_new)`` is the ``T_kv`` the
next ``update`` will return (what a mask must cover).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from xf_core.errors import XfValueError

__all__ = ["Cache", "DynamicCache", "EncoderDecoderCache", "StaticCache"]


class Cache:
    """Base class: what a model may ask of any cache."""

    is_static = False

    def update(
        self,
        key: torch.Tensor,
        value: torch.Tensor,
        layer_idx: int,
        cache_position: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def get_seq_length(self, layer_idx: int = 0) -> int:
        raise NotImplementedError

    def kv_length(self, new_tokens: int, layer_idx: int = 0) -> int:
        return self.get_seq_length(layer_idx) + new_tokens


class DynamicCache(Cache):
    """A cache that grows with every step: one (keys, values) pair of tensors per layer."""

    def __init__(self) -> None:
        self.keys: list[torch.Tensor] = []
        self.values: list[torch.Tensor] = []

    def __len__(self) -> int:
        return len(self.keys)

    def update(
        self,
        key: torch.Tensor,
        value: torch.Tensor,
        layer_idx: int,
        cache_position: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if layer_idx == len(self.keys):
            self.keys.append(key)
            self.values.append(value)
        elif layer_idx < len(self.keys):
            self.keys[layer_idx] = torch.cat([self.keys[layer_idx], key], dim=-2)
            self.values[layer_idx] = torch.cat([self.values[layer_idx], value], dim=-2)
        else:
            raise IndexError(f"layer {layer_idx} updated before layer {len(self.keys)}")
        return self.keys[layer_idx], self.values[layer_idx]

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self.keys[layer_idx].shape[-2] if layer_idx < len(self.keys) else 0

    def reorder(self, beam_idx: torch.Tensor) -> None:
        """Select batch rows (beam search): row i becomes old row ``beam_idx[i]``."""
        for i in range(len(self.keys)):
            self.keys[i] = self.keys[i].index_select(0, beam_idx.to(self.keys[i].device))
            self.values[i] = self.values[i].index_select(0, beam_idx.to(self.values[i].device))

    def crop(self, length: int) -> None:
        """Keep only the first ``length`` cached positions."""
        for i in range(len(self.keys)):
            self.keys[i] = self.keys[i][..., :length, :]
            self.values[i] = self.values[i][..., :length, :]


class StaticCache(Cache):
    """A preallocated cache: ``max_cache_len`` slots per layer, written in place at ``cache_position``.

    Shapes never change, so a decode step over it can be compiled once (and CUDA-graphed). Buffers are
    allocated on the first ``update`` of each layer, with that layer's batch size, heads, head_dim, dtype and
    device (so a model split over devices gets each layer's cache on its own device). ``update`` returns the
    whole buffers; the attention mask (``kv_length`` = ``max_cache_len``) hides the slots not yet written.

    ``get_seq_length()`` counts the positions written outside ``torch.compile``; code that writes through a
    compiled step calls :meth:`advance` afterwards (``generate`` does).

    ``pad_batch=True`` (with ``max_batch_size``) allocates ``max_batch_size`` rows whatever the first batch:
    a forward with fewer rows writes and reads the first rows only, so a compiled step padded to
    ``max_batch_size`` rows serves every smaller batch (``generate``'s batch buckets).
    """

    is_static = True

    def __init__(
        self, *, max_cache_len: int, max_batch_size: int | None = None, pad_batch: bool = False
    ) -> None:
        if max_cache_len < 1:
            raise XfValueError(f"StaticCache(max_cache_len={max_cache_len}): needs at least one slot.")
        if pad_batch and max_batch_size is None:
            raise XfValueError("StaticCache(pad_batch=True) needs max_batch_size: the rows to allocate.")
        self.max_cache_len = max_cache_len
        self.max_batch_size = max_batch_size
        self.pad_batch = pad_batch
        self.keys: list[torch.Tensor] = []
        self.values: list[torch.Tensor] = []
        self._length = 0
        self._default_position = torch.zeros(0, dtype=torch.long)

    def __len__(self) -> int:
        return len(self.keys)

    def _allocate(self, key: torch.Tensor, value: torch.Tensor) -> None:
        batch, heads, _, head_dim = key.shape  # (B, n_kv_heads, T, head_dim)
        if self.max_batch_size is not None and batch > self.max_batch_size:
            raise XfValueError(
                f"StaticCache was made for batch size {self.max_batch_size} but got {batch} rows; "
                "make a new cache with max_batch_size >= the batch size."
            )
        if self.pad_batch:
            batch = self.max_batch_size or batch
        shape = (batch, heads, self.max_cache_len, head_dim)
        k_buf = torch.zeros(shape, dtype=key.dtype, device=key.device)
        v_buf = torch.zeros((*shape[:-1], value.shape[-1]), dtype=value.dtype, device=value.device)
        if key.device.type == "cuda" and not torch.compiler.is_compiling():
            # Fixed addresses let a CUDA-graphed decode step write into the buffers in place.
            torch._dynamo.mark_static_address(k_buf)
            torch._dynamo.mark_static_address(v_buf)
        self.keys.append(k_buf)
        self.values.append(v_buf)

    def update(
        self,
        key: torch.Tensor,
        value: torch.Tensor,
        layer_idx: int,
        cache_position: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        T = key.shape[-2]
        compiling = torch.compiler.is_compiling()
        if layer_idx == len(self.keys):
            self._allocate(key, value)
        elif layer_idx > len(self.keys):
            raise IndexError(f"layer {layer_idx} updated before layer {len(self.keys)}")
        if cache_position is None:  # append: every layer of this forward writes where layer 0 did
            if layer_idx == 0:
                self._default_position = torch.arange(self._length, self._length + T, device=key.device)
            cache_position = self._default_position
        if not compiling and layer_idx == 0 and self._length + T > self.max_cache_len:
            raise XfValueError(
                f"StaticCache is full: {self._length} positions cached + {T} new > max_cache_len="
                f"{self.max_cache_len}; make the cache longer (generate sizes it from max_length)."
            )
        k_buf, v_buf = self.keys[layer_idx], self.values[layer_idx]
        if key.shape[0] < k_buf.shape[0] and self.pad_batch:  # a batch smaller than the padded rows
            k_buf, v_buf = k_buf[: key.shape[0]], v_buf[: key.shape[0]]
        k_buf.index_copy_(2, cache_position.to(k_buf.device), key.to(k_buf.dtype))
        v_buf.index_copy_(2, cache_position.to(v_buf.device), value.to(v_buf.dtype))
        if not compiling and layer_idx == 0:
            self._length += T  # counted once per forward, at the first layer
        return k_buf, v_buf

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self._length

    def kv_length(self, new_tokens: int, layer_idx: int = 0) -> int:
        return self.max_cache_len

    def advance(self, n: int) -> None:
        """Count ``n`` positions written by a compiled step (whose counter updates were traced away)."""
        self._length += n

    def reorder(self, beam_idx: torch.Tensor) -> None:
        """Select batch rows in place (beam search): row i becomes old row ``beam_idx[i]``."""
        for k_buf, v_buf in zip(self.keys, self.values):
            k_buf.copy_(k_buf.index_select(0, beam_idx.to(k_buf.device)))
            v_buf.copy_(v_buf.index_select(0, beam_idx.to(v_buf.device)))

    def crop(self, length: int) -> None:
        """Forget the positions from ``length`` on (their slots are rewritten before they are read again)."""
        self._length = min(self._length, length)

    def reset(self) -> None:
        """Forget everything; keep the buffers."""
        self._length = 0
        for k_buf, v_buf in zip(self.keys, self.values):
            k_buf.zero_()
            v_buf.zero_()


class EncoderDecoderCache(Cache):
    """An encoder-decoder's cache: the decoder's self-attention cache (dynamic or static), which the contract
    above applies to, plus one (keys, values) pair per layer for cross-attention over the encoder output,
    computed at the first decoder forward and read unchanged afterwards."""

    def __init__(
        self, self_attention_cache: Cache, cross_attention_cache: DynamicCache | None = None
    ) -> None:
        self.self_attention_cache = self_attention_cache
        self.cross_attention_cache: DynamicCache = (
            cross_attention_cache if cross_attention_cache is not None else DynamicCache()
        )

    @property
    def is_static(self) -> bool:  # type: ignore[override]
        return self.self_attention_cache.is_static

    def update(
        self,
        key: torch.Tensor,
        value: torch.Tensor,
        layer_idx: int,
        cache_position: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.self_attention_cache.update(key, value, layer_idx, cache_position)

    def cross_attention(
        self, layer_idx: int, compute: Callable[[], tuple[torch.Tensor, torch.Tensor]]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Layer ``layer_idx``'s cross-attention keys and values: ``compute()`` on the first call, then cached."""
        cross = self.cross_attention_cache
        if layer_idx < len(cross):
            return cross.keys[layer_idx], cross.values[layer_idx]
        k, v = compute()
        return cross.update(k, v, layer_idx)

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self.self_attention_cache.get_seq_length(layer_idx)

    def kv_length(self, new_tokens: int, layer_idx: int = 0) -> int:
        return self.self_attention_cache.kv_length(new_tokens, layer_idx)

    def reorder(self, beam_idx: torch.Tensor) -> None:
        """Select batch rows of both caches (beam search). Cross-attention keys and values kept once per prompt
        (fewer rows than ``beam_idx``: a model that ``shares_encoder_rows``) stay as they are, since beam search
        only moves rows within a prompt."""
        self.self_attention_cache.reorder(beam_idx)  # type: ignore[attr-defined]
        cross = self.cross_attention_cache
        if len(cross) and cross.keys[0].shape[0] == beam_idx.shape[0]:
            cross.reorder(beam_idx)

    def crop(self, length: int) -> None:
        self.self_attention_cache.crop(length)  # type: ignore[attr-defined]
