"""``GenerationMixin``: the ``model.generate(...)`` users call, a thin layer over :func:`._decode.generate`.

All it does is resolve the settings (call kwargs > ``generation_config`` argument > ``model.generation_config``
> global defaults), fix ``max_length`` from the prompt, and hand over to the free functions.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

import torch

from xf_core.errors import XfValueError

from ._config import _FIELD_NAMES, GLOBAL_DEFAULTS, GenerationConfig
from ._decode import generate as _generate
from ._outputs import GenerateBeamDecoderOnlyOutput, GenerateDecoderOnlyOutput

__all__ = ["GenerationMixin", "resolve_generation_config"]

# generate() arguments that are neither GenerationConfig fields nor model inputs.
_GENERATE_ARGS = ("attention_mask", "past_key_values", "generator")
# Forward inputs generate computes itself at every step.
_LOOP_INPUTS = ("position_ids", "cache_position", "use_cache", "logits_to_keep", "labels", "inputs_embeds")


class GenerationMixin:
    """Gives a causal LM ``generate``. The model needs xf's forward signature and, optionally, a
    ``generation_config`` attribute (``from_pretrained`` sets it) and a ``config`` (for special tokens and
    ``max_position_embeddings``)."""

    @classmethod
    def can_generate(cls) -> bool:
        return True

    def generate(
        self,
        inputs: torch.Tensor | None = None,
        generation_config: GenerationConfig | None = None,
        logits_processor: Sequence[Callable[..., torch.Tensor]] | None = None,
        stopping_criteria: Sequence[Callable[..., Any]] | None = None,
        streamer: Any = None,
        *,
        tokenizer: Any = None,
        compile: bool | dict[str, Any] = False,
        **kwargs: Any,
    ) -> torch.Tensor | GenerateDecoderOnlyOutput | GenerateBeamDecoderOnlyOutput:
        """Generate token ids after ``inputs`` (``(B, L)`` prompt ids; left-pad batches and pass
        ``attention_mask``).

        ``kwargs`` holds GenerationConfig fields (``max_new_tokens=``, ``do_sample=``, ``num_beams=``, ...),
        ``attention_mask``, ``past_key_values`` (a cache from an earlier call, to continue from), ``generator``
        (a ``torch.Generator`` for sampling), and any extra input the model's forward accepts.
        ``logits_processor``/``stopping_criteria`` are plain callables run after the configured ones.
        ``tokenizer`` is needed for ``stop_strings``. ``compile=True`` compiles the decode step as one graph
        over a static cache (a dict instead: extra ``torch.compile`` arguments, e.g. ``{"backend": ...}``).

        Returns the ``(B * num_return_sequences, L + new)`` ids, or with ``return_dict_in_generate=True`` an
        output object with ``sequences`` and, when asked, ``scores``/``logits``.
        """
        input_ids = kwargs.pop("input_ids", None) if inputs is None else inputs
        if inputs is not None and "input_ids" in kwargs:
            raise XfValueError(
                "pass the prompt once: either as the first argument or as input_ids=, not both."
            )
        overrides = {k: kwargs.pop(k) for k in list(kwargs) if k in _FIELD_NAMES and k != "extra"}
        extras = {k: kwargs.pop(k) for k in list(kwargs) if k in _GENERATE_ARGS}
        model_kwargs = kwargs
        if model_kwargs:
            # Only inputs the forward names: a typo must not vanish into its **kwargs.
            forward = inspect.signature(self.forward).parameters  # type: ignore[attr-defined]
            unknown = [k for k in model_kwargs if k not in forward or k in _LOOP_INPUTS]
            if unknown:
                raise TypeError(
                    f"generate() got unknown arguments {unknown}: they are neither GenerationConfig fields nor "
                    f"inputs of {type(self).__name__}.forward that generate passes through; check the spelling."
                )

        config = resolve_generation_config(self, generation_config, overrides)
        if input_ids is None:
            if config.bos_token_id is None:
                raise XfValueError("generate() needs input_ids, or a bos_token_id to start from.")
            input_ids = torch.full((1, 1), config.bos_token_id, dtype=torch.long, device=_device(self))
        config = finalize_lengths(config, prompt_length=input_ids.shape[1], model=self)
        return _generate(
            self,  # type: ignore[arg-type]
            input_ids.to(_device(self)),
            config,
            attention_mask=extras.get("attention_mask"),
            past_key_values=extras.get("past_key_values"),
            logits_processor=logits_processor,
            stopping_criteria=stopping_criteria,
            streamer=streamer,
            tokenizer=tokenizer,
            compile=compile,
            generator=extras.get("generator"),
            **model_kwargs,
        )


def resolve_generation_config(
    model: Any, generation_config: GenerationConfig | None, overrides: dict[str, Any]
) -> GenerationConfig:
    """Merge by precedence: ``overrides`` > ``generation_config`` > the model's > global defaults.

    ``max_length`` is left ``None`` when nobody set it (so :func:`finalize_lengths` can apply the default of
    20 new tokens); all other defaults are filled in.
    """
    model_config = getattr(model, "generation_config", None)
    if model_config is None and getattr(model, "config", None) is not None:
        model_config = GenerationConfig.from_model_config(model.config)
    merged = GenerationConfig(**overrides).merged(generation_config, model_config, defaults=False)
    user_max_length = merged.max_length
    merged = merged.merged()
    merged.max_length = user_max_length
    return merged


def finalize_lengths(config: GenerationConfig, *, prompt_length: int, model: Any = None) -> GenerationConfig:
    """Turn ``max_new_tokens`` (or the default) into the final ``max_length`` and ``min_new_tokens`` bound."""
    if config.max_new_tokens is not None:
        config.max_length = prompt_length + config.max_new_tokens
    elif config.max_length is None:
        config.max_length = prompt_length + GLOBAL_DEFAULTS["max_length"]
        limit = getattr(getattr(model, "config", None), "max_position_embeddings", None)
        if isinstance(limit, int):
            config.max_length = min(config.max_length, limit)
    return config


def _device(model: Any) -> torch.device:
    device = getattr(model, "device", None)
    if isinstance(device, torch.device):
        return device
    return next(model.parameters()).device
