"""The postprocessing math of the tasks, as small pure functions on tensors and plain Python values.

No tokenizer or model here: callers pass what these need (token strings, offsets, label names), so each
function is tested on its own with hand-made numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

import torch

__all__ = [
    "AGGREGATION_STRATEGIES",
    "CLASSIFICATION_FUNCTIONS",
    "POOLINGS",
    "aggregate",
    "apply_function",
    "best_spans",
    "group_entities",
    "merge_overlapping_entities",
    "pool",
    "select_spans",
    "top_k_tokens",
    "zero_shot_scores",
]

AggregationStrategy = Literal["none", "simple", "first", "average", "max"]
AGGREGATION_STRATEGIES: tuple[str, ...] = ("none", "simple", "first", "average", "max")
CLASSIFICATION_FUNCTIONS: tuple[str, ...] = ("softmax", "sigmoid", "none")


# -- text classification ---------------------------------------------------------------------------
def apply_function(logits: torch.Tensor, function: str) -> torch.Tensor:
    """``softmax``, ``sigmoid`` or ``none`` over the last dim, in float32."""
    logits = logits.float()
    if function == "softmax":
        return logits.softmax(-1)
    if function == "sigmoid":
        return logits.sigmoid()
    if function == "none":
        return logits
    raise ValueError(
        f"function_to_apply must be one of {', '.join(CLASSIFICATION_FUNCTIONS)}, got {function!r}"
    )


# -- feature extraction ----------------------------------------------------------------------------
POOLINGS: tuple[str, ...] = (
    "none",
    "cls",
    "mean",
    "max",
    "mean_sqrt_len_tokens",
    "weightedmean",
    "lasttoken",
)


def pool(
    hidden: torch.Tensor,
    attention_mask: torch.Tensor,
    pooling: str,
    *,
    prompt_length: torch.Tensor | list[int] | int | None = None,
) -> torch.Tensor:
    """Pool token states ``(..., T, H)`` over the tokens where ``attention_mask`` ``(..., T)`` is 1, as
    sentence-transformers' Pooling does (right or left padding alike):

    ``cls`` the first unmasked token; ``mean`` their mean; ``mean_sqrt_len_tokens`` their sum over the square
    root of their number; ``max`` the element-wise max; ``weightedmean`` a mean weighted by position (1, 2,
    ... from the first unmasked token); ``lasttoken`` the last unmasked token; ``none`` the states as given.
    ``prompt_length`` (an int, or one per row) leading unmasked tokens are left out, as sentence-transformers'
    ``include_prompt=False`` does (weighted-mean positions still count from the first unmasked token).
    """
    if pooling == "none":
        return hidden
    first = attention_mask.to(torch.int32).argmax(-1, keepdim=True)  # (..., 1): left padding
    if prompt_length is not None:
        length = torch.as_tensor(prompt_length, device=attention_mask.device)
        positions = torch.arange(attention_mask.shape[-1], device=attention_mask.device)
        keep = positions >= first + (length.reshape(first.shape) if length.dim() else length)
        attention_mask = attention_mask * keep.to(attention_mask.dtype)
    mask = attention_mask.to(hidden.dtype).unsqueeze(-1)  # (..., T, 1)
    T, H = hidden.shape[-2], hidden.shape[-1]
    if pooling in ("cls", "lasttoken"):
        if pooling == "cls":
            index = attention_mask.to(torch.int32).argmax(-1)  # first unmasked token
        else:
            seen, last_from_end = attention_mask.to(torch.int32).flip(-1).max(-1)
            index = torch.where(seen == 0, T - 1, T - 1 - last_from_end)
            hidden = hidden * mask  # a row with no unmasked token gives zeros, as sentence-transformers
        index = index.unsqueeze(-1).unsqueeze(-1).expand(*index.shape, 1, H)  # (..., 1, H)
        return hidden.gather(-2, index).squeeze(-2)
    if pooling == "max":
        return hidden.masked_fill(mask == 0, float("-inf")).amax(-2)
    if pooling in ("mean", "mean_sqrt_len_tokens"):
        count = mask.sum(-2).clamp(min=1e-9)  # (..., 1)
        total = (hidden * mask).sum(-2)
        return total / (count if pooling == "mean" else count.sqrt())
    if pooling == "weightedmean":
        positions = torch.arange(1, T + 1, device=hidden.device, dtype=hidden.dtype)
        weights = (positions - first.to(hidden.dtype)).unsqueeze(-1) * mask  # (..., T, 1)
        return (hidden * weights).sum(-2) / weights.sum(-2).clamp(min=1e-9)
    raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}")


# -- fill-mask -------------------------------------------------------------------------------------
def top_k_tokens(
    logits: torch.Tensor, *, top_k: int, target_ids: Sequence[int] | None = None
) -> list[list[tuple[float, int]]]:
    """For each mask position's logits ``(M, V)``: the ``top_k`` (probability, token id) pairs, best first.

    With ``target_ids`` only those tokens compete (probabilities still come from the full softmax) and
    ``top_k`` is capped at their number.
    """
    probs = logits.float().softmax(-1)
    if target_ids is not None:
        ids = torch.tensor(list(target_ids), dtype=torch.long)
        probs = probs[..., ids]
        top_k = min(top_k, len(ids))
    values, indices = probs.topk(top_k, dim=-1)
    rows = []
    for vals, idxs in zip(values.tolist(), indices.tolist()):
        if target_ids is not None:
            idxs = [int(target_ids[i]) for i in idxs]
        rows.append(list(zip(vals, idxs)))
    return rows


# -- zero-shot -------------------------------------------------------------------------------------
def zero_shot_scores(logits: torch.Tensor, *, entailment_id: int, multi_label: bool) -> list[float]:
    """Scores of each candidate label from NLI logits ``(n_labels, n_classes)``.

    Single-label: softmax of the entailment logits across candidates (they sum to 1). Multi-label (or one
    candidate): for each candidate on its own, softmax of entailment against contradiction.
    """
    logits = logits.float()
    entail = entailment_id % logits.shape[-1]
    if multi_label or logits.shape[0] == 1:
        contradiction = logits.shape[-1] - 1 if entail == 0 else 0
        pair = logits[:, [contradiction, entail]]
        return pair.softmax(-1)[:, 1].tolist()
    return logits[:, entail].softmax(0).tolist()


# -- token classification --------------------------------------------------------------------------
def aggregate(
    pre_entities: list[dict[str, Any]],
    strategy: str,
    *,
    id2label: Callable[[int], str],
    join_tokens: Callable[[list[str]], str],
) -> list[dict[str, Any]]:
    """Token predictions -> entities, as transformers' ``aggregation_strategy`` does.

    ``pre_entities`` hold, per non-special token: ``word`` (token string), ``scores`` (probabilities,
    a 1-dim tensor), ``start``/``end`` (char offsets or None), ``index`` and ``is_subword``.
    ``none``: one entity per token. ``simple``: adjacent tokens with the same tag are grouped.
    ``first``/``average``/``max``: first the tokens of each word agree on one label (that of the first
    token, of the mean scores, or of the most confident token), then words are grouped.
    """
    if strategy not in AGGREGATION_STRATEGIES:
        raise ValueError(
            f"aggregation_strategy must be one of {', '.join(AGGREGATION_STRATEGIES)}, got {strategy!r}"
        )
    if strategy in ("none", "simple"):
        entities = []
        for pre in pre_entities:
            idx = int(pre["scores"].argmax())
            entities.append(
                {
                    "entity": id2label(idx),
                    "score": float(pre["scores"][idx]),
                    "index": pre["index"],
                    "word": pre["word"],
                    "start": pre["start"],
                    "end": pre["end"],
                }
            )
        return entities if strategy == "none" else group_entities(entities, join_tokens=join_tokens)
    words: list[list[dict[str, Any]]] = []
    for pre in pre_entities:
        if words and pre["is_subword"]:
            words[-1].append(pre)
        else:
            words.append([pre])
    word_entities = [_aggregate_word(w, strategy, id2label=id2label, join_tokens=join_tokens) for w in words]
    return group_entities(word_entities, join_tokens=join_tokens)


def _aggregate_word(
    tokens: list[dict[str, Any]],
    strategy: str,
    *,
    id2label: Callable[[int], str],
    join_tokens: Callable[[list[str]], str],
) -> dict[str, Any]:
    if strategy == "first":
        scores = tokens[0]["scores"]
    elif strategy == "max":
        scores = max(tokens, key=lambda t: float(t["scores"].max()))["scores"]
    else:  # average
        scores = torch.stack([t["scores"] for t in tokens]).nanmean(0)
    idx = int(scores.argmax())
    return {
        "entity": id2label(idx),
        "score": float(scores[idx]),
        "word": join_tokens([t["word"] for t in tokens]),
        "start": tokens[0]["start"],
        "end": tokens[-1]["end"],
    }


def _tag(label: str) -> tuple[str, str]:
    if label.startswith(("B-", "I-")):
        return label[0], label[2:]
    return "I", label  # not BIO: a continuation


def group_entities(
    entities: list[dict[str, Any]], *, join_tokens: Callable[[list[str]], str]
) -> list[dict[str, Any]]:
    """Merge adjacent entities of the same tag (a ``B-`` starts a new group) into ``entity_group`` dicts."""
    groups: list[list[dict[str, Any]]] = []
    for entity in entities:
        bi, tag = _tag(entity["entity"])
        if groups and bi != "B" and _tag(groups[-1][-1]["entity"])[1] == tag:
            groups[-1].append(entity)
        else:
            groups.append([entity])
    return [
        {
            "entity_group": group[0]["entity"].split("-", 1)[-1],
            "score": float(torch.tensor([e["score"] for e in group], dtype=torch.float32).nanmean()),
            "word": join_tokens([e["word"] for e in group]),
            "start": group[0]["start"],
            "end": group[-1]["end"],
        }
        for group in groups
    ]


def merge_overlapping_entities(entities: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Entities from overlapping stride windows: of entities that overlap, keep the longest (then the most
    confident)."""
    if not entities:
        return entities
    entities = sorted(entities, key=lambda e: e["start"])
    merged = []
    best = entities[0]
    for entity in entities:
        if best["start"] <= entity["start"] < best["end"]:
            length, best_length = entity["end"] - entity["start"], best["end"] - best["start"]
            if length > best_length or (length == best_length and entity["score"] > best["score"]):
                best = entity
        else:
            merged.append(best)
            best = entity
    merged.append(best)
    return merged


