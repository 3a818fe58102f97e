"""The task table: every task, its aliases, its pipeline class and model class, and its default model.

Plain data, cheap to import (the CLI reads it to validate a task before torch is imported). Pipeline and
model classes are named by module path and imported on first use.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from xf_pipeline.errors import UnknownTaskError

__all__ = [
    "ALIASES",
    "DEFAULT_EMBEDDING_MODEL",
    "TASKS",
    "TaskSpec",
    "normalize_task",
    "task_from_architecture",
    "task_from_model",
    "translation_languages",
]

DEFAULT_EMBEDDING_MODEL = "sentence-transformers/all-MiniLM-L6-v2"


@dataclass(frozen=True)
class TaskSpec:
    module: str  # module of the pipeline class, relative to xf_pipeline
    pipeline_class: str
    auto_class: str  # the xf_load Auto class the model is loaded with
    model_kind: str  # what to pass when there is no default, in words
    default_model: str | None = None


TASKS: dict[str, TaskSpec] = {
    "feature-extraction": TaskSpec(
        "._feature_extraction", "FeatureExtractionPipeline", "AutoModel",
        "an encoder or decoder model", DEFAULT_EMBEDDING_MODEL,
    ),
    "sentence-similarity": TaskSpec(
        "._feature_extraction", "SentenceSimilarityPipeline", "AutoModel",
        "a sentence-embedding model", DEFAULT_EMBEDDING_MODEL,
    ),
    "text-classification": TaskSpec(
        "._text_classification", "TextClassificationPipeline", "AutoModelForSequenceClassification",
        "a model with a sequence-classification head (e.g. distilbert/distilbert-base-uncased-finetuned-sst-2-english)",
    ),
    "token-classification": TaskSpec(
        "._token_classification", "TokenClassificationPipeline", "AutoModelForTokenClassification",
        "a model with a token-classification head (e.g. dslim/bert-base-NER)",
    ),
    "fill-mask": TaskSpec(
        "._fill_mask", "FillMaskPipeline", "AutoModelForMaskedLM",
        "a masked-language model (e.g. google-bert/bert-base-uncased)",
    ),
    "question-answering": TaskSpec(
        "._question_answering", "QuestionAnsweringPipeline", "AutoModelForQuestionAnswering",
        "a model with an extractive question-answering head (e.g. distilbert/distilbert-base-cased-distilled-squad)",
    ),
    "zero-shot-classification": TaskSpec(
        "._zero_shot", "ZeroShotClassificationPipeline", "AutoModelForSequenceClassification",
        "an NLI model whose labels include 'entailment' (e.g. facebook/bart-large-mnli)",
    ),
    "text-generation": TaskSpec(
        "._text_generation", "TextGenerationPipeline", "AutoModelForCausalLM",
        "a causal language model (e.g. openai-community/gpt2)",
    ),
    "text2text-generation": TaskSpec(
        "._text2text", "Text2TextGenerationPipeline", "AutoModelForSeq2SeqLM",
        "an encoder-decoder model (e.g. google-t5/t5-small)",
    ),
    "summarization": TaskSpec(
        "._text2text", "SummarizationPipeline", "AutoModelForSeq2SeqLM",
        "a summarization model (e.g. facebook/bart-large-cnn or google-t5/t5-small)",
    ),
    "translation": TaskSpec(
        "._text2text", "TranslationPipeline", "AutoModelForSeq2SeqLM",
        "a translation model (e.g. google-t5/t5-small)",
    ),
    "image-classification": TaskSpec(
        "._image_classification", "ImageClassificationPipeline", "AutoModelForImageClassification",
        "a model with an image-classification head (e.g. google/vit-base-patch16-224)",
    ),
    "image-feature-extraction": TaskSpec(
        "._image_feature_extraction", "ImageFeatureExtractionPipeline", "AutoModel",
        "a vision model (e.g. google/vit-base-patch16-224-in21k)",
    ),
    "zero-shot-image-classification": TaskSpec(
        "._zero_shot_image", "ZeroShotImageClassificationPipeline", "AutoModelForZeroShotImageClassification",
        "a CLIP model (e.g. openai/clip-vit-base-patch32)",
    ),
}  # fmt: skip

ALIASES: dict[str, str] = {
    "sentiment-analysis": "text-classification",
    "ner": "token-classification",
    "embeddings": "feature-extraction",
    "qa": "question-answering",
}


_TRANSLATION = re.compile(r"translation_([A-Za-z0-9-]+)_to_([A-Za-z0-9-]+)")


def translation_languages(task: str) -> tuple[str, str] | None:
    """``("en", "fr")`` for ``"translation_en_to_fr"`` (transformers' alias form), else None."""
    match = _TRANSLATION.fullmatch(task)
    return (match.group(1), match.group(2)) if match else None


def normalize_task(task: str) -> str:
    """The canonical task name for ``task`` or one of its aliases (``translation_xx_to_yy`` is
    ``translation``); unknown names raise UnknownTaskError."""
    name = "translation" if translation_languages(task) else ALIASES.get(task, task)
    if name not in TASKS:
        raise UnknownTaskError(task, [*TASKS, *ALIASES])
    return name


def task_from_architecture(architectures: list[str] | None) -> str:
    """The task a checkpoint's head serves, from the head kind of the first class in ``config.architectures``
    that xf-load has; none listed means a bare model, so embeddings. Classes xf-load does not have raise
    UnknownModelTypeError (guessing from the name could load a different head than the checkpoint's)."""
    from xf_load.errors import UnknownModelTypeError
    from xf_load.heads import HEAD_TASKS, architecture_head_kind

    if not architectures:
        return "feature-extraction"
    for architecture in architectures:
        kind = architecture_head_kind(architecture)
        if kind is not None:
            return HEAD_TASKS[kind]
    raise UnknownModelTypeError(
        f"config.architectures lists {', '.join(architectures)}, which xf-load has no class for, so the task "
        f"cannot be told from it; pass the task (one of {', '.join(TASKS)}).",
        key="architectures",
    )


def task_from_model(model: object) -> str:
    """The task a loaded model serves, from the head kind its class declares (else from its class name)."""
    from xf_load.heads import HEAD_TASKS, head_kind_of

    kind = head_kind_of(model)
    return HEAD_TASKS[kind] if kind is not None else task_from_architecture([type(model).__name__])
