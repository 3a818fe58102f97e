"""Pipelines across packages and libraries: tokenizer + model + pipeline from one directory saved by xf,
checkpoints saved by xf used by transformers' pipeline, and the reverse."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import transformers

from xf_core.testing import copy_minilm_tokenizer
from xf_load import AutoModelForCausalLM, AutoModelForTokenClassification
from xf_load.testing import MINILM_BERT, save_tiny_transformers_checkpoint
from xf_pipeline import pipeline
from xf_tokenize import AutoTokenizer

TEXTS = ["John Smith lives in Berlin.", "Mary visited the Louvre in Paris last spring."]
LABELS = {0: "O", 1: "B-PER", 2: "I-PER", 3: "B-LOC", 4: "I-LOC"}


def same(a, b, tol=1e-4):
    if isinstance(a, dict):
        return set(a) == set(b) and all(same(a[k], b[k], tol) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y, tol) for x, y in zip(a, b))
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(float(a), float(b), rel_tol=tol, abs_tol=tol)
    return a == b


@pytest.fixture(scope="module")
def hf_ner_dir(tmp_path_factory) -> Path:
    """A tiny BERT token classifier and MiniLM's tokenizer, saved by transformers."""
    path = tmp_path_factory.mktemp("hf-ner")
    label2id = {v: k for k, v in LABELS.items()}
    save_tiny_transformers_checkpoint(
        "BertForTokenClassification", path, **MINILM_BERT, id2label=LABELS, label2id=label2id
    )
    return copy_minilm_tokenizer(path)


def hf_ner(path: Path):
    return transformers.pipeline("token-classification", model=str(path), aggregation_strategy="simple")


def test_tokenizer_model_and_pipeline_from_one_directory_saved_by_xf(hf_ner_dir, tmp_path):
    AutoTokenizer.from_pretrained(hf_ner_dir).save_pretrained(tmp_path)
    AutoModelForTokenClassification.from_pretrained(hf_ner_dir).save_pretrained(tmp_path)
    xf = pipeline(model=str(tmp_path), aggregation_strategy="simple")  # task read from config.architectures
    assert xf.task == "token-classification"
    assert same(xf(TEXTS), hf_ner(hf_ner_dir)(TEXTS))


def test_xf_saved_checkpoint_in_transformers_pipeline_and_the_reverse(hf_ner_dir, tmp_path):
    xf_saved = tmp_path / "xf"
    AutoTokenizer.from_pretrained(hf_ner_dir).save_pretrained(xf_saved)
    AutoModelForTokenClassification.from_pretrained(hf_ner_dir).save_pretrained(xf_saved)
    from_hf_files = pipeline("ner", model=str(hf_ner_dir), aggregation_strategy="simple")(TEXTS)
    assert same(hf_ner(xf_saved)(TEXTS), from_hf_files)  # transformers reads what xf wrote


def test_gpt2_checkpoint_saved_by_xf_in_both_libraries(tmp_path):
    hf_dir, xf_dir = tmp_path / "hf", tmp_path / "xf"
    save_tiny_transformers_checkpoint(
        "GPT2LMHeadModel", hf_dir, vocab_size=30522, bos_token_id=101, eos_token_id=102
    )
    copy_minilm_tokenizer(hf_dir)
    model = AutoModelForCausalLM.from_pretrained(hf_dir)
    model.save_pretrained(xf_dir)
    tokenizer = AutoTokenizer.from_pretrained(hf_dir)
    tokenizer.save_pretrained(xf_dir)
    # the bare model under the LM head, through both libraries' feature-extraction pipelines
    ours = pipeline("feature-extraction", model=str(xf_dir))(TEXTS)
    theirs = transformers.pipeline("feature-extraction", model=str(xf_dir))(TEXTS)
    assert same(ours, theirs)
    # the generation pipeline is the model's own greedy generate, decoded
    generated = pipeline("text-generation", model=str(xf_dir))(
        "the cat sat", max_new_tokens=5, do_sample=False
    )
    ids = tokenizer("the cat sat", return_tensors="pt", add_special_tokens=False)
    expected = model.generate(
        input_ids=ids["input_ids"], attention_mask=ids["attention_mask"], max_new_tokens=5, do_sample=False
    )[0, 3:].tolist()
    assert generated == [
        {"generated_text": "the cat sat" + tokenizer.decode(expected, skip_special_tokens=True)}
    ]
