"""Auto classes: pick the config and model class from ``config.json``.

One explicit table, :data:`FAMILIES`, maps each ``model_type`` to the module of its family and the class
names of its config and heads. Modules are imported by path on first use; nothing is registered at import.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from typing import Any

from xf_core import HubOptions
from xf_load.configuration_utils import PretrainedConfig, load_json, resolve_config_file
from xf_load.errors import UnknownModelTypeError

__all__ = [
    "FAMILIES",
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
]


@dataclass(frozen=True)
class Family:
    module: str
    config: str
    heads: dict[str, str]  # head ("base", "causal_lm", ...) -> class name


def _llama_like(prefix: str) -> Family:
    return Family(
        "xf_load.models.llama",
        f"{prefix}Config",
        {
            "base": f"{prefix}Model",
            "causal_lm": f"{prefix}ForCausalLM",
            "sequence_classification": f"{prefix}ForSequenceClassification",
        },
    )


def _bert_like(prefix: str) -> Family:
    return Family(
        "xf_load.models.bert",
        f"{prefix}Config",
        {
            "base": f"{prefix}Model",
            "masked_lm": f"{prefix}ForMaskedLM",
            "sequence_classification": f"{prefix}ForSequenceClassification",
            "token_classification": f"{prefix}ForTokenClassification",
            "question_answering": f"{prefix}ForQuestionAnswering",
        },
    )


FAMILIES: dict[str, Family] = {
    "llama": _llama_like("Llama"),
    "mistral": _llama_like("Mistral"),
    "qwen2": _llama_like("Qwen2"),
    "qwen3": _llama_like("Qwen3"),
    "gpt2": Family(
        "xf_load.models.gpt2", "GPT2Config", {"base": "GPT2Model", "causal_lm": "GPT2LMHeadModel"}
    ),
    "bert": _bert_like("Bert"),
    "roberta": _bert_like("Roberta"),
    "t5": Family(
        "xf_load.models.t5", "T5Config", {"base": "T5Model", "seq2seq_lm": "T5ForConditionalGeneration"}
    ),
    "bart": Family(
        "xf_load.models.bart",
        "BartConfig",
        {"base": "BartModel", "seq2seq_lm": "BartForConditionalGeneration"},
    ),
    "vit": Family(
        "xf_load.models.vit",
        "ViTConfig",
        {"base": "ViTModel", "image_classification": "ViTForImageClassification"},
    ),
    # CLIPModel first under its own kind, so that architecture_head_kind("CLIPModel") reads it.
    "clip": Family(
        "xf_load.models.clip",
        "CLIPConfig",
        {"zero_shot_image_classification": "CLIPModel", "base": "CLIPModel"},
    ),
    "clip_text_model": Family("xf_load.models.clip", "CLIPTextConfig", {"base": "CLIPTextModel"}),
    "clip_vision_model": Family("xf_load.models.clip", "CLIPVisionConfig", {"base": "CLIPVisionModel"}),
}


def _family(model_type: str | None, *, file: str | None = None) -> Family:
    if model_type not in FAMILIES:
        where = f" in {file}" if file else ""
        what = f"model_type {model_type!r}" if model_type else "no model_type"
        raise UnknownModelTypeError(
            f"{what}{where} is not supported by xf-load; supported model types: {', '.join(sorted(FAMILIES))}.",
            key="model_type",
            file=file,
        )
    return FAMILIES[model_type]


def _load(family: Family, name: str) -> Any:
    return getattr(importlib.import_module(family.module), name)


def _config_class_for(model_type: str | None, *, file: str | None = None) -> type[PretrainedConfig]:
    family = _family(model_type, file=file)
    return _load(family, family.config)


class AutoConfig:
    """``AutoConfig.from_pretrained(path_or_repo_id, **overrides)`` -> the family's typed config."""

    def __init__(self) -> None:
        raise TypeError(
            "AutoConfig is not instantiated; use AutoConfig.from_pretrained or AutoConfig.for_model."
        )

    @staticmethod
    def from_pretrained(
        path_or_repo_id: str | os.PathLike[str], /, *, hub: HubOptions | None = None, **kwargs: Any
    ) -> PretrainedConfig:
        """The Hub keywords (``revision``, ``subfolder``, ...) say where from, on top of ``hub``; the other
        keywords replace values from the file."""
        hub = HubOptions.pop_from(kwargs, base=hub)
        path = resolve_config_file(path_or_repo_id, hub=hub)
        data = load_json(path, what="model config")
        config_class = _config_class_for(data.get("model_type"), file=str(path))
        config = config_class.from_json_file(path, **kwargs)
        config.name_or_path = str(path_or_repo_id)
        return config

    @staticmethod
    def for_model(model_type: str, /, **values: Any) -> PretrainedConfig:
        """A config of ``model_type`` with ``values`` (defaults otherwise)."""
        return _config_class_for(model_type).from_dict(values)


class _AutoModel:
    head: str = "base"

    def __init__(self) -> None:
        raise TypeError(f"{type(self).__name__} is not instantiated; use from_pretrained or from_config.")

    @classmethod
    def model_class(cls, config: PretrainedConfig) -> type:
        """The model class of this head for ``config.model_type``."""
        family = _family(config.model_type)
        wanted = family.heads.get(cls.head)
        if wanted is None:
            heads = ", ".join(f"{h} ({n})" for h, n in family.heads.items())
            raise UnknownModelTypeError(
                f"model_type {config.model_type!r} has no {cls.head.replace('_', ' ')} head ({cls.__name__}); "
                f"it has: {heads}.",
                key="model_type",
            )
        return _load(family, wanted)

    @classmethod
    def from_config(cls, config: PretrainedConfig, /, **kwargs: Any) -> Any:
        return cls.model_class(config).from_config(config, **kwargs)

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str | os.PathLike[str],
        /,
        *,
        config: PretrainedConfig | None = None,
        hub: HubOptions | None = None,
        **kwargs: Any,
    ) -> Any:
        """Read the config (unless given), choose the class, and call its ``from_pretrained`` with the same
        arguments (keyword arguments that are config fields override the file's values). The Hub keywords
        (``revision``, ``subfolder``, ...) go on top of ``hub``; config and weights both come from them."""
        hub = HubOptions.pop_from(kwargs, base=hub)
        if config is None:
            config = AutoConfig.from_pretrained(pretrained_model_name_or_path, hub=hub)
        return cls.model_class(config).from_pretrained(
            pretrained_model_name_or_path, config=config, hub=hub, **kwargs
        )


class AutoModel(_AutoModel):
    head = "base"


class AutoModelForCausalLM(_AutoModel):
    head = "causal_lm"


class AutoModelForMaskedLM(_AutoModel):
    head = "masked_lm"


class AutoModelForSequenceClassification(_AutoModel):
    head = "sequence_classification"


class AutoModelForTokenClassification(_AutoModel):
    head = "token_classification"


class AutoModelForQuestionAnswering(_AutoModel):
    head = "question_answering"


class AutoModelForSeq2SeqLM(_AutoModel):
    head = "seq2seq_lm"


class AutoModelForImageClassification(_AutoModel):
    head = "image_classification"


class AutoModelForZeroShotImageClassification(_AutoModel):
    head = "zero_shot_image_classification"
