"""The postprocessing math on hand-made numbers: each expected value is worked out in the comment."""

import math

import pytest
import torch

from xf_pipeline._math import (
    aggregate,
    apply_function,
    best_spans,
    group_entities,
    merge_overlapping_entities,
    pool,
    select_spans,
    top_k_tokens,
    zero_shot_scores,
)

LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


def _pre(word, probs, start, end, index, is_subword=False):
    return {
        "word": word,
        "scores": torch.tensor(probs),
        "start": start,
        "end": end,
        "index": index,
        "is_subword": is_subword,
    }


def _join(tokens):
    return " ".join(tokens).replace(" ##", "")


# "john smith went to ber ##lin": smith is I-PER, ##lin disagrees with ber.
PRE = [
    _pre("john", [0.1, 0.7, 0.1, 0.05, 0.05], 0, 4, 1),
    _pre("smith", [0.1, 0.1, 0.6, 0.1, 0.1], 5, 10, 2),
    _pre("went", [0.9, 0.025, 0.025, 0.025, 0.025], 11, 15, 3),
    _pre("ber", [0.1, 0.1, 0.1, 0.6, 0.1], 19, 22, 5),
    _pre("##lin", [0.1, 0.7, 0.1, 0.05, 0.05], 22, 25, 6, is_subword=True),
]


def _aggregate(strategy):
    return aggregate(PRE, strategy, id2label=LABELS.__getitem__, join_tokens=_join)


def test_aggregation_none_is_one_entity_per_token():
    out = _aggregate("none")
    assert [e["entity"] for e in out] == ["B-PER", "I-PER", "O", "B-LOC", "B-PER"]
    assert out[0] == {
        "entity": "B-PER",
        "score": pytest.approx(0.7),
        "index": 1,
        "word": "john",
        "start": 0,
        "end": 4,
    }


def test_aggregation_simple_groups_adjacent_tags_and_splits_on_b():
    out = _aggregate("simple")
    assert [(e["entity_group"], e["word"], e["start"], e["end"]) for e in out] == [
        ("PER", "john smith", 0, 10),
        ("O", "went", 11, 15),
        ("LOC", "ber", 19, 22),
        ("PER", "##lin", 22, 25),  # a B- tag starts a new group even inside a word
    ]
    assert out[0]["score"] == pytest.approx((0.7 + 0.6) / 2)


def test_aggregation_first_average_max_agree_on_word_boundaries():
    # first: "berlin" takes ber's B-LOC (0.6)
    first = _aggregate("first")
    assert (first[-1]["entity_group"], first[-1]["word"], first[-1]["score"]) == (
        "LOC",
        "berlin",
        pytest.approx(0.6),
    )
    # max: ##lin's 0.7 (B-PER) beats ber's 0.6
    assert _aggregate("max")[-1]["entity_group"] == "PER"
    # average: mean of both rows = [0.1, 0.4, 0.1, 0.325, 0.075] -> B-PER at 0.4
    average = _aggregate("average")[-1]
    assert (average["entity_group"], average["score"]) == ("PER", pytest.approx(0.4))
    assert all(e["start"] == 19 and e["end"] == 25 for e in (first[-1], average))


def test_aggregation_rejects_unknown_strategy():
    with pytest.raises(ValueError, match="aggregation_strategy"):
        _aggregate("longest")


def test_group_entities_treats_non_bio_labels_as_continuations():
    ents = [
        {"entity": "MISC", "score": 0.5, "word": "a", "start": 0, "end": 1},
        {"entity": "MISC", "score": 1.0, "word": "b", "start": 2, "end": 3},
    ]
    assert group_entities(ents, join_tokens=_join) == [
        {"entity_group": "MISC", "score": 0.75, "word": "a b", "start": 0, "end": 3}
    ]


def test_merge_overlapping_keeps_longest_then_most_confident():
    ents = [
        {"start": 0, "end": 5, "score": 0.9},
        {"start": 2, "end": 9, "score": 0.1},  # overlaps and is longer: wins
        {"start": 10, "end": 12, "score": 0.3},
        {"start": 10, "end": 12, "score": 0.8},  # same length, more confident: wins
    ]
    assert merge_overlapping_entities(ents) == [ents[1], ents[3]]
    assert merge_overlapping_entities([]) == []


