"""The task table: every task, its aliases, its pipeline class and model class, and its default model.

Plain data, cheap to import (the CLI reads it to validate a task before torch is imported). Pipeline and
model classes are named by module path and imported on first use.
"""

from __future__ import annotations

from dataclasses import dataclass

from xf_pipeline.errors import UnknownTaskError

__all__ = [
    "ALIASES",
    "DEFAULT_EMBEDDING_MODEL",
    "TASKS",
    "TaskSpec",
    "normalize_task",
    "task_from_architecture",
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
}  # fmt: skip

ALIASES: dict[str, str] = {
    "sentiment-analysis": "text-classification",
    "ner": "token-classification",
    "embeddings": "feature-extraction",
    "qa": "question-answering",
}

# Head class-name suffix in config.architectures -> the task it serves (used when no task is given).
_ARCHITECTURE_TASKS = {
    "ForSequenceClassification": "text-classification",
    "ForTokenClassification": "token-classification",
    "ForMaskedLM": "fill-mask",
    "ForQuestionAnswering": "question-answering",
    "ForCausalLM": "text-generation",
    "LMHeadModel": "text-generation",
}


def normalize_task(task: str) -> str:
    """The canonical task name for ``task`` or one of its aliases; unknown names raise UnknownTaskError."""
    name = ALIASES.get(task, task)
    if name not in TASKS:
        raise UnknownTaskError(task, [*TASKS, *ALIASES])
    return name


def task_from_architecture(architectures: list[str] | None) -> str:
    """The task a checkpoint's head serves, from ``config.architectures``; a bare model means embeddings."""
    for arch in architectures or []:
        for suffix, task in _ARCHITECTURE_TASKS.items():
            if arch.endswith(suffix):
                return task
    return "feature-extraction"
