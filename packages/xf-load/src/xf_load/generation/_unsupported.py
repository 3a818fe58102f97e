"""transformers' generation keys that xf does not implement: ``generate`` refuses them rather than ignore them.

A ``generation_config.json`` may carry any of them (they land in ``GenerationConfig.extra``); at their
transformers default they mean "off" and load and generate fine. Set to anything else, in the call or in a
config ``generate`` uses, they would change the result, so ``generate`` raises, naming the key.

Keys that only tune speed or memory (``compile_config``, ``disable_compile``, ``low_memory``,
``prefill_chunk_size``, ``cache_config``, ``max_cache_len``, ``assistant_confidence_threshold``,
``assistant_lookbehind``, ``target_lookbehind``, ``is_assistant``) keep being ignored: the tokens are the same.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from xf_core.errors import XfConfigError

__all__ = ["UNSUPPORTED_KEYS", "check_unsupported"]

# key -> (the values that mean "off", what the key does)
UNSUPPORTED_KEYS: dict[str, tuple[tuple[Any, ...], str]] = {
    "penalty_alpha": ((None, 0, 0.0), "contrastive search"),
    "dola_layers": ((None,), "DoLa decoding"),
    "constraints": ((None, []), "constrained beam search"),
    "force_words_ids": ((None, []), "constrained beam search"),
    "top_h": ((None,), "top-H sampling"),
    "epsilon_cutoff": ((None, 0, 0.0), "epsilon sampling"),
    "eta_cutoff": ((None, 0, 0.0), "eta sampling"),
    "encoder_repetition_penalty": ((None, 1, 1.0), "the encoder repetition penalty"),
    "encoder_no_repeat_ngram_size": ((None, 0), "encoder n-gram blocking"),
    "exponential_decay_length_penalty": ((None,), "the exponential decay length penalty"),
    "guidance_scale": ((None, 1, 1.0), "classifier-free guidance"),
    "watermarking_config": ((None,), "watermarking"),
    "token_healing": ((None, False), "token healing"),
    "output_attentions": ((None, False), "attention weights in the output"),
    "output_hidden_states": ((None, False), "hidden states in the output"),
    "use_mtp": ((None, False), "multi-token-prediction drafts"),
    "assistant_early_exit": ((None,), "early-exit drafts (pass a smaller assistant_model instead)"),
    "assistant_ensemble_weight": ((None,), "ensembling the draft's and the target's probabilities"),
    "speculation_type": ((None,), "the choice of speculation method"),
    "assistant_tokenizer": ((None,), "drafts from a model with another tokenizer"),
}


def _is_off(value: Any, off: tuple[Any, ...]) -> bool:
    return any(value is o or (type(value) is type(o) and value == o) for o in off)


def check_unsupported(sources: Iterable[tuple[str, Mapping[str, Any] | None]]) -> None:
    """Raise :class:`XfConfigError` for the first key of :data:`UNSUPPORTED_KEYS` set to a value that is not
    "off" in any of ``sources`` (``(where, keys)`` pairs, e.g. ``("the model's generation_config", extra)``)."""
    for where, values in sources:
        for key, value in (values or {}).items():
            if key not in UNSUPPORTED_KEYS:
                continue
            off, what = UNSUPPORTED_KEYS[key]
            if not _is_off(value, off):
                raise XfConfigError(
                    f"{key}={value!r} (from {where}) asks for {what}, which xf's generate does not implement; "
                    f"remove it or set it to {off[-1]!r} (its transformers default), or use transformers for "
                    "this decoding strategy.",
                    key=key,
                )
