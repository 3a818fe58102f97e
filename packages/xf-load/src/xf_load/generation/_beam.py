"""Beam search and beam sampling over the state :func:`._decode.generate` sets up: vectorised over prompts and
beams, step for step the algorithm transformers runs (so the same beams, scores and ``beam_indices``).

Beam sampling draws its K continuations with ``torch.multinomial`` (without replacement): the loop syncs with
the host at every step anyway, to decide whether any beam can still improve.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from ._config import GenerationConfig
from ._outputs import GenerateBeamDecoderOnlyOutput
from ._processors import LogitsProcessorList
from ._stopping import StoppingCriteriaList

if TYPE_CHECKING:
    from ._decode import _Inputs

__all__ = ["beam_search"]


def _gather_beams(tensor: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Select along dim 1 (beams): ``tensor`` (B, K, ...), ``index`` (B, N) -> (B, N, ...)."""
    while index.dim() < tensor.dim():
        index = index.unsqueeze(-1)
    return torch.take_along_dim(tensor, index, dim=1)


def beam_search(
    inputs: _Inputs,
    input_ids: torch.Tensor,
    config: GenerationConfig,
    processors: LogitsProcessorList,
    criteria: StoppingCriteriaList,
    eos: torch.Tensor | None,
    pad: int | None,
    batch_size: int,
    generator: torch.Generator | None,
) -> torch.Tensor | GenerateBeamDecoderOnlyOutput:
    """Vectorised beam search (and beam sampling), step for step the algorithm transformers runs.

    Each step scores every (beam, token) continuation, keeps the top K = max(2, 1 + n_eos) * num_beams, moves
    those that hit a stopping criterion to the finished set (scored with the length penalty), and continues
    with the best ``num_beams`` that did not. It stops when no running beam can beat the finished ones.
    """
    device = input_ids.device
    num_beams = config.num_beams or 1
    max_length = config.max_length
    assert max_length is not None
    length_penalty = config.length_penalty if config.length_penalty is not None else 1.0
    early_stopping = config.early_stopping
    do_sample = bool(config.do_sample)
    B, nb = batch_size, num_beams
    cur_len = prompt_len = input_ids.shape[1]
    n_eos = eos.shape[0] if eos is not None else 0
    K = max(2, 1 + n_eos) * nb
    top_nb_mask = torch.arange(K, device=device) < nb
    want_scores = bool(config.return_dict_in_generate and config.output_scores)
    want_logits = bool(config.return_dict_in_generate and config.output_logits)
    scores_out: list[torch.Tensor] = []
    logits_out: list[torch.Tensor] = []

    fill = (pad if pad else int(eos[0])) if eos is not None else -1
    running = torch.full((B, nb, max_length), fill, dtype=torch.long, device=device)
    running[:, :, :cur_len] = input_ids.view(B, nb, cur_len)
    finished = running.clone()
    running_scores = torch.zeros(B, nb, device=device)
    running_scores[:, 1:] = -1e9  # only the first beam of each prompt is live at the start
    finished_scores = torch.full((B, nb), -1e9, device=device)
    is_finished = torch.zeros(B, nb, dtype=torch.bool, device=device)
    can_improve = torch.ones(B, 1, dtype=torch.bool, device=device)
    running_beam_idx = torch.full((B, nb, max_length - cur_len), -1, dtype=torch.int32, device=device)
    finished_beam_idx = running_beam_idx.clone()

    logits = inputs.prefill(input_ids)
    while True:
        flat_running = running[:, :, :cur_len].reshape(B * nb, cur_len)
        log_probs = processors(flat_running, logits.log_softmax(dim=-1))
        if want_logits:
            logits_out.append(logits.clone())
        if want_scores:
            scores_out.append(log_probs.clone())
        vocab = log_probs.shape[-1]
        accumulated = (log_probs.view(B, nb, vocab) + running_scores[:, :, None]).view(B, nb * vocab)

        # Top-K continuations over all beams of each prompt (or K draws without replacement).
        if do_sample:
            top_idx = torch.multinomial(accumulated.softmax(dim=-1), num_samples=K, generator=generator)
            top_lp = accumulated.gather(1, top_idx)
            top_lp, order = top_lp.sort(dim=-1, descending=True)
            top_idx = top_idx.gather(-1, order)
        else:
            top_lp, top_idx = torch.topk(accumulated, k=K)
        from_beam = top_idx // vocab
        top_seqs = _gather_beams(running, from_beam)
        top_seqs[:, :, cur_len] = top_idx % vocab
        top_beam_idx = _gather_beams(running_beam_idx, from_beam)
        top_beam_idx[:, :, cur_len - prompt_len] = (
            from_beam + torch.arange(B, device=device)[:, None] * nb
        ).to(top_beam_idx.dtype)

        # Which continuations are done (EOS, custom criteria, or the length limit).
        hits = criteria(top_seqs[:, :, : cur_len + 1].reshape(B * K, cur_len + 1), tuple(scores_out) or None)
        hits = hits.view(B, K)
        if cur_len + 1 >= max_length:
            hits = torch.ones_like(hits)

        # Running beams for the next step: the best nb continuations that are not done.
        live_lp = top_lp + hits.to(torch.float32) * -1.0e9
        keep = torch.topk(live_lp, k=nb)[1]
        running = _gather_beams(top_seqs, keep)
        running_scores = _gather_beams(live_lp, keep)
        running_beam_idx = _gather_beams(top_beam_idx, keep)

        # Finished beams: merge the done continuations among the top nb into the finished set.
        just_done = hits & top_nb_mask[None, :]
        done_lp = top_lp / ((cur_len + 1 - prompt_len) ** length_penalty)
        full = is_finished.all(dim=-1, keepdim=True) & (early_stopping is True)
        done_lp = done_lp + full.to(torch.float32) * -1.0e9
        done_lp = done_lp + (~can_improve).to(torch.float32) * -1.0e9
        done_lp = done_lp + (~just_done) * -1.0e9
        merged_lp = torch.cat((finished_scores, done_lp), dim=1)
        best = torch.topk(merged_lp, k=nb)[1]
        finished = _gather_beams(torch.cat((finished, top_seqs), dim=1), best)
        finished_scores = _gather_beams(merged_lp, best)
        finished_beam_idx = _gather_beams(torch.cat((finished_beam_idx, top_beam_idx), dim=1), best)
        is_finished = _gather_beams(torch.cat((is_finished, just_done), dim=1), best)

        inputs.reorder(running_beam_idx[..., cur_len - prompt_len].reshape(B * nb).long())
        cur_len += 1

        # Can a running beam still beat the worst finished one? (transformers' heuristic)
        if early_stopping == "never" and length_penalty > 0.0:
            best_len = max_length - prompt_len
        else:
            best_len = cur_len - prompt_len
        best_running = running_scores[:, :1] / (best_len**length_penalty)
        worst_done = torch.where(is_finished, finished_scores.min(dim=1, keepdim=True)[0], -1.0e9)
        can_improve = can_improve & (best_running > worst_done).any(dim=-1, keepdim=True)

        open_beams = not (bool(is_finished.all()) and early_stopping is True)
        if not (bool(can_improve.any()) and open_beams and not bool(hits.all())):
            break
        logits = inputs.step(running.view(B * nb, max_length), cur_len)

    n_return = config.num_return_sequences or 1
    sequences = finished[:, :n_return].reshape(B * n_return, max_length)
    seq_scores = finished_scores[:, :n_return].reshape(B * n_return)
    beam_indices = finished_beam_idx[:, :n_return].reshape(B * n_return, -1)
    generated = int((beam_indices + 1).bool().sum(dim=1).max())
    sequences = sequences[:, : prompt_len + generated]
    beam_indices = beam_indices[:, :generated]
    if not config.return_dict_in_generate:
        return sequences
    return GenerateBeamDecoderOnlyOutput(
        sequences=sequences,
        sequences_scores=seq_scores if config.output_scores else None,
        scores=tuple(scores_out) if want_scores else None,
        logits=tuple(logits_out) if want_logits else None,
        beam_indices=beam_indices.long(),
        past_key_values=inputs.cache,
    )
