"""Each logits processor against transformers' processor of the same name, on the same random inputs."""

import pytest
import torch

from xf_load.generation import (
    ForcedBOSTokenLogitsProcessor,
    ForcedEOSTokenLogitsProcessor,
    InfNanRemoveLogitsProcessor,
    MinLengthLogitsProcessor,
    MinNewTokensLengthLogitsProcessor,
    MinPLogitsWarper,
    NoBadWordsLogitsProcessor,
    NoRepeatNGramLogitsProcessor,
    RepetitionPenaltyLogitsProcessor,
    SequenceBiasLogitsProcessor,
    SuppressTokensAtBeginLogitsProcessor,
    SuppressTokensLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
    TypicalLogitsWarper,
)

hf = pytest.importorskip("transformers.generation.logits_process")

V = 40


def _inputs(seed: int = 0, rows: int = 3, length: int = 12):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, 8, (rows, length), generator=g)  # few distinct ids: repeats and n-grams happen
    scores = torch.randn(rows, V, generator=g) * 3
    return ids, scores


CASES = [
    (lambda: TemperatureLogitsWarper(0.7), lambda: hf.TemperatureLogitsWarper(0.7)),
    (lambda: TopKLogitsWarper(5), lambda: hf.TopKLogitsWarper(5)),
    (lambda: TopKLogitsWarper(1, min_tokens_to_keep=3), lambda: hf.TopKLogitsWarper(1, min_tokens_to_keep=3)),
    (lambda: TopPLogitsWarper(0.6), lambda: hf.TopPLogitsWarper(0.6)),
    (
        lambda: TopPLogitsWarper(0.01, min_tokens_to_keep=2),
        lambda: hf.TopPLogitsWarper(0.01, min_tokens_to_keep=2),
    ),
    (lambda: MinPLogitsWarper(0.2), lambda: hf.MinPLogitsWarper(0.2)),
    (lambda: TypicalLogitsWarper(0.7), lambda: hf.TypicalLogitsWarper(0.7)),
    (lambda: RepetitionPenaltyLogitsProcessor(1.3), lambda: hf.RepetitionPenaltyLogitsProcessor(1.3)),
    (lambda: RepetitionPenaltyLogitsProcessor(0.8, 4), lambda: hf.RepetitionPenaltyLogitsProcessor(0.8, 4)),
    (
        lambda: RepetitionPenaltyLogitsProcessor(1.5, torch.tensor([0, 3, 6])),
        lambda: hf.RepetitionPenaltyLogitsProcessor(1.5, prompt_ignore_length=torch.tensor([0, 3, 6])),
    ),
    (lambda: NoRepeatNGramLogitsProcessor(2), lambda: hf.NoRepeatNGramLogitsProcessor(2)),
    (lambda: NoRepeatNGramLogitsProcessor(3), lambda: hf.NoRepeatNGramLogitsProcessor(3)),
    (
        lambda: NoBadWordsLogitsProcessor([[3], [1, 2], [4, 5, 6], [7]], eos_token_id=7),
        lambda: hf.NoBadWordsLogitsProcessor([[3], [1, 2], [4, 5, 6], [7]], eos_token_id=7),
    ),
    (
        lambda: SequenceBiasLogitsProcessor({(3,): 2.0, (1, 2): -4.0}),
        lambda: hf.SequenceBiasLogitsProcessor({(3,): 2.0, (1, 2): -4.0}),
    ),
    (lambda: MinLengthLogitsProcessor(20, [2, 5]), lambda: hf.MinLengthLogitsProcessor(20, [2, 5])),
    (lambda: MinLengthLogitsProcessor(5, 2), lambda: hf.MinLengthLogitsProcessor(5, 2)),
    (
        lambda: MinNewTokensLengthLogitsProcessor(10, 3, 2),
        lambda: hf.MinNewTokensLengthLogitsProcessor(10, 3, 2),
    ),
    (lambda: ForcedEOSTokenLogitsProcessor(13, 4), lambda: hf.ForcedEOSTokenLogitsProcessor(13, 4)),
    (lambda: SuppressTokensLogitsProcessor([1, 9]), lambda: hf.SuppressTokensLogitsProcessor([1, 9])),
    (
        lambda: SuppressTokensAtBeginLogitsProcessor([1, 9], 12),
        lambda: hf.SuppressTokensAtBeginLogitsProcessor([1, 9], 12),
    ),
]


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize(("ours", "theirs"), CASES)
def test_processor_matches_transformers(ours, theirs, seed):
    ids, scores = _inputs(seed)
    expected = theirs()(ids, scores.clone())
    torch.testing.assert_close(ours()(ids, scores.clone()), expected, rtol=0, atol=0)


def test_forced_bos_and_inf_nan_removal_match_transformers():
    ids, scores = _inputs(length=1)
    torch.testing.assert_close(
        ForcedBOSTokenLogitsProcessor(3)(ids, scores), hf.ForcedBOSTokenLogitsProcessor(3)(ids, scores)
    )
    scores[0, 1], scores[1, 2], scores[2, 3] = float("nan"), float("inf"), -float("inf")
    torch.testing.assert_close(
        InfNanRemoveLogitsProcessor()(ids, scores), hf.InfNanRemoveLogitsProcessor()(ids, scores)
    )


def test_bad_token_ids_beyond_the_vocabulary_are_reported():
    ids, scores = _inputs()
    with pytest.raises(ValueError, match="exceed the vocabulary"):
        NoBadWordsLogitsProcessor([[V + 5]])(ids, scores)
