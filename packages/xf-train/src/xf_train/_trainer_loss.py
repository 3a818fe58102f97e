"""Loss helpers of the Trainer: transformers' label smoothing normalised by the targets of the accumulated step,
and the (optionally clipped) total gradient norm."""

from __future__ import annotations

import torch
from torch import nn


def _grad_norm(params: list[nn.Parameter], max_norm: float) -> torch.Tensor:
    """The total gradient norm, clipped to ``max_norm`` when it is > 0."""
    if max_norm > 0:
        return torch.nn.utils.clip_grad_norm_(params, max_norm)
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(())
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))


def _smoothed_loss(
    logits: torch.Tensor, labels: torch.Tensor, epsilon: float, *, shift: bool, num_items: torch.Tensor | None
) -> torch.Tensor:
    """transformers' LabelSmoother: ``(1 - eps) * nll + eps * mean(-log p over the vocabulary)`` over the
    targets that are not -100, divided by ``num_items`` (the targets of the whole accumulated step) when
    given, else by this batch's targets."""
    if shift:
        logits, labels = logits[..., :-1, :], labels[..., 1:]
    log_probs = -torch.nn.functional.log_softmax(logits.float(), dim=-1)
    labels = labels.unsqueeze(-1)
    padding = labels.eq(-100)
    nll = log_probs.gather(dim=-1, index=labels.clamp(min=0)).masked_fill(padding, 0.0)
    smoothed = log_probs.sum(dim=-1, keepdim=True).masked_fill(padding, 0.0)
    count = num_items if num_items is not None else padding.numel() - padding.long().sum()
    return (1 - epsilon) * nll.sum() / count + epsilon * smoothed.sum() / (count * log_probs.shape[-1])
