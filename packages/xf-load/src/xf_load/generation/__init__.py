"""Text generation for xf-load's causal LMs: ``model.generate(...)`` and the pieces under it.

``GenerationConfig`` has no torch dependency; the rest (processors, stopping criteria, the decoding loops,
streamers) loads on first use.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from xf_core.lazy import lazy_exports

from ._config import GENERATION_CONFIG_NAME, GLOBAL_DEFAULTS, GenerationConfig

_EXPORTS = {
    "GenerationMixin": "._mixin",
    "decode_one_token": "._decode",
    "generate": "._decode",
    "prefill": "._decode",
    "sample": "._decode",
    "GenerateBeamDecoderOnlyOutput": "._outputs",
    "GenerateDecoderOnlyOutput": "._outputs",
    "BaseStreamer": "._streamers",
    "TextIteratorStreamer": "._streamers",
    "TextStreamer": "._streamers",
    "EosTokenCriteria": "._stopping",
    "MaxLengthCriteria": "._stopping",
    "MaxTimeCriteria": "._stopping",
    "StoppingCriteria": "._stopping",
    "StoppingCriteriaList": "._stopping",
    "StopStringCriteria": "._stopping",
    "ForcedBOSTokenLogitsProcessor": "._processors",
    "ForcedEOSTokenLogitsProcessor": "._processors",
    "InfNanRemoveLogitsProcessor": "._processors",
    "LogitNormalization": "._processors",
    "LogitsProcessor": "._processors",
    "LogitsProcessorList": "._processors",
    "MinLengthLogitsProcessor": "._processors",
    "MinNewTokensLengthLogitsProcessor": "._processors",
    "MinPLogitsWarper": "._processors",
    "NoBadWordsLogitsProcessor": "._processors",
    "NoRepeatNGramLogitsProcessor": "._processors",
    "RepetitionPenaltyLogitsProcessor": "._processors",
    "SequenceBiasLogitsProcessor": "._processors",
    "SuppressTokensAtBeginLogitsProcessor": "._processors",
    "SuppressTokensLogitsProcessor": "._processors",
    "TemperatureLogitsWarper": "._processors",
    "TopKLogitsWarper": "._processors",
    "TopPLogitsWarper": "._processors",
    "TypicalLogitsWarper": "._processors",
    "build_logits_processors": "._processors",
}

__all__ = [
    "GENERATION_CONFIG_NAME",
    "GLOBAL_DEFAULTS",
    "BaseStreamer",
    "EosTokenCriteria",
    "ForcedBOSTokenLogitsProcessor",
    "ForcedEOSTokenLogitsProcessor",
    "GenerateBeamDecoderOnlyOutput",
    "GenerateDecoderOnlyOutput",
    "GenerationConfig",
    "GenerationMixin",
    "InfNanRemoveLogitsProcessor",
    "LogitNormalization",
    "LogitsProcessor",
    "LogitsProcessorList",
    "MaxLengthCriteria",
    "MaxTimeCriteria",
    "MinLengthLogitsProcessor",
    "MinNewTokensLengthLogitsProcessor",
    "MinPLogitsWarper",
    "NoBadWordsLogitsProcessor",
    "NoRepeatNGramLogitsProcessor",
    "RepetitionPenaltyLogitsProcessor",
    "SequenceBiasLogitsProcessor",
    "StopStringCriteria",
    "StoppingCriteria",
    "StoppingCriteriaList",
    "SuppressTokensAtBeginLogitsProcessor",
    "SuppressTokensLogitsProcessor",
    "TemperatureLogitsWarper",
    "TextIteratorStreamer",
    "TextStreamer",
    "TopKLogitsWarper",
    "TopPLogitsWarper",
    "TypicalLogitsWarper",
    "build_logits_processors",
    "decode_one_token",
    "generate",
    "prefill",
    "sample",
]

if TYPE_CHECKING:  # the lazily exported names, as type checkers and IDEs should see them
    from ._decode import decode_one_token, generate, prefill, sample
    from ._mixin import GenerationMixin
    from ._outputs import GenerateBeamDecoderOnlyOutput, GenerateDecoderOnlyOutput
    from ._processors import (
        ForcedBOSTokenLogitsProcessor,
        ForcedEOSTokenLogitsProcessor,
        InfNanRemoveLogitsProcessor,
        LogitNormalization,
        LogitsProcessor,
        LogitsProcessorList,
        MinLengthLogitsProcessor,
        MinNewTokensLengthLogitsProcessor,
        MinPLogitsWarper,
        NoBadWordsLogitsProcessor,
        NoRepeatNGramLogitsProcessor,
        RepetitionPenaltyLogitsProcessor,
        SequenceBiasLogitsProcessor,
        SuppressTokensAtBeginLogitsProcessor,
        SuppressTokensLogitsProcessor,
        TemperatureLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
        TypicalLogitsWarper,
        build_logits_processors,
    )
    from ._stopping import (
        EosTokenCriteria,
        MaxLengthCriteria,
        MaxTimeCriteria,
        StoppingCriteria,
        StoppingCriteriaList,
        StopStringCriteria,
    )
    from ._streamers import BaseStreamer, TextIteratorStreamer, TextStreamer

__getattr__: Callable[[str], Any]
__dir__: Callable[[], list[str]]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
