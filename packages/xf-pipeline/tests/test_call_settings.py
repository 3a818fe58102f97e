"""Per-call settings of a pipeline: batch_size checks, empty input, and threads sharing one pipeline."""

from __future__ import annotations

import random
import threading

import pytest

from xf_pipeline import pipeline
from xf_pipeline.errors import PipelineParameterError

TEXTS = [
    "a short one",
    "a rather longer sentence that runs on well past the truncation length used in these tests",
    "hello world",
    "the quick brown fox jumps over the lazy dog again and again",
]


@pytest.fixture(scope="module")
def classifier(tiny_bert):
    return pipeline("text-classification", model=str(tiny_bert("sequence")))


@pytest.mark.parametrize("bad", [0, -1, 2.5, "4", True])
def test_batch_size_below_one_or_not_an_int_is_refused_at_call_and_build_time(classifier, tiny_bert, bad):
    with pytest.raises(PipelineParameterError, match="batch_size") as info:
        classifier(TEXTS, batch_size=bad)
    assert info.value.parameter == "batch_size" and repr(bad) in str(info.value)
    with pytest.raises(PipelineParameterError, match="batch_size"):
        pipeline("text-classification", model=str(tiny_bert("sequence")), batch_size=bad)


def test_empty_list_gives_an_empty_list_as_transformers(classifier):
    assert classifier([]) == []
    assert classifier([], batch_size=4) == []
    assert list(classifier(iter([]))) == []


def test_threads_sharing_a_pipeline_each_get_their_own_call_settings(classifier):
    settings = [
        {"top_k": 1},
        {"top_k": 2, "truncation": True, "max_length": 6},
        {"top_k": None},
        {"function_to_apply": "none", "truncation": True, "max_length": 9},
        {"batch_size": 3, "top_k": 3, "truncation": True, "max_length": 7},
        {},
    ]
    alone = [classifier(TEXTS, **kwargs) for kwargs in settings]
    assert len({repr(result) for result in alone}) == len(settings)  # each setting changes the result
    wrong: list[int] = []
    errors: list[BaseException] = []
    start = threading.Barrier(6)

    def work(seed: int) -> None:
        rng = random.Random(seed)
        start.wait()
        try:
            for _ in range(25):
                index = rng.randrange(len(settings))
                if classifier(TEXTS, **settings[index]) != alone[index]:
                    wrong.append(index)
        except BaseException as e:  # reported below, not lost in the thread
            errors.append(e)

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors[0]
    assert not wrong, (
        f"{len(wrong)} of 150 calls got another caller's settings (settings {sorted(set(wrong))})"
    )
