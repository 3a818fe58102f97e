"""Text generation for xf-load's causal LMs: ``model.generate(...)`` and the pieces under it.

``GenerationConfig`` has no torch dependency; the rest (processors, stopping criteria, the decoding loops,
streamers) loads on first use.
"""

from __future__ import annotations

from xf_core.lazy import lazy_exports

from ._config import GENERATION_CONFIG_NAME, GLOBAL_DEFAULTS, GenerationConfig

_EXPORTS = {
    "GenerationMixin": "._mixin",
    "generate": "._decode",
    "prefill": "._decode",
    "decode_one_token": "._decode",
    "sample": "._decode",
    "GenerateDecoderOnlyOutput": "._outputs",
    "GenerateBeamDecoderOnlyOutput": "._outputs",
    "TextStreamer": "._streamers",
    "TextIteratorStreamer": "._streamers",
    "BaseStreamer": "._streamers",
    "StoppingCriteria": "._stopping",
    "StoppingCriteriaList": "._stopping",
    "MaxLengthCriteria": "._stopping",
    "MaxTimeCriteria": "._stopping",
    "EosTokenCriteria": "._stopping",
    "StopStringCriteria": "._stopping",
    "LogitsProcessor": "._processors",
    "LogitsProcessorList": "._processors",
    "build_logits_processors": "._processors",
    "TemperatureLogitsWarper": "._processors",
    "TopKLogitsWarper": "._processors",
    "TopPLogitsWarper": "._processors",
    "MinPLogitsWarper": "._processors",
    "TypicalLogitsWarper": "._processors",
    "RepetitionPenaltyLogitsProcessor": "._processors",
    "NoRepeatNGramLogitsProcessor": "._processors",
    "NoBadWordsLogitsProcessor": "._processors",
    "SequenceBiasLogitsProcessor": "._processors",
    "MinLengthLogitsProcessor": "._processors",
    "MinNewTokensLengthLogitsProcessor": "._processors",
    "ForcedBOSTokenLogitsProcessor": "._processors",
    "ForcedEOSTokenLogitsProcessor": "._processors",
    "SuppressTokensLogitsProcessor": "._processors",
    "SuppressTokensAtBeginLogitsProcessor": "._processors",
    "InfNanRemoveLogitsProcessor": "._processors",
    "LogitNormalization": "._processors",
}

__all__ = ["GENERATION_CONFIG_NAME", "GLOBAL_DEFAULTS", "GenerationConfig", *sorted(_EXPORTS)]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
