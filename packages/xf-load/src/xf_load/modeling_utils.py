"""``PreTrainedModel``: the base of every model class. Model files define modules; this class adds what a
transformers user expects around them (loading, saving, tying, resizing, gradient checkpointing).

A family declares, as class attributes:

* ``head_kind``: what the head computes (:class:`~xf_load.heads.HeadKind`), read by trainers and pipelines;
* ``config_class`` and ``base_model_prefix`` (the attribute holding the base model in a head class: "model",
  "transformer", "bert"; the loader adds or strips it so head and base checkpoints load into each other);
* ``_tied_weights_keys``: ``{tied param: its source}``, e.g. ``{"lm_head.weight": "model.embed_tokens.weight"}``
  (applied when ``config.tie_word_embeddings``);
* ``_checkpoint_renames``: ``{regex: replacement}`` applied to checkpoint keys on load (legacy names);
* ``_no_split_modules``: block class names that ``device_map="auto"`` keeps on one device;
* ``_init_weights(module)``: the init table used by :meth:`init_weights` (and for weights a checkpoint lacks).

Buffers that are computed, not stored (RoPE frequencies, position ids), are computed on the CPU even while
the model is built on ``meta``; a module may define ``reset_buffers()`` to recompute them.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Self

import torch
from torch import nn

from xf_core import HubOptions
from xf_load import initialization as init
from xf_load._fusing import pack_fused_linears, release_fused_linears, repack_fused_linears
from xf_load.configuration_utils import PretrainedConfig
from xf_load.errors import QuantizationError

if TYPE_CHECKING:
    from xf_load.quantizers import Quantizer
from xf_load.heads import HeadKind

__all__ = ["PreTrainedModel"]


class PreTrainedModel(nn.Module):
    config_class: ClassVar[type[PretrainedConfig]] = PretrainedConfig
    head_kind: ClassVar[HeadKind] = HeadKind.BASE
    base_model_prefix: ClassVar[str] = ""
    _tied_weights_keys: ClassVar[dict[str, str]] = {}
    _checkpoint_renames: ClassVar[dict[str, str]] = {
        r"LayerNorm\.gamma$": "LayerNorm.weight",
        r"LayerNorm\.beta$": "LayerNorm.bias",
    }
    _no_split_modules: ClassVar[list[str]] = []
    # Regexes of checkpoint keys that are expected to be absent from the model / from the checkpoint.
    _keys_to_ignore_on_load_unexpected: ClassVar[list[str]] = []
    _keys_to_ignore_on_load_missing: ClassVar[list[str]] = []
    supports_gradient_checkpointing: ClassVar[bool] = True

    def __init__(self, config: PretrainedConfig) -> None:
        super().__init__()
        if not isinstance(config, PretrainedConfig):
            raise TypeError(
                f"{type(self).__name__} needs a config object ({self.config_class.__name__}), got "
                f"{type(config).__name__}; build one with {self.config_class.__name__}(...) or "
                f"{self.config_class.__name__}.from_pretrained(path)."
            )
        self.config = config
        self.gradient_checkpointing = False
        self.generation_config: Any = None
        self.name_or_path: str = config.name_or_path

    # ---- init and tying ------------------------------------------------------------------------------------
    def post_init(self) -> None:
        """Call at the end of ``__init__``: initialise every weight and tie the tied ones."""
        self.init_weights()

    def _init_weights(self, module: nn.Module) -> None:
        """transformers' default table; families override it with their own."""
        std = getattr(self.config, "initializer_range", 0.02)
        if isinstance(module, nn.Linear):
            init.normal_(module.weight, std=std)
            init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            init.normal_(module.weight, std=std)
            if module.padding_idx is not None and module.weight.device.type != "meta":
                init.zeros_(module.weight[module.padding_idx])
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)

    @torch.no_grad()
    def init_weights(self) -> None:
        """Initialise all weights with ``_init_weights`` (a no-op cost on ``meta``), then tie."""
        for module in self.modules():
            self._init_weights(module)
        self.tie_weights()

    def _tie_pairs(self) -> dict[str, str]:
        return dict(self._tied_weights_keys) if getattr(self.config, "tie_word_embeddings", False) else {}

    @property
    def all_tied_weights_keys(self) -> dict[str, str]:
        """``{tied parameter: its source}`` as this model ties them now (empty unless
        ``config.tie_word_embeddings``); a tied parameter is the same object as its source, so a checkpoint
        stores only the source. transformers v5's name for the same mapping."""
        return self._tie_pairs()

    def tie_weights(self) -> None:
        """Make each tied parameter the same Parameter object as its source."""
        for target, source in self._tie_pairs().items():
            t_mod, _, t_name = target.rpartition(".")
            s_mod, _, s_name = source.rpartition(".")
            param = getattr(self.get_submodule(s_mod), s_name)
            setattr(self.get_submodule(t_mod), t_name, param)

    # ---- embeddings ---------------------------------------------------------------------------------------
    @property
    def base_model(self) -> nn.Module:
        return getattr(self, self.base_model_prefix, self) if self.base_model_prefix else self

    def get_input_embeddings(self) -> nn.Embedding:
        base = self.base_model
        if base is not self:
            return base.get_input_embeddings()
        raise NotImplementedError(f"{type(self).__name__} must define get_input_embeddings()")

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        base = self.base_model
        if base is not self:
            base.set_input_embeddings(value)
            return
        raise NotImplementedError(f"{type(self).__name__} must define set_input_embeddings()")

    def get_output_embeddings(self) -> nn.Module | None:
        return getattr(self, "lm_head", None)

    def set_output_embeddings(self, value: nn.Module) -> None:
        self.lm_head = value

    @torch.no_grad()
    def resize_token_embeddings(
        self,
        new_num_tokens: int | None = None,
        *,
        pad_to_multiple_of: int | None = None,
        mean_resizing: bool = True,
    ) -> nn.Embedding:
        """Grow or shrink the vocabulary (input embeddings, the LM head, ``config.vocab_size``).

        New rows are the mean of the old ones with ``mean_resizing`` (so new tokens start at an average
        embedding), else drawn by the family's init.
        """
        old = self.get_input_embeddings()
        n = old.num_embeddings if new_num_tokens is None else new_num_tokens
        if pad_to_multiple_of is not None:
            n = ((n + pad_to_multiple_of - 1) // pad_to_multiple_of) * pad_to_multiple_of
        new = self._resized_embedding(old, n, mean_resizing)
        self.set_input_embeddings(new)
        head = self.get_output_embeddings()
        if head is not None and not self._tie_pairs():
            self.set_output_embeddings(self._resized_linear(head, n, mean_resizing))
        self.config.vocab_size = n
        self.tie_weights()
        return new

    def _resized_embedding(self, old: nn.Embedding, n: int, mean_resizing: bool) -> nn.Embedding:
        w = old.weight
        new = nn.Embedding(n, w.shape[1], padding_idx=old.padding_idx, device=w.device, dtype=w.dtype)
        self._init_weights(new)
        keep = min(n, w.shape[0])
        new.weight[:keep] = w[:keep]
        if mean_resizing and n > w.shape[0]:
            new.weight[w.shape[0] :] = w.float().mean(0).to(w.dtype)
        return new

    def _resized_linear(self, old: nn.Linear, n: int, mean_resizing: bool) -> nn.Linear:
        w = old.weight
        new = nn.Linear(w.shape[1], n, bias=old.bias is not None, device=w.device, dtype=w.dtype)
        self._init_weights(new)
        keep = min(n, w.shape[0])
        new.weight[:keep] = w[:keep]
        if mean_resizing and n > w.shape[0]:
            new.weight[w.shape[0] :] = w.float().mean(0).to(w.dtype)
        if old.bias is not None:
            new.bias[:keep] = old.bias[:keep]
        return new

    # ---- facts --------------------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        for p in self.parameters():
            return p.device
        return torch.device("cpu")

    @property
    def dtype(self) -> torch.dtype:
        for p in self.parameters():
            if p.is_floating_point():
                return p.dtype
        return torch.get_default_dtype()

    def num_parameters(self, *, only_trainable: bool = False, exclude_embeddings: bool = False) -> int:
        """Number of parameters, each tied parameter counted once."""
        skip = set()
        if exclude_embeddings:
            skip = {id(m.weight) for m in self.modules() if isinstance(m, nn.Embedding)}
        return sum(
            p.numel()
            for p in self.parameters()  # parameters() already yields a shared Parameter once
            if id(p) not in skip and (p.requires_grad or not only_trainable)
        )

    @classmethod
    def can_generate(cls) -> bool:
        return callable(getattr(cls, "generate", None))

    # ---- gradient checkpointing ----------------------------------------------------------------------------
    def gradient_checkpointing_enable(
        self, gradient_checkpointing_kwargs: dict[str, Any] | None = None
    ) -> None:
        """Recompute each block's activations in the backward pass instead of storing them."""
        if not self.supports_gradient_checkpointing:
            raise ValueError(f"{type(self).__name__} does not support gradient checkpointing.")
        kwargs = {"use_reentrant": False, **(gradient_checkpointing_kwargs or {})}
        for module in self.modules():
            if isinstance(module, PreTrainedModel):
                module.gradient_checkpointing = True
                module._checkpoint_kwargs = kwargs

    def gradient_checkpointing_disable(self) -> None:
        for module in self.modules():
            if isinstance(module, PreTrainedModel):
                module.gradient_checkpointing = False

    @property
    def is_gradient_checkpointing(self) -> bool:
        return any(getattr(m, "gradient_checkpointing", False) for m in self.modules())

    def _run_layer(self, layer: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call ``layer``; under gradient checkpointing in training, through ``torch.utils.checkpoint``."""
        if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
            from torch.utils.checkpoint import checkpoint

            return checkpoint(layer, *args, **getattr(self, "_checkpoint_kwargs", {}), **kwargs)
        return layer(*args, **kwargs)

    # ---- loading and saving --------------------------------------------------------------------------------
    @classmethod
    def from_config(
        cls, config: PretrainedConfig, *, dtype: torch.dtype | str | None = None
    ) -> PreTrainedModel:
        """A freshly initialised model (random weights) for ``config``."""
        from xf_load._loading import resolve_dtype

        torch_dtype = resolve_dtype(
            dtype if dtype is not None else torch.float32, config=config, checkpoint=None
        )
        model = cls(config).to(torch_dtype)
        return model

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str | os.PathLike[str],
        /,
        *,
        config: PretrainedConfig | str | os.PathLike[str] | None = None,
        dtype: torch.dtype | str | None = "auto",
        device_map: str | dict[str, Any] | torch.device | int | None = None,
        max_memory: dict[int | str, int | str] | None = None,
        offload_folder: str | os.PathLike[str] | None = None,
        revision: str | None = None,
        subfolder: str | None = None,
        variant: str | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        local_files_only: bool | None = None,
        token: str | bool | None = None,
        use_safetensors: bool | None = None,
        disable_mmap: bool | None = None,
        ignore_mismatched_sizes: bool = False,
        output_loading_info: bool = False,
        attn_implementation: Literal["eager", "sdpa"] | None = None,
        quantization_config: Any = None,
        tp_plan: str | dict[str, str] | None = None,
        device_mesh: Any = None,
        hub: HubOptions | None = None,
        **config_overrides: Any,
    ) -> Self:
        """Load a model: config, then weights straight from safetensors into ``dtype`` on ``device_map``.

        ``dtype="auto"`` (the default, as in transformers v5) uses ``config.dtype``, else the checkpoint's
        dtype (``torch_dtype=`` is accepted as its older name). A tensor stored in that dtype and loaded on the
        CPU views the memory-mapped safetensors file (no copy); ``disable_mmap=True`` reads it instead.
        Extra keyword arguments override config fields.
        The Hub keywords go on top of ``hub`` (a :class:`xf_core.HubOptions`) and serve config, weights and
        generation config alike. With ``output_loading_info=True`` returns ``(model, {"missing_keys",
        "unexpected_keys", "mismatched_keys", "bytes_read"})``.
        """
        from xf_load._loading import load_pretrained
        from xf_load.options import LoadOptions

        given = {"revision": revision, "subfolder": subfolder, "cache_dir": cache_dir, "token": token}
        given["local_files_only"] = local_files_only
        hub = HubOptions.pop_from({k: v for k, v in given.items() if v is not None}, base=hub)
        load = LoadOptions.pop_from(
            config_overrides,  # takes out torch_dtype, the legacy name of dtype
            base=LoadOptions(
                dtype=dtype,
                device_map=device_map,
                max_memory=max_memory,
                offload_folder=offload_folder,
                variant=variant,
                use_safetensors=use_safetensors,
                disable_mmap=disable_mmap,
                ignore_mismatched_sizes=ignore_mismatched_sizes,
                attn_implementation=attn_implementation,
                quantization_config=quantization_config,
                tp_plan=tp_plan,
                device_mesh=device_mesh,
            ),
        )
        return load_pretrained(
            cls,
            pretrained_model_name_or_path,
            config=config,
            hub=hub,
            load=load,
            output_loading_info=output_loading_info,
            config_overrides=config_overrides,
        )

    def save_pretrained(
        self,
        save_directory: str | os.PathLike[str],
        /,
        *,
        max_shard_size: int | str = "5GB",
        safe_serialization: bool = True,
        variant: str | None = None,
        state_dict: dict[str, torch.Tensor] | None = None,
    ) -> Path:
        """Write config.json, generation_config.json and the weights as safetensors (sharded above
        ``max_shard_size``, with an index), tied duplicates dropped, stale shards removed, atomically."""
        from xf_load._saving import save_model

        return save_model(
            self,
            save_directory,
            max_shard_size=max_shard_size,
            safe_serialization=safe_serialization,
            variant=variant,
            state_dict=state_dict,
        )

    # ---- quantization: what the quantizer attached by from_pretrained provides -----------------------------
    # The quantizer that loaded this model (see xf_load.quantizers), or None for a float model.
    hf_quantizer: Quantizer | None = None

    def fuse_projections(self) -> int:
        """Run the linears each block declares in ``_fused_linears`` (Llama's q/k/v and gate/up, BERT's
        query/key/value) as one matmul per group at inference; returns how many groups were fused.

        Opt-in and invisible to everything else: the ``nn.Linear`` modules stay, and ``state_dict()`` keeps
        transformers' keys and shapes (saved files are unchanged); their weights become views of one buffer
        per group (copied once: a memory-mapped model's fused weights then live in ordinary memory, so the
        memory used does not grow). The fused path runs only when no gradient is wanted and the modules and
        layout are still as packed (training, a quantizer, an adapter or tensor parallelism replacing a module
        or its weight fall back to the separate matmuls); ``model.to(dtype)`` re-packs. See
        ``xf_load._fusing``.
        """
        return pack_fused_linears(self)

    def _apply(self, fn: Any, recurse: bool = True) -> Any:  # .to(), .half(), .cuda(), ...: re-pack after
        release_fused_linears(self)
        out = super()._apply(fn, recurse)
        repack_fused_linears(self)
        return out

    @property
    def is_quantized(self) -> bool:
        return self.hf_quantizer is not None

    def get_memory_footprint(self, return_buffers: bool = True) -> int:
        """Bytes held by the parameters (a packed quantized weight counts its packed bytes), plus the buffers
        with ``return_buffers``, plus what a quantizer keeps beside its weights (bnb's absmax, SCB)."""
        total = sum(p.nelement() * p.element_size() for p in self.parameters())
        if return_buffers:
            total += sum(b.nelement() * b.element_size() for b in self.buffers())
        if self.hf_quantizer is not None:
            total += self.hf_quantizer.extra_memory_bytes(self)
        return total

    def dequantize(self, dtype: torch.dtype | None = None) -> PreTrainedModel:
        """Turn a quantized model back into a float one, in place (weights are the dequantized values)."""
        if self.hf_quantizer is None:
            raise QuantizationError(
                f"{type(self).__name__} is not quantized, so there is nothing to dequantize; load it with a "
                "quantization_config first.",
                key="quantization_config",
            )
        model = self.hf_quantizer.dequantize(self, dtype=dtype)
        self.hf_quantizer = None
        self.config.quantization_config = None
        return model
