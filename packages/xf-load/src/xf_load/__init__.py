"""Configs, checkpoint discovery, fast weight loading and saving, model families and generation.

``import xf_load`` is cheap: the public names load their modules (and torch) on first use.
"""

from xf_core.lazy import lazy_exports

__version__ = "0.2.0"

_EXPORTS = {
    "AutoConfig": "xf_load.auto",
    "AutoModel": "xf_load.auto",
    "AutoModelForCausalLM": "xf_load.auto",
    "AutoModelForImageClassification": "xf_load.auto",
    "AutoModelForMaskedLM": "xf_load.auto",
    "AutoModelForQuestionAnswering": "xf_load.auto",
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

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

__all__ = ["__version__", *sorted(_EXPORTS)]
