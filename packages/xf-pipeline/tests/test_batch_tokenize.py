"""The batch path tokenizes a batch of items in one tokenizer call (the Rust backend encodes them in
parallel), not item by item, and gives the same results as one item at a time."""

from __future__ import annotations

import math

import pytest

from xf_pipeline import pipeline

TEXTS = [
    "short",
    "John Smith lives in Berlin.",
    "a somewhat longer sentence with several more words in it",
    "x " * 60,
    "the end",
    "Paris is in France.",
    "one more",
]
LABELS = ["a", "b", "c"]


class CountingTokenizer:
    """Delegates to a tokenizer and records how many texts each direct call was given."""

    def __init__(self, inner):
        self.inner = inner
        self.calls: list[int] = []
        self.chat_calls: list[int] = []

    def __call__(self, text, *args, **kwargs):
        self.calls.append(len(text) if isinstance(text, list) else 1)
        return self.inner(text, *args, **kwargs)

    def apply_chat_template(self, conversation, *args, **kwargs):
        self.chat_calls.append(len(conversation))
        return self.inner.apply_chat_template(conversation, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def counted(task, path, **kwargs):
    pipe = pipeline(task, model=str(path), **kwargs)
    pipe.tokenizer = CountingTokenizer(pipe.tokenizer)
    return pipe, pipe.tokenizer


def close(a, b, tol=1e-4):
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(close(a[k], b[k], tol) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(close(x, y, tol) for x, y in zip(a, b))
    if isinstance(a, float):
        return math.isclose(a, b, rel_tol=tol, abs_tol=tol)
    return a == b


CASES = [
    ("feature-extraction", "base", TEXTS, {}, 1),
    ("text-classification", "sequence", TEXTS, {"top_k": None}, 1),
    ("fill-mask", "mlm", [f"{t} [MASK]." for t in TEXTS], {}, 1),
    ("token-classification", "token", TEXTS, {"aggregation_strategy": "simple"}, 1),
    (
        "token-classification",
        "token",
        TEXTS,
        {"aggregation_strategy": "simple", "stride": 4, "max_length": 16},  # long texts: several windows
        1,
    ),
    ("zero-shot-classification", "nli", TEXTS, {"candidate_labels": LABELS}, len(LABELS)),
    (
        "question-answering",
        "qa",
        [{"question": "Who lives where?", "context": t} for t in TEXTS],
        {},
        1,
    ),
]


@pytest.mark.parametrize(
    ("task", "head", "items", "kwargs", "per_item"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)]
)
def test_one_tokenizer_call_per_batch_and_the_same_results(tiny_bert, task, head, items, kwargs, per_item):
    pipe, tokenizer = counted(task, tiny_bert(head), **kwargs)
    one_by_one = [pipe(item) for item in items]
    assert tokenizer.calls == [per_item] * len(items)

    tokenizer.calls.clear()
    streamed = list(pipe(iter(items), batch_size=3))  # a generator: 3 items, 3 items, then 1
    assert tokenizer.calls == [3 * per_item, 3 * per_item, per_item]
    assert close(streamed, one_by_one)

    tokenizer.calls.clear()
    listed = pipe(items, batch_size=3)
    if not pipe.chunked:  # a list of unchunked inputs is tokenized whole, then batched by length
        assert tokenizer.calls == [len(items)]
    else:
        assert tokenizer.calls == [3 * per_item, 3 * per_item, per_item]
    assert close(listed, one_by_one)


def test_text_classification_pairs_and_single_texts_in_one_batch(tiny_bert):
    pipe, tokenizer = counted("text-classification", tiny_bert("sequence"), top_k=None)
    items = ["good", {"text": "a premise", "text_pair": "a hypothesis"}, "bad", {"text": "alone"}]
    one_by_one = [pipe(item) for item in items]
    tokenizer.calls.clear()
    assert close(pipe(items, batch_size=4), one_by_one)
    assert sorted(tokenizer.calls) == [1, 3]  # texts alone in one call, pairs in the other


def test_text_generation_batches_prompts_and_chats(tiny_gpt2):
    pipe, tokenizer = counted("text-generation", tiny_gpt2, max_new_tokens=3, do_sample=False)
    chat = [{"role": "user", "content": "Hello world"}]
    items = ["Once upon a time", chat, "The quick brown", [*chat, {"role": "assistant", "content": "hi"}]]
    one_by_one = [pipe(item) for item in items]
    tokenizer.calls.clear()
    tokenizer.chat_calls.clear()
    assert pipe(items, batch_size=4) == one_by_one
    assert tokenizer.calls == [2] and tokenizer.chat_calls == [2]
