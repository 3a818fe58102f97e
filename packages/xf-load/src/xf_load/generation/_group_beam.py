"""Diverse (group) beam search: ``num_beam_groups`` groups of ``num_beams / num_beam_groups`` beams, each group
a beam search of its own, run one after the other at each step; a group's scores lose ``diversity_penalty``
for every time an earlier group picked the same token at this step (Hamming diversity, Vijayakumar et al.,
2016).

Step for step the algorithm of transformers 4.x (``_group_beam_search`` with ``BeamSearchScorer`` and
``HammingDiversityLogitsProcessor``, up to 4.50; later versions moved it to the Hub as
``transformers-community/group-beam-search``): a finished hypothesis is stored without its EOS token, which the
output gets back after it; each group keeps its own ``group_size`` best finished hypotheses, and the
``num_return_sequences`` best over all groups are returned. The penalty is applied to the log-probabilities
before the configured logits processors.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from xf_core.errors import XfValueError

from ._config import GenerationConfig
from ._outputs import GenerateBeamDecoderOnlyOutput
from ._processors import LogitsProcessorList
from ._stopping import StoppingCriteriaList

if TYPE_CHECKING:
    from ._decode import _Inputs

__all__ = ["Hypotheses", "check_group_beam", "finalize_hypotheses", "group_beam_search"]


def check_group_beam(config: GenerationConfig) -> None:
    """Refuse what diverse beam search cannot do (before ``generate`` allocates anything)."""
    if config.do_sample:
        raise XfValueError("num_beam_groups > 1 (diverse beam search) cannot sample; set do_sample=False.")
    if (config.num_beams or 1) < 2:
        raise XfValueError(
            "num_beam_groups > 1 needs num_beams > 1 (several beams per group or several groups)."
        )
    if not config.diversity_penalty:
        raise XfValueError(
            "num_beam_groups > 1 with diversity_penalty=0.0 runs the same beam search in every group (transformers "
            "refuses it too); set diversity_penalty > 0, e.g. 1.0."
        )


class Hypotheses:
    """The ``size`` best finished sequences of one prompt (or one group), scored ``sum_logprobs / length **
    length_penalty`` (transformers' ``BeamHypotheses``)."""

    def __init__(self, size: int, length_penalty: float, early_stopping: bool | str, max_length: int) -> None:
        self.size = size
        self.length_penalty = length_penalty
        self.early_stopping = early_stopping
        self.max_length = max_length
        self.beams: list[tuple[float, torch.Tensor]] = []
        self.worst = 1e9

    def add(self, tokens: torch.Tensor, sum_logprobs: float, generated_len: int) -> None:
        score = sum_logprobs / (generated_len**self.length_penalty)
        if len(self.beams) < self.size or score > self.worst:
            self.beams.append((score, tokens))
            if len(self.beams) > self.size:
                ranked = sorted((s, i) for i, (s, _) in enumerate(self.beams))
                del self.beams[ranked[0][1]]
                self.worst = ranked[1][0]
            else:
                self.worst = min(score, self.worst)

    def is_done(self, best_sum_logprobs: float, cur_len: int, prompt_len: int) -> bool:
        """Whether no running beam can still beat the worst kept hypothesis."""
        if len(self.beams) < self.size:
            return False
        if self.early_stopping is True:
            return True
        if self.early_stopping == "never" and self.length_penalty > 0.0:
            best = best_sum_logprobs / (self.max_length - prompt_len) ** self.length_penalty
        else:
            best = best_sum_logprobs / (cur_len - prompt_len) ** self.length_penalty
        return self.worst >= best


def finalize_hypotheses(
    per_prompt: list[list[tuple[float, torch.Tensor]]],
    n_return: int,
    *,
    max_length: int,
    pad: int | None,
    eos: torch.Tensor | None,
    template: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``n_return`` best hypotheses of each prompt as one padded ``(B * n_return, T)`` tensor (an EOS after
    the shorter ones, pads after that) and their scores."""
    best: list[torch.Tensor] = []
    scores: list[float] = []
    for candidates in per_prompt:
        ranked = sorted(candidates, key=lambda c: c[0])
        for _ in range(n_return):
            score, tokens = ranked.pop()
            best.append(tokens)
            scores.append(score)
    lengths = [t.shape[0] for t in best]
    width = min(max(lengths) + 1, max_length)
    out = template.new_full((len(best), width), pad if pad is not None else 0)
    for i, tokens in enumerate(best):
        out[i, : lengths[i]] = tokens
        if lengths[i] < width and eos is not None:
            out[i, lengths[i]] = eos[0]
    return out, torch.tensor(scores, dtype=torch.float32, device=template.device)


def group_beam_search(
    inputs: _Inputs,
    input_ids: torch.Tensor,
    config: GenerationConfig,
    processors: LogitsProcessorList,
    criteria: StoppingCriteriaList,
    eos: torch.Tensor | None,
    pad: int | None,
    streamer: Any,
    batch_size: int,
    generator: torch.Generator | None,
) -> torch.Tensor | GenerateBeamDecoderOnlyOutput:
    """Diverse beam search over ``input_ids`` ``(B * num_beams, L)`` (each prompt repeated ``num_beams`` times)."""
    device = input_ids.device
    nb = config.num_beams or 1
    G = config.num_beam_groups or 1
    S = nb // G  # beams per group
    B = batch_size
    max_length = config.max_length
    assert max_length is not None
    penalty = float(config.diversity_penalty or 0.0)
    length_penalty = config.length_penalty if config.length_penalty is not None else 1.0
    early = config.early_stopping if config.early_stopping is not None else False
    n_eos = eos.shape[0] if eos is not None else 0
    eos_ids = set(eos.tolist()) if eos is not None else set()
    K = max(2, 1 + n_eos) * S
    want_scores = bool(config.return_dict_in_generate and config.output_scores)
    want_logits = bool(config.return_dict_in_generate and config.output_logits)
    scores_out: list[torch.Tensor] = []
    logits_out: list[torch.Tensor] = []

    prompt_len = cur_len = input_ids.shape[1]
    running = input_ids.new_zeros((B * nb, max_length))
    running[:, :cur_len] = input_ids
    hyps = [Hypotheses(S, length_penalty, early, max_length) for _ in range(B * G)]  # index b * G + g
    done = [False] * (B * G)
    beam_scores = torch.full((B, nb), -1e9, device=device)
    beam_scores[:, ::S] = 0  # the first beam of each group is live at the start
    beam_scores = beam_scores.view(B * nb)
    # rows[g]: the rows of group g, prompt by prompt: (B * S,)
    rows = [
        (torch.arange(B, device=device)[:, None] * nb + g * S + torch.arange(S, device=device)).reshape(-1)
        for g in range(G)
    ]

    logits = inputs.prefill(input_ids)
    while True:
        current = input_ids.new_zeros(B * nb)  # this step's token of every row, filled group by group
        reorder = torch.zeros(B * nb, dtype=torch.long, device=device)
        processed = torch.zeros_like(logits) if want_scores else None
        if want_logits:
            logits_out.append(logits.clone())
        history = running[:, :cur_len]
        all_log_probs = logits.log_softmax(dim=-1)
        new_history = history.clone()
        for g in range(G):
            idx = rows[g]
            log_probs = all_log_probs[idx]  # (B * S, V)
            vocab = log_probs.shape[-1]
            if penalty > 0.0 and g > 0:
                for b in range(B):
                    earlier = current[b * nb : b * nb + g * S]
                    log_probs[b * S : (b + 1) * S] -= penalty * torch.bincount(earlier, minlength=vocab)
            group_history = history[idx]
            if processors:
                # Processors may hold per-row state (left-padding lengths): run them on all rows, keep the group's.
                full = all_log_probs.clone()
                full[idx] = log_probs
                log_probs = processors(history, full)[idx]
            if processed is not None:
                processed[idx] = log_probs
            totals = (log_probs + beam_scores[idx, None]).view(B, S * vocab)
            top_scores, top_ids = torch.topk(totals, K, dim=1, largest=True, sorted=True)
            next_scores, next_tokens, next_rows = _select(
                hyps,
                done,
                g,
                G,
                S,
                group_history,
                top_scores.tolist(),
                (top_ids % vocab).tolist(),
                (top_ids // vocab).tolist(),
                eos_ids=eos_ids,
                pad=pad,
                cur_len=cur_len + 1,
                prompt_len=prompt_len,
            )
            beam_scores[idx] = torch.tensor(next_scores, device=device)
            src = torch.tensor(next_rows, device=device)  # rows within the group, (B * S,)
            new_history[idx] = group_history[src]
            current[idx] = torch.tensor(next_tokens, device=device, dtype=current.dtype)
            reorder[idx] = nb * (src // S) + g * S + src % S
        if processed is not None:
            scores_out.append(processed)
        running[:, :cur_len] = new_history
        running[:, cur_len] = current
        inputs.reorder(reorder)
        cur_len += 1
        if all(done) or cur_len >= max_length:
            break
        if len(criteria) and bool(criteria(running[:, :cur_len], tuple(scores_out) or None).all()):
            break
        logits = inputs.step(running, cur_len)

    # Groups still open: their running beams compete as they are.
    final_scores = beam_scores.tolist()
    for b in range(B):
        for g in range(G):
            if done[b * G + g]:
                continue
            for s in range(S):
                row = b * nb + g * S + s
                hyps[b * G + g].add(running[row, :cur_len].clone(), final_scores[row], cur_len - prompt_len)
    per_prompt = [[beam for g in range(G) for beam in hyps[b * G + g].beams] for b in range(B)]
    n_return = config.num_return_sequences or 1
    sequences, seq_scores = finalize_hypotheses(
        per_prompt, n_return, max_length=max_length, pad=pad, eos=eos, template=input_ids
    )
    if not config.return_dict_in_generate:
        return sequences
    return GenerateBeamDecoderOnlyOutput(
        sequences=sequences,
        sequences_scores=seq_scores if config.output_scores else None,
        scores=tuple(scores_out) if want_scores else None,
        logits=tuple(logits_out) if want_logits else None,
        past_key_values=inputs.cache,
    )


def _select(
    hyps: list[Hypotheses],
    done: list[bool],
    g: int,
    G: int,
    S: int,
    group_history: torch.Tensor,
    top_scores: list[list[float]],
    top_tokens: list[list[int]],
    top_beams: list[list[int]],
    *,
    eos_ids: set[int],
    pad: int | None,
    cur_len: int,
    prompt_len: int,
) -> tuple[list[float], list[int], list[int]]:
    """One group's step for every prompt: EOS continuations among the best ``S`` become hypotheses, the best
    ``S`` others run on. Returns the scores, tokens and source rows (within the group) of the running beams."""
    scores: list[float] = []
    tokens: list[int] = []
    sources: list[int] = []
    for b in range(len(top_scores)):
        h = b * G + g
        if done[h]:  # a finished prompt runs pads (from the group's first row, as transformers does)
            scores += [0.0] * S
            tokens += [pad if pad is not None else 0] * S
            sources += [0] * S
            continue
        kept = 0
        for rank, (score, token, beam) in enumerate(zip(top_scores[b], top_tokens[b], top_beams[b])):
            row = b * S + beam
            if token in eos_ids:
                if rank < S:
                    hyps[h].add(group_history[row].clone(), score, cur_len - prompt_len)
            else:
                scores.append(score)
                tokens.append(token)
                sources.append(row)
                kept += 1
            if kept == S:
                break
        done[h] = done[h] or hyps[h].is_done(max(top_scores[b]), cur_len, prompt_len)
    return scores, tokens, sources
