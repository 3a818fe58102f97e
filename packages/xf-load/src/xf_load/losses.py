"""The losses of the task heads, with transformers' conventions (shifted labels, ``-100`` ignored,
``num_items_in_batch`` for gradient accumulation, ``problem_type`` for sequence classification)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = [
    "IGNORE_INDEX",
    "causal_lm_loss",
    "masked_lm_loss",
    "question_answering_loss",
    "sequence_classification_loss",
    "token_classification_loss",
]

IGNORE_INDEX = -100


def _cross_entropy(
    logits: torch.Tensor, labels: torch.Tensor, num_items_in_batch: int | torch.Tensor | None
) -> torch.Tensor:
    logits = logits.float()
    labels = labels.to(logits.device)
    if num_items_in_batch is None:
        return F.cross_entropy(logits, labels, ignore_index=IGNORE_INDEX, reduction="mean")
    loss = F.cross_entropy(logits, labels, ignore_index=IGNORE_INDEX, reduction="sum")
    if isinstance(num_items_in_batch, torch.Tensor):
        num_items_in_batch = num_items_in_batch.to(loss.device)
    return loss / num_items_in_batch


def causal_lm_loss(
    logits: torch.Tensor, labels: torch.Tensor, *, num_items_in_batch: int | torch.Tensor | None = None
) -> torch.Tensor:
    """Next-token loss: position t predicts ``labels[t + 1]``. With ``num_items_in_batch`` the summed loss is
    divided by it (so gradient accumulation normalises over the whole batch), else it is the mean."""
    labels = F.pad(labels, (0, 1), value=IGNORE_INDEX)[..., 1:]  # (B, T), shifted left
    V = logits.shape[-1]
    return _cross_entropy(logits.reshape(-1, V), labels.reshape(-1), num_items_in_batch)


def masked_lm_loss(
    logits: torch.Tensor, labels: torch.Tensor, *, num_items_in_batch: int | torch.Tensor | None = None
) -> torch.Tensor:
    V = logits.shape[-1]
    return _cross_entropy(logits.reshape(-1, V), labels.reshape(-1), num_items_in_batch)


def token_classification_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return _cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), None)


def sequence_classification_loss(
    logits: torch.Tensor, labels: torch.Tensor, *, num_labels: int, problem_type: str | None
) -> torch.Tensor:
    """MSE (regression), cross-entropy (single label) or BCE-with-logits (multi label); when ``problem_type``
    is None it is inferred like transformers: one label -> regression, integer labels -> single label."""
    labels = labels.to(logits.device)
    if problem_type is None:
        if num_labels == 1:
            problem_type = "regression"
        elif labels.dtype in (torch.long, torch.int):
            problem_type = "single_label_classification"
        else:
            problem_type = "multi_label_classification"
    if problem_type == "regression":
        if num_labels == 1:
            return F.mse_loss(logits.squeeze().float(), labels.squeeze().float())
        return F.mse_loss(logits.float(), labels.float())
    if problem_type == "single_label_classification":
        return _cross_entropy(logits.view(-1, num_labels), labels.view(-1), None)
    return F.binary_cross_entropy_with_logits(logits.float(), labels.float())


def question_answering_loss(
    start_logits: torch.Tensor,
    end_logits: torch.Tensor,
    start_positions: torch.Tensor,
    end_positions: torch.Tensor,
) -> torch.Tensor:
    """Mean of the start and end cross-entropies; positions outside the sequence are ignored."""
    ignored = start_logits.size(1)
    start = start_positions.view(-1).clamp(0, ignored).to(start_logits.device)
    end = end_positions.view(-1).clamp(0, ignored).to(end_logits.device)
    start_loss = F.cross_entropy(start_logits.float(), start, ignore_index=ignored)
    end_loss = F.cross_entropy(end_logits.float(), end, ignore_index=ignored)
    return (start_loss + end_loss) / 2
