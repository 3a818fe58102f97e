"""BART against transformers (the test-only oracle) on a tiny random checkpoint transformers saved: logits and
losses (fp32, 1e-5), the offset learned positions under a cache, the shared embeddings and the logits bias,
saves that transformers loads back, the base model and the position limit."""

from __future__ import annotations

import pytest
import torch

from xf_core.errors import XfConfigError, XfValueError
from xf_core.testing import temporary_directory
from xf_load import AutoModel, AutoModelForSeq2SeqLM, HeadKind, head_kind_of
from xf_load.models.bart import BartConfig, BartForConditionalGeneration, BartModel

transformers = pytest.importorskip("transformers")

ATOL = 1e-5
VOCAB = 99
TINY = {
    "vocab_size": VOCAB,
    "d_model": 32,
    "encoder_layers": 2,
    "decoder_layers": 3,
    "encoder_attention_heads": 4,
    "decoder_attention_heads": 2,
    "encoder_ffn_dim": 48,
    "decoder_ffn_dim": 40,
    "max_position_embeddings": 24,
    "scale_embedding": True,
}


@pytest.fixture(scope="module")
def checkpoint():
    torch.manual_seed(0)
    model = transformers.BartForConditionalGeneration(transformers.BartConfig(**TINY))
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():  # random norms and logits bias, so that a misplaced norm or a dropped bias shows
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(1 + 0.5 * torch.randn(p.shape, generator=g))
        model.final_logits_bias.copy_(torch.randn(model.final_logits_bias.shape, generator=g))
    with temporary_directory() as path:
        model.save_pretrained(path)
        yield path


def _inputs():
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(3, VOCAB, (3, 9), generator=g)
    mask = torch.ones_like(ids)
    ids[1, 6:], mask[1, 6:] = 1, 0
    ids[2, 8:], mask[2, 8:] = 1, 0
    labels = torch.randint(3, VOCAB, (3, 6), generator=g)
    labels[0, 4:] = -100
    return ids, mask, labels


def test_logits_and_loss_match_transformers(checkpoint):
    hf = transformers.BartForConditionalGeneration.from_pretrained(checkpoint).eval()
    xf, info = AutoModelForSeq2SeqLM.from_pretrained(checkpoint, output_loading_info=True)
    assert info["missing_keys"] == info["unexpected_keys"] == info["mismatched_keys"] == []
    assert type(xf) is BartForConditionalGeneration and head_kind_of(xf) == HeadKind.SEQ2SEQ_LM
    ids, mask, labels = _inputs()
    with torch.no_grad():
        for kwargs in ({"labels": labels}, {}):  # no labels: the decoder reads the shifted input ids
            want = hf(input_ids=ids, attention_mask=mask, **kwargs)
            got = xf(input_ids=ids, attention_mask=mask, **kwargs)
            torch.testing.assert_close(got.logits, want.logits, atol=ATOL, rtol=0)
        torch.testing.assert_close(
            got.encoder_last_hidden_state, want.encoder_last_hidden_state, atol=ATOL, rtol=0
        )
        torch.testing.assert_close(
            xf(input_ids=ids, attention_mask=mask, labels=labels).loss,
            hf(input_ids=ids, attention_mask=mask, labels=labels).loss,
            atol=ATOL,
            rtol=0,
        )


def test_cached_decoding_matches_the_full_forward(checkpoint):
    xf = AutoModelForSeq2SeqLM.from_pretrained(checkpoint)
    ids, mask, labels = _inputs()
    dec = labels.clamp(min=3)
    with torch.no_grad():
        full = xf(input_ids=ids, attention_mask=mask, decoder_input_ids=dec).logits
        first = xf(input_ids=ids, attention_mask=mask, decoder_input_ids=dec[:, :2], use_cache=True)
        cache, steps = first.past_key_values, [first.logits]
        for t in range(2, dec.shape[1]):  # positions continue from the cache
            out = xf(
                encoder_outputs=(first.encoder_last_hidden_state,),
                attention_mask=mask,
                decoder_input_ids=dec[:, t : t + 1],
                past_key_values=cache,
                use_cache=True,
            )
            steps.append(out.logits)
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=ATOL, rtol=0)
    assert len(cache.cross_attention_cache) == 3


def test_shared_embeddings_bias_and_save_round_trip(checkpoint):
    xf = BartForConditionalGeneration.from_pretrained(checkpoint)
    shared = xf.model.shared.weight
    assert xf.lm_head.weight is shared
    assert xf.model.encoder.embed_tokens.weight is shared and xf.model.decoder.embed_tokens.weight is shared
    assert xf.final_logits_bias.abs().sum() > 0  # read from the checkpoint, not re-initialised
    ids, mask, labels = _inputs()
    with temporary_directory() as path:
        xf.save_pretrained(path)
        hf = transformers.BartForConditionalGeneration.from_pretrained(path).eval()
    with torch.no_grad():
        want = xf(input_ids=ids, attention_mask=mask, labels=labels).logits
        torch.testing.assert_close(
            hf(input_ids=ids, attention_mask=mask, labels=labels).logits, want, atol=ATOL, rtol=0
        )


def test_base_model_matches_transformers(checkpoint):
    xf = AutoModel.from_pretrained(checkpoint)
    assert type(xf) is BartModel
    hf = transformers.BartModel.from_pretrained(checkpoint).eval()
    ids, mask, _ = _inputs()
    with torch.no_grad():
        torch.testing.assert_close(
            xf(input_ids=ids, attention_mask=mask).last_hidden_state,
            hf(input_ids=ids, attention_mask=mask).last_hidden_state,
            atol=ATOL,
            rtol=0,
        )


def test_inputs_past_the_learned_positions_are_refused(checkpoint):
    xf = BartForConditionalGeneration.from_pretrained(checkpoint)
    too_long = torch.full((1, TINY["max_position_embeddings"] + 1), 5)
    with pytest.raises(XfValueError, match="max_position_embeddings=24"):
        xf(input_ids=too_long)


def test_bad_configs_name_the_key():
    with pytest.raises(XfConfigError) as caught:
        BartConfig(d_model=30, encoder_attention_heads=4)
    assert caught.value.key == "encoder_attention_heads"
    with pytest.raises(XfConfigError) as caught:
        BartConfig(activation_function="nope")
    assert caught.value.key == "activation_function"
