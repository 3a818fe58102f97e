"""Configs, checkpoint discovery, fast weight loading and saving, model families and generation.

``import xf_load`` is cheap: the public names load their modules (and torch) on first use.
"""

from collections.abc import Callable
from importlib import metadata as _metadata
from typing import TYPE_CHECKING, Any

from xf_core.lazy import lazy_exports

__version__ = _metadata.version("xf-load")

_EXPORTS = {
    "AutoConfig": "xf_load.auto",
    "AutoModel": "xf_load.auto",
    "AutoModelForCausalLM": "xf_load.auto",
    "AutoModelForImageClassification": "xf_load.auto",
    "AutoModelForMaskedLM": "xf_load.auto",
    "AutoModelForQuestionAnswering": "xf_load.auto",
    "AutoModelForSeq2SeqLM": "xf_load.auto",
    "AutoModelForSequenceClassification": "xf_load.auto",
    "AutoModelForTokenClassification": "xf_load.auto",
    "AutoModelForZeroShotImageClassification": "xf_load.auto",
    "LoadOptions": "xf_load.options",
    "check_device": "xf_load.options",
    "HeadKind": "xf_load.heads",
    "architecture_head_kind": "xf_load.heads",
    "head_kind_of": "xf_load.heads",
    "load_weights": "xf_load._reload",
    "PretrainedConfig": "xf_load.configuration_utils",
    "PreTrainedModel": "xf_load.modeling_utils",
    "LlamaConfig": "xf_load.models.llama",
    "LlamaForCausalLM": "xf_load.models.llama",
    "LlamaForSequenceClassification": "xf_load.models.llama",
    "LlamaModel": "xf_load.models.llama",
    "MistralConfig": "xf_load.models.llama",
    "MistralForCausalLM": "xf_load.models.llama",
    "Qwen2Config": "xf_load.models.llama",
    "Qwen2ForCausalLM": "xf_load.models.llama",
    "Qwen3Config": "xf_load.models.llama",
    "Qwen3ForCausalLM": "xf_load.models.llama",
    "T5Config": "xf_load.models.t5",
    "T5EncoderModel": "xf_load.models.t5",
    "T5ForConditionalGeneration": "xf_load.models.t5",
    "T5Model": "xf_load.models.t5",
    "BartConfig": "xf_load.models.bart",
    "BartForConditionalGeneration": "xf_load.models.bart",
    "BartModel": "xf_load.models.bart",
    "ViTConfig": "xf_load.models.vit",
    "ViTForImageClassification": "xf_load.models.vit",
    "ViTModel": "xf_load.models.vit",
    "CLIPConfig": "xf_load.models.clip",
    "CLIPModel": "xf_load.models.clip",
    "CLIPTextConfig": "xf_load.models.clip",
    "CLIPTextModel": "xf_load.models.clip",
    "CLIPVisionConfig": "xf_load.models.clip",
    "CLIPVisionModel": "xf_load.models.clip",
}

if TYPE_CHECKING:  # the lazily exported names, as type checkers and IDEs should see them
    from xf_load._reload import load_weights
    from xf_load.auto import (
        AutoConfig,
        AutoModel,
        AutoModelForCausalLM,
        AutoModelForImageClassification,
        AutoModelForMaskedLM,
        AutoModelForQuestionAnswering,
        AutoModelForSeq2SeqLM,
        AutoModelForSequenceClassification,
        AutoModelForTokenClassification,
        AutoModelForZeroShotImageClassification,
    )
    from xf_load.configuration_utils import PretrainedConfig
    from xf_load.heads import HeadKind, architecture_head_kind, head_kind_of
    from xf_load.modeling_utils import PreTrainedModel
    from xf_load.models.bart import BartConfig, BartForConditionalGeneration, BartModel
    from xf_load.models.clip import (
        CLIPConfig,
        CLIPModel,
        CLIPTextConfig,
        CLIPTextModel,
        CLIPVisionConfig,
        CLIPVisionModel,
    )
    from xf_load.models.llama import (
        LlamaConfig,
        LlamaForCausalLM,
        LlamaForSequenceClassification,
        LlamaModel,
        MistralConfig,
        MistralForCausalLM,
        Qwen2Config,
        Qwen2ForCausalLM,
        Qwen3Config,
        Qwen3ForCausalLM,
    )
    from xf_load.models.t5 import T5Config, T5EncoderModel, T5ForConditionalGeneration, T5Model
    from xf_load.models.vit import ViTConfig, ViTForImageClassification, ViTModel
    from xf_load.options import LoadOptions, check_device

__getattr__: Callable[[str], Any]
__dir__: Callable[[], list[str]]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

__all__ = [
    "AutoConfig",
    "AutoModel",
    "AutoModelForCausalLM",
    "AutoModelForImageClassification",
    "AutoModelForMaskedLM",
    "AutoModelForQuestionAnswering",
    "AutoModelForSeq2SeqLM",
    "AutoModelForSequenceClassification",
    "AutoModelForTokenClassification",
    "AutoModelForZeroShotImageClassification",
    "BartConfig",
    "BartForConditionalGeneration",
    "BartModel",
    "CLIPConfig",
    "CLIPModel",
    "CLIPTextConfig",
    "CLIPTextModel",
    "CLIPVisionConfig",
    "CLIPVisionModel",
    "HeadKind",
    "LlamaConfig",
    "LlamaForCausalLM",
    "LlamaForSequenceClassification",
    "LlamaModel",
    "LoadOptions",
    "MistralConfig",
    "MistralForCausalLM",
    "PreTrainedModel",
    "PretrainedConfig",
    "Qwen2Config",
    "Qwen2ForCausalLM",
    "Qwen3Config",
    "Qwen3ForCausalLM",
    "T5Config",
    "T5EncoderModel",
    "T5ForConditionalGeneration",
    "T5Model",
    "ViTConfig",
    "ViTForImageClassification",
    "ViTModel",
    "__version__",
    "architecture_head_kind",
    "check_device",
    "head_kind_of",
    "load_weights",
]
