"""Which decoding loop a ``generate`` call runs, beyond the plain greedy/sampling and beam loops of
:mod:`._decode`: candidate decoding (assisted, prompt lookup) and diverse (group) beam search (``num_beam_groups``). :func:`select_strategy` checks the combination before ``generate`` allocates anything and returns the
loop to run (``None``: the plain loops), called with ``generate``'s state once it is set up.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

from xf_core.errors import XfValueError

from ._config import GenerationConfig
from ._group_beam import check_group_beam, group_beam_search
from ._processors import LogitsProcessorList
from ._stopping import StoppingCriteriaList
from ._unsupported import check_unsupported

if TYPE_CHECKING:
    from ._decode import _Inputs

__all__ = ["Strategy", "select_strategy"]

# (inputs, input_ids, config, processors, criteria, eos, pad, streamer, batch_size, generator) -> output
Strategy = Callable[
    [
        "_Inputs",
        torch.Tensor,
        GenerationConfig,
        LogitsProcessorList,
        StoppingCriteriaList,
        "torch.Tensor | None",
        "int | None",
        Any,
        int,
        "torch.Generator | None",
    ],
    Any,
]


def select_strategy(
    model: Any,
    config: GenerationConfig,
    *,
    assistant_model: torch.nn.Module | None,
    device: torch.device,
    batch_size: int,
    compile: bool,
    encoder_decoder: bool,
    has_cache: bool,
) -> Strategy | None:
    """Check the strategy keys of the resolved ``config`` (and refuse the transformers keys xf does not
    implement); return the loop to run, or ``None`` for :mod:`._decode`'s greedy/sampling/beam loops."""
    model_config = getattr(model, "generation_config", None)
    check_unsupported(
        [
            ("the generate call or its generation_config", config.extra),
            (f"{type(model).__name__}.generation_config", getattr(model_config, "extra", None)),
        ]
    )
    num_beams = config.num_beams or 1
    groups = config.num_beam_groups or 1
    lookup = config.prompt_lookup_num_tokens
    if assistant_model is not None or lookup is not None:
        what = "assistant_model" if assistant_model is not None else "prompt_lookup_num_tokens"
        if assistant_model is not None and lookup is not None:
            raise XfValueError("pass either assistant_model or prompt_lookup_num_tokens, not both.")
        if config.do_sample:
            raise XfValueError(
                f"{what} is implemented for greedy decoding only in xf (speculative sampling is not); "
                "set do_sample=False, or drop it to sample normally."
            )
        if num_beams > 1 or groups > 1:
            raise XfValueError(f"{what} works with greedy decoding only; set num_beams=1.")
        if batch_size != 1:
            raise XfValueError(
                f"{what} decodes one prompt at a time (as in transformers), but input_ids has {batch_size} rows; "
                "call generate once per prompt."
            )
        if compile:
            raise XfValueError(f"{what} cannot be combined with compile=True (its forwards change length).")
        if encoder_decoder:
            raise XfValueError(f"{what} is implemented for decoder-only models in xf.")
        if not has_cache:
            raise XfValueError(f"{what} needs the KV cache; do not pass use_cache=False with it.")
        if assistant_model is not None:
            return _assisted(assistant_model, model, device)
        return _prompt_lookup
    if groups > 1:
        check_group_beam(config)
        return group_beam_search
    return None


def _assisted(draft: torch.nn.Module, model: Any, device: torch.device) -> Strategy:
    if not isinstance(draft, torch.nn.Module):
        raise XfValueError(f"assistant_model must be a model (torch.nn.Module), not {type(draft).__name__}.")
    draft_device = next(draft.parameters()).device
    if draft_device != device:
        raise XfValueError(
            f"assistant_model is on {draft_device} but the model is on {device}; move both to one device."
        )
    draft_vocab = getattr(getattr(draft, "config", None), "vocab_size", None)
    vocab = getattr(getattr(model, "config", None), "vocab_size", None)
    if draft_vocab is not None and vocab is not None and draft_vocab > vocab:
        raise XfValueError(
            f"assistant_model has a vocabulary of {draft_vocab} tokens but the model has {vocab}: the draft must "
            "share the model's tokenizer (xf does not translate between vocabularies)."
        )

    def run(inputs, input_ids, config, processors, criteria, eos, pad, streamer, batch_size, generator):  # type: ignore[no-untyped-def]
        from ._assisted import DraftModel
        from ._candidates import candidate_loop

        proposer = DraftModel(draft, inputs, config, processors, eos)
        return candidate_loop(inputs, input_ids, config, processors, criteria, eos, pad, streamer, proposer)

    return run


def _prompt_lookup(
    inputs: _Inputs,
    input_ids: torch.Tensor,
    config: GenerationConfig,
    processors: LogitsProcessorList,
    criteria: StoppingCriteriaList,
    eos: torch.Tensor | None,
    pad: int | None,
    streamer: Any,
    batch_size: int,
    generator: torch.Generator | None,
) -> Any:
    from ._candidates import PromptLookup, candidate_loop

    assert config.prompt_lookup_num_tokens is not None
    proposer = PromptLookup(config.prompt_lookup_num_tokens, config.max_matching_ngram_size or 2, eos)
    return candidate_loop(inputs, input_ids, config, processors, criteria, eos, pad, streamer, proposer)
