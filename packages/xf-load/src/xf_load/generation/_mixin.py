"""``GenerationMixin``: the ``model.generate(...)`` users call, a thin layer over :func:`._decode.generate`.

All it does is sort the keyword arguments (GenerationConfig fields, generate's own arguments, model inputs),
lay the field overrides over the ``generation_config`` argument, and make one call; the free function resolves
the rest (``model.generation_config`` > global defaults, special tokens, ``max_length``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

import torch

from xf_core.errors import XfValueError

from ._config import _FIELD_NAMES, GenerationConfig
from ._decode import generate as _generate
from ._outputs import GenerateBeamDecoderOnlyOutput, GenerateDecoderOnlyOutput
from ._unsupported import UNSUPPORTED_KEYS

__all__ = ["GenerationMixin"]

# generate() arguments that are neither GenerationConfig fields nor model inputs.
_GENERATE_ARGS = ("attention_mask", "past_key_values", "generator", "assistant_model")
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
        compile: bool | str | dict[str, Any] = False,
        **kwargs: Any,
    ) -> torch.Tensor | GenerateDecoderOnlyOutput | GenerateBeamDecoderOnlyOutput:
        """Generate token ids after ``inputs`` (``(B, L)`` prompt ids; left-pad batches and pass
        ``attention_mask``).

        ``kwargs`` holds GenerationConfig fields (``max_new_tokens=``, ``do_sample=``, ``num_beams=``, ...),
        ``attention_mask``, ``past_key_values`` (a cache from an earlier call, to continue from), ``generator``
        (a ``torch.Generator`` for sampling), ``assistant_model`` (a draft model for assisted decoding) and any
        extra input the model's forward accepts.
        ``logits_processor``/``stopping_criteria`` are plain callables run after the configured ones.
        ``tokenizer`` is needed for ``stop_strings``. ``compile=True`` compiles the decode step as one graph
        over a static cache (a dict instead: extra ``torch.compile`` arguments, e.g. ``{"backend": ...}``);
        cache length and batch are bucketed and the compiled kernels are kept in ``$XF_COMPILE_CACHE``
        (default ``~/.cache/xf/compile``) for the next process. ``compile="auto"`` compiles only when
        batch x ``max_new_tokens`` reaches 8192 tokens, or 512 when a step of the same shapes is already
        cached (``xf_load.generation._compile.should_compile``).

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
        # transformers' keys xf does not implement: kept, so that generate() refuses them unless "off".
        unsupported = {k: kwargs.pop(k) for k in list(kwargs) if k in UNSUPPORTED_KEYS}
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

        config = generation_config
        if overrides or unsupported:  # call keywords > the generation_config argument
            base = generation_config.extra if generation_config is not None else {}
            config = GenerationConfig(**overrides, extra={**base, **unsupported}).merged(
                generation_config, defaults=False
            )
        return _generate(
            self,  # type: ignore[arg-type]
            input_ids,
            config,
            attention_mask=extras.get("attention_mask"),
            past_key_values=extras.get("past_key_values"),
            logits_processor=logits_processor,
            stopping_criteria=stopping_criteria,
            streamer=streamer,
            tokenizer=tokenizer,
            compile=compile,
            generator=extras.get("generator"),
            assistant_model=extras.get("assistant_model"),
            **model_kwargs,
        )