# -- question answering ----------------------------------------------------------------------------
def best_spans(
    start_probs: torch.Tensor,
    end_probs: torch.Tensor,
    *,
    top_k: int,
    max_answer_len: int,
    allowed: torch.Tensor,
) -> list[tuple[int, int, float]]:
    """The ``top_k`` spans (start, end, p_start * p_end) with start <= end < start + max_answer_len whose
    both ends are ``allowed`` tokens, best first."""
    scores = torch.outer(start_probs, end_probs).triu().tril(max_answer_len - 1)  # (T, T)
    flat = scores.flatten()
    order = flat.argsort(descending=True, stable=True)[: min(top_k, flat.numel())]
    width = scores.shape[1]
    spans = []
    for index in order.tolist():
        s, e = divmod(index, width)
        if allowed[s] and allowed[e]:
            spans.append((s, e, float(flat[index])))
    return spans


def select_spans(
    start_logits: torch.Tensor,
    end_logits: torch.Tensor,
    *,
    p_mask: torch.Tensor,
    attention_mask: torch.Tensor | None,
    top_k: int,
    max_answer_len: int,
    handle_impossible_answer: bool,
    min_null_score: float = 1e6,
) -> tuple[list[tuple[int, int, float]], float]:
    """Answer spans of one window, as transformers 4's question-answering pipeline picks them.

    Tokens outside the context (``p_mask`` 1, except the CLS token at 0) and padding get logit -10000;
    start and end probabilities are softmaxes over the window; the null answer's score is
    p_start[0] * p_end[0] (folded into ``min_null_score`` when impossible answers are allowed).
    """
    allowed = (1 - p_mask.long()).bool()
    if attention_mask is not None:
        allowed &= attention_mask.bool()
    start = start_logits.float().masked_fill(~allowed, -10000.0).softmax(-1)
    end = end_logits.float().masked_fill(~allowed, -10000.0).softmax(-1)
    if handle_impossible_answer:
        min_null_score = min(min_null_score, float(start[0] * end[0]))
    start[0] = 0.0
    end[0] = 0.0
    spans = best_spans(start, end, top_k=top_k, max_answer_len=max_answer_len, allowed=allowed)
    return spans, min_null_score
