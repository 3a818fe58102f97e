"""What a model's head is, as data.

Every model class says what its head computes in one class attribute, ``head_kind`` (a :class:`HeadKind`),
and the auto tables (:data:`xf_load.auto.FAMILIES`) list each family's class per kind. Readers decide by kind,
never by class-name suffix: xf-train shifts labels for a causal-LM head, xf-pipeline picks the task a
checkpoint serves from ``config.architectures``.

A model without a head kind (a plain ``nn.Module``) is not an xf-load head: readers treat it as computing its
own loss from ``labels`` as it sees fit. Importing this module does not import torch.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["HEAD_TASKS", "HeadKind", "architecture_head_kind", "head_kind_of"]


class HeadKind(StrEnum):
    """The kinds of head; the values are the keys of the auto tables (``str(kind)`` reads well in logs)."""

    BASE = "base"  # no head: hidden states (AutoModel)
    CAUSAL_LM = "causal_lm"  # next-token logits; labels are shifted by one inside the loss
    MASKED_LM = "masked_lm"  # logits at every position; labels are not shifted, -100 elsewhere
    SEQUENCE_CLASSIFICATION = "sequence_classification"  # one label (or regression value) per sequence
    TOKEN_CLASSIFICATION = "token_classification"  # one label per token
    QUESTION_ANSWERING = "question_answering"  # start and end logits per token
    SEQ2SEQ_LM = "seq2seq_lm"  # encoder-decoder: decoder logits per label position; labels are not shifted
    IMAGE_CLASSIFICATION = "image_classification"  # one label per image (pixel_values in)
    ZERO_SHOT_IMAGE_CLASSIFICATION = "zero_shot_image_classification"  # image-text similarity logits


# The pipeline task each head kind serves by default: what ``pipeline()`` runs for a checkpoint of that kind,
# the task tag of a model card, the task column of ``xf-repotools metadata``. Keyed by the kinds' values (a
# HeadKind looks its entry up too) and written as a literal, so tools can read it without importing xf-load.
HEAD_TASKS: dict[str, str] = {
    "base": "feature-extraction",
    "causal_lm": "text-generation",
    "masked_lm": "fill-mask",
    "sequence_classification": "text-classification",
    "token_classification": "token-classification",
    "question_answering": "question-answering",
    "seq2seq_lm": "text2text-generation",
    "image_classification": "image-classification",
    "zero_shot_image_classification": "zero-shot-image-classification",
}


def head_kind_of(model: object) -> HeadKind | None:
    """The head kind ``model`` (an instance or a class) declares, or None when it declares none."""
    kind = getattr(model, "head_kind", None)
    return None if kind is None else HeadKind(kind)


def architecture_head_kind(architecture: str) -> HeadKind | None:
    """The head kind of an xf-load class name as ``config.architectures`` lists it (``"LlamaForCausalLM"`` ->
    ``HeadKind.CAUSAL_LM``), read from the auto tables without importing the model; None when no xf-load
    family has a class of that name."""
    from xf_load.auto import FAMILIES

    for family in FAMILIES.values():
        for kind, class_name in family.heads.items():
            if class_name == architecture:
                return HeadKind(kind)
    return None