def test_apply_function():
    logits = torch.tensor([0.0, math.log(3.0)])
    assert apply_function(logits, "softmax").tolist() == pytest.approx([0.25, 0.75])
    assert apply_function(logits, "sigmoid").tolist() == pytest.approx([0.5, 0.75])
    assert apply_function(logits, "none").tolist() == pytest.approx([0.0, math.log(3.0)])
    with pytest.raises(ValueError, match="function_to_apply"):
        apply_function(logits, "tanh")


def test_pool_ignores_padding():
    hidden = torch.tensor([[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]])
    mask = torch.tensor([1, 1, 0])
    assert pool(hidden, mask, "mean").tolist() == [2.0, 3.0]
    assert pool(hidden, mask, "cls").tolist() == [1.0, 2.0]
    assert pool(hidden, mask, "none") is hidden


def test_top_k_tokens_with_and_without_targets():
    logits = torch.log(torch.tensor([[0.1, 0.2, 0.3, 0.4]]))
    assert top_k_tokens(logits, top_k=2) == [[(pytest.approx(0.4), 3), (pytest.approx(0.3), 2)]]
    # targets: only 0 and 2 compete, top_k capped at 2, probabilities from the full softmax
    assert top_k_tokens(logits, top_k=5, target_ids=[0, 2]) == [
        [(pytest.approx(0.3), 2), (pytest.approx(0.1), 0)]
    ]


def test_zero_shot_scores():
    # rows: candidates; columns: contradiction, neutral, entailment
    logits = torch.tensor([[0.0, 5.0, math.log(3.0)], [math.log(3.0), 0.0, 0.0]])
    single = zero_shot_scores(logits, entailment_id=2, multi_label=False)
    assert single == pytest.approx([0.75, 0.25])  # softmax of entailment logits across candidates
    multi = zero_shot_scores(logits, entailment_id=2, multi_label=True)
    assert multi == pytest.approx([0.75, 0.25])  # entail vs contradiction per candidate: 3:1 and 1:3
    assert zero_shot_scores(logits[:1], entailment_id=2, multi_label=False) == pytest.approx([0.75])


def test_best_spans_respects_order_length_and_allowed():
    start = torch.tensor([0.0, 0.5, 0.1, 0.4])
    end = torch.tensor([0.0, 0.1, 0.2, 0.7])
    allowed = torch.tensor([True, True, True, True])
    # best: (1, 3) = 0.35; (3, 3) = 0.28; end before start never counts
    assert best_spans(start, end, top_k=2, max_answer_len=15, allowed=allowed) == [
        (1, 3, pytest.approx(0.35)),
        (3, 3, pytest.approx(0.28)),
    ]
    # at most 2 tokens long: (1, 3) is out and (3, 3) = 0.28 is the best left
    assert best_spans(start, end, top_k=2, max_answer_len=2, allowed=allowed)[0][:2] == (3, 3)
    no_three = torch.tensor([True, True, True, False])
    assert best_spans(start, end, top_k=1, max_answer_len=15, allowed=no_three) == []


def test_select_spans_masks_question_and_scores_null_answer():
    start = torch.tensor([2.0, 9.0, 1.0, 1.0])
    end = torch.tensor([2.0, 9.0, 0.0, 3.0])
    p_mask = torch.tensor([0, 1, 0, 0])  # token 1 is the question: never part of an answer
    spans, null = select_spans(
        start,
        end,
        p_mask=p_mask,
        attention_mask=None,
        top_k=1,
        max_answer_len=15,
        handle_impossible_answer=True,
    )
    # softmax over tokens 0, 2, 3 (token 1 -> -10000): start = e^[2,1,1]/Z, end = e^[2,0,3]/Z'
    zs, ze = math.e**2 + 2 * math.e, math.e**2 + 1 + math.e**3
    assert null == pytest.approx((math.e**2 / zs) * (math.e**2 / ze))
    assert spans == [(2, 3, pytest.approx((math.e / zs) * (math.e**3 / ze)))]
