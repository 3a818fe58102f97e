"""Fixtures wired from ``xf_load.testing`` and ``xf_core.testing``: tiny random checkpoints saved by
transformers (the test-only oracle) next to real or freshly trained tokenizer files, and the real
all-MiniLM-L6-v2 files."""

from __future__ import annotations

from pathlib import Path

import pytest

from xf_core import testing as core_testing
from xf_load import testing

LABELS = {
    "token": {0: "O", 1: "B-PER", 2: "I-PER", 3: "B-LOC", 4: "I-LOC", 5: "MISC"},
    "sequence": {0: "NEGATIVE", 1: "POSITIVE", 2: "NEUTRAL"},
    "nli": {0: "contradiction", 1: "neutral", 2: "entailment"},
}

BERT_HEADS = {
    "base": ("BertModel", None),
    "mlm": ("BertForMaskedLM", None),
    "sequence": ("BertForSequenceClassification", "sequence"),
    "token": ("BertForTokenClassification", "token"),
    "nli": ("BertForSequenceClassification", "nli"),
    "qa": ("BertForQuestionAnswering", None),
}

GPT2_TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "Hello world, this is a tiny tokenizer for tests.",
    "Once upon a time there was a model that wrote stories.",
]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    return core_testing.minilm_dir()


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory):
    """``tiny_bert(head)`` -> directory of a tiny BERT with that head and MiniLM's tokenizer (its
    model_max_length lowered to 128, so long-input handling is exercised by short tests)."""
    root = tmp_path_factory.mktemp("tiny-bert")
    made: dict[str, Path] = {}

    def get(head: str) -> Path:
        if head not in made:
            class_name, labels = BERT_HEADS[head]
            names = LABELS[labels] if labels else None
            label_kwargs = {"id2label": names, "label2id": {v: k for k, v in names.items()}} if names else {}
            model = testing.tiny_transformers_model(
                class_name, seed=len(made) + 1, **testing.MINILM_BERT, **label_kwargs
            )
            if head == "qa":  # random QA heads are near-flat; sharpen them so spans differ clearly
                model.qa_outputs.weight.data.mul_(50)
            model.save_pretrained(root / f"bert-{head}")
            made[head] = core_testing.copy_minilm_tokenizer(root / f"bert-{head}", model_max_length=128)
        return made[head]

    return get


@pytest.fixture(scope="session")
def tiny_gpt2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny GPT-2 with a small byte-level BPE tokenizer (and a chat template) trained here."""
    path = tmp_path_factory.mktemp("tiny-gpt2")
    special = "<|endoftext|>"
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "chat_template": CHAT_TEMPLATE}
    config |= {"bos_token": special, "eos_token": special, "unk_token": special}
    core_testing.write_byte_level_bpe(
        path, GPT2_TEXTS * 20, vocab_size=400, special_tokens=[special], tokenizer_config=config, fast=True
    )
    from tokenizers import Tokenizer

    vocab_size = Tokenizer.from_file(str(path / "tokenizer.json")).get_vocab_size()
    return testing.save_tiny_transformers_checkpoint(
        "GPT2LMHeadModel", path, vocab_size=vocab_size, n_positions=128
    )
