"""``summarization``, ``translation`` (``translation_xx_to_yy``) and ``text2text-generation`` on a tiny random
T5 with a word-level tokenizer: transformers v4's output records, the config's task_specific_params (prefix and
generation settings), the expected text computed with transformers' own tokenizer and generate (v5 has no
such pipelines), and the ``xf pipeline`` command."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest
import torch

from xf_core.cli import main
from xf_pipeline import SummarizationPipeline, Text2TextGenerationPipeline, TranslationPipeline, pipeline

transformers = pytest.importorskip("transformers")

WORDS = [
    *("summarize", ":", "translate", "English", "to", "French", "the", "a", "cat", "dog", "sat", "on", "mat"),
    *("ran", "fast", "slow", "big", "small", "red", "blue", "house", "tree", "sun", "moon", "day", "night"),
]
TASK_PARAMS = {
    "summarization": {
        "prefix": "summarize : ",
        "num_beams": 2,
        "max_length": 9,
        "min_length": 3,
        "no_repeat_ngram_size": 2,
    },
    "translation_en_to_fr": {"prefix": "translate English to French : ", "max_length": 7},
}
TEXTS = ["the cat sat on the mat", "a big red dog ran fast", "sun"]


@pytest.fixture(scope="module")
def tiny_t5(tmp_path_factory) -> Path:
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    path = tmp_path_factory.mktemp("tiny-t5")
    vocab = {token: i for i, token in enumerate(["<pad>", "</s>", "<unk>", *WORDS])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    backend.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    backend.save(str(path / "tokenizer.json"))
    tokenizer_config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "pad_token": "<pad>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "model_max_length": 64,
    }
    (path / "tokenizer_config.json").write_text(json.dumps(tokenizer_config))
    torch.manual_seed(0)
    config = transformers.T5Config(
        vocab_size=len(vocab), d_model=32, d_kv=8, d_ff=48, num_layers=2, num_heads=4,
        relative_attention_num_buckets=8, relative_attention_max_distance=16, decoder_start_token_id=0,
        task_specific_params=TASK_PARAMS,
    )  # fmt: skip
    model = transformers.T5ForConditionalGeneration(config)
    with torch.no_grad():
        model.shared.weight.mul_(4.0)  # spread the logits: greedy and beam paths not decided by float noise
    model.save_pretrained(path)
    return path


def _expected(path: Path, texts: list[str], prefix: str, **generate_kwargs) -> list[str]:
    """What transformers v4's pipeline gave: prefix, tokenize (padded batch), generate, decode."""
    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    model = transformers.T5ForConditionalGeneration.from_pretrained(path).eval()
    out = []
    for text in texts:
        inputs = tokenizer([prefix + text], return_tensors="pt")
        with torch.no_grad():
            ids = model.generate(**inputs, **generate_kwargs)
        out.extend(tokenizer.decode(row, skip_special_tokens=True) for row in ids)
    return out


def _settings(key: str) -> tuple[str, dict]:
    params = dict(TASK_PARAMS[key])
    return params.pop("prefix"), params


def test_summarization_uses_task_params_and_matches_transformers(tiny_t5):
    summarizer = pipeline("summarization", model=str(tiny_t5))
    assert isinstance(summarizer, SummarizationPipeline)
    prefix, params = _settings("summarization")
    want = _expected(tiny_t5, TEXTS, prefix, **params)
    assert summarizer(TEXTS[0]) == [{"summary_text": want[0]}]
    assert summarizer(TEXTS) == [{"summary_text": text} for text in want]  # a list: one record per text
    assert summarizer(TEXTS, batch_size=2) == [{"summary_text": text} for text in want]


def test_call_keywords_override_task_params(tiny_t5):
    summarizer = pipeline("summarization", model=str(tiny_t5))
    prefix, params = _settings("summarization")
    params.update(num_beams=1, max_length=6)
    want = _expected(tiny_t5, TEXTS[:1], prefix, **params)
    assert summarizer(TEXTS[0], num_beams=1, max_length=6) == [{"summary_text": want[0]}]
    two = summarizer(TEXTS[:2], num_return_sequences=2)  # several records per text: a list of lists
    assert [len(records) for records in two] == [2, 2]
    ids = summarizer(TEXTS[0], return_tensors=True)
    assert list(ids[0]) == ["summary_token_ids"] and ids[0]["summary_token_ids"][0] == 0  # decoder start


def test_translation_alias_picks_the_language_pair(tiny_t5):
    translator = pipeline("translation_en_to_fr", model=str(tiny_t5))
    assert isinstance(translator, TranslationPipeline)
    prefix, params = _settings("translation_en_to_fr")
    want = _expected(tiny_t5, TEXTS[:2], prefix, **params)
    assert translator(TEXTS[:2]) == [{"translation_text": text} for text in want]
    plain = pipeline("translation", model=str(tiny_t5))  # no languages: no task params, no prefix
    assert plain(TEXTS[0], src_lang="en", tgt_lang="fr") == [{"translation_text": want[0]}]


def test_text2text_is_the_default_task_of_a_seq2seq_checkpoint(tiny_t5):
    generator = pipeline(model=str(tiny_t5))
    assert isinstance(generator, Text2TextGenerationPipeline)
    want = _expected(tiny_t5, TEXTS[:1], "", max_new_tokens=5)
    assert generator(TEXTS[0], max_new_tokens=5) == [{"generated_text": want[0]}]


def test_non_text_input_is_refused(tiny_t5):
    from xf_pipeline import PipelineInputError

    with pytest.raises(PipelineInputError, match="takes a text"):
        pipeline("summarization", model=str(tiny_t5))({"text": "x"})


def test_cli_runs_the_tasks(tiny_t5, capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    code = main(["pipeline", "translation_en_to_fr", "--model", str(tiny_t5), TEXTS[0], TEXTS[1]])
    out, err = capsys.readouterr()
    assert code == 0, err
    api = pipeline("translation_en_to_fr", model=str(tiny_t5))
    assert [json.loads(line) for line in out.splitlines()] == [api(TEXTS[0]), api(TEXTS[1])]
