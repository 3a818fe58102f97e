"""The real all-MiniLM-L6-v2 (a BERT encoder) quantized: parity with transformers' bnb model, and the
feature-extraction pipeline built on it."""

import functools

import pytest
import torch
from transformers import BitsAndBytesConfig as HFBitsAndBytesConfig

from xf_core.testing import minilm_dir
from xf_load.auto import AutoModel
from xf_load.testing import load_with_transformers
from xf_quant import BitsAndBytesConfig, is_bnb_module

INT8 = {"load_in_8bit": True}
NF4 = {"load_in_4bit": True, "bnb_4bit_quant_type": "nf4"}


@pytest.fixture(scope="module")
def minilm():
    return str(minilm_dir())


_hf_model = functools.partial(load_with_transformers, arch="AutoModel")  # same kernels as xf-quant


def _quantized(model):
    return sorted(n for n, m in model.named_modules() if is_bnb_module(m))


def test_quantized_bert_matches_transformers_both_ways(minilm, tmp_path):
    ids = torch.tensor([[101, 1996, 4937, 2938, 2006, 1996, 13523, 102]])
    model = AutoModel.from_pretrained(minilm, quantization_config=BitsAndBytesConfig(**NF4))
    assert len(_quantized(model)) == 36 and not is_bnb_module(
        model.pooler.dense
    )  # the last module stays float
    # transformers means to keep the last parameter's module too, but only when that parameter is a weight:
    # pooler.dense (last parameter: its bias) is quantized there unless listed.
    oracle = _hf_model(
        minilm, quantization_config=HFBitsAndBytesConfig(**NF4, llm_int8_skip_modules=["pooler"])
    )
    assert _quantized(model) == _quantized(oracle)
    with torch.no_grad():
        ours = model(ids)
        torch.testing.assert_close(ours.pooler_output, oracle(input_ids=ids).pooler_output, rtol=0, atol=1e-5)

    # xf's checkpoint names the float layers, so transformers rebuilds the same model from it ...
    model.save_pretrained(tmp_path / "xf")
    with torch.no_grad():
        theirs = _hf_model(tmp_path / "xf")(input_ids=ids).pooler_output
    torch.testing.assert_close(theirs, ours.pooler_output, rtol=0, atol=1e-5)
    # ... and a checkpoint transformers quantized with its own default (pooler included) loads in xf.
    default = _hf_model(minilm, quantization_config=HFBitsAndBytesConfig(**NF4))
    assert "pooler.dense" in _quantized(default)
    default.save_pretrained(tmp_path / "hf")
    again = AutoModel.from_pretrained(tmp_path / "hf")
    assert _quantized(again) == _quantized(default)
    with torch.no_grad():
        want = default(input_ids=ids).pooler_output
        torch.testing.assert_close(again(ids).pooler_output, want, rtol=0, atol=1e-5)


def test_feature_extraction_pipeline_on_a_quantized_model(minilm):
    from xf_pipeline import pipeline

    texts = ["the cat sat on the mat", "quantized models are small and fast"]
    reference = pipeline("feature-extraction", model=minilm)(texts)
    config = BitsAndBytesConfig(**INT8)
    pipe = pipeline("feature-extraction", model=minilm, model_kwargs={"quantization_config": config})
    assert pipe.model.is_quantized
    for want, got in zip(reference, pipe(texts)):
        want, got = torch.tensor(want), torch.tensor(got)
        assert got.shape == want.shape
        # Sentence embeddings (mean over tokens) point the same way as the float model's: int8 keeps ~7 bits
        # per weight; the measured cosine is ~0.999, a wrong or unquantized layer gives far less.
        cosine = torch.cosine_similarity(want.reshape(-1, 384).mean(0), got.reshape(-1, 384).mean(0), dim=0)
        assert cosine > 0.995, cosine
