"""T5 (original and v1.1) against transformers (the test-only oracle) on tiny random checkpoints that
transformers saved: logits and losses (fp32, 1e-5), the cached decoder, tied and untied heads, saves that
transformers loads back, the auto classes, the relative position buckets and the config errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from xf_core.errors import XfConfigError
from xf_core.testing import temporary_directory
from xf_load import AutoConfig, AutoModel, AutoModelForSeq2SeqLM, HeadKind, head_kind_of
from xf_load.models.t5 import T5Config, T5ForConditionalGeneration, T5Model, relative_position_bucket

transformers = pytest.importorskip("transformers")

ATOL = 1e-5
VOCAB = 99
T5_TINY = {
    "vocab_size": VOCAB,
    "d_model": 32,
    "d_kv": 8,
    "d_ff": 48,
    "num_layers": 2,
    "num_decoder_layers": 3,
    "num_heads": 4,
    "relative_attention_num_buckets": 8,
    "relative_attention_max_distance": 16,
    "decoder_start_token_id": 0,
}


def _perturb_norms(model: torch.nn.Module) -> None:
    """Random norm weights, so that a misplaced norm shows."""
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(1 + 0.5 * torch.randn(p.shape, generator=g))


def save_tiny(kind: str, path: str) -> None:
    """A seeded random checkpoint saved by transformers: ``t5`` (ReLU, tied head: the output is rescaled) or
    ``t5_v11`` (gated-GELU, its own ``lm_head`` as in google/t5-v1_1-*)."""
    torch.manual_seed(0)
    extra = {"feed_forward_proj": "gated-gelu"} if kind == "t5_v11" else {}
    model = transformers.T5ForConditionalGeneration(transformers.T5Config(**T5_TINY, **extra))
    _perturb_norms(model)
    model.save_pretrained(path)
    if kind == "t5_v11":  # an untied head, written as the Hub's v1.1 checkpoints have it
        weights = load_file(f"{path}/model.safetensors")
        weights["lm_head.weight"] = torch.randn(VOCAB, T5_TINY["d_model"])
        save_file(weights, f"{path}/model.safetensors", metadata={"format": "pt"})
        config_file = Path(path) / "config.json"
        config = json.loads(config_file.read_text())
        config["tie_word_embeddings"] = False
        config.pop("scale_decoder_outputs", None)
        config_file.write_text(json.dumps(config))


@pytest.fixture(scope="module")
def checkpoints():
    with temporary_directory() as root:
        paths = {}
        for kind in ("t5", "t5_v11"):
            paths[kind] = f"{root}/{kind}"
            save_tiny(kind, paths[kind])
        yield paths


def _inputs():
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(3, VOCAB, (3, 9), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    mask[2, 8:] = 0
    labels = torch.randint(3, VOCAB, (3, 6), generator=g)
    labels[0, 4:] = -100
    return ids, mask, labels


def _hf(path):
    return transformers.AutoModelForSeq2SeqLM.from_pretrained(path).eval()


@pytest.mark.parametrize("kind", ["t5", "t5_v11"])
def test_logits_and_loss_match_transformers(checkpoints, kind):
    hf = _hf(checkpoints[kind])
    xf, info = AutoModelForSeq2SeqLM.from_pretrained(checkpoints[kind], output_loading_info=True)
    assert info["missing_keys"] == info["unexpected_keys"] == info["mismatched_keys"] == []
    assert head_kind_of(xf) == HeadKind.SEQ2SEQ_LM
    ids, mask, labels = _inputs()
    with torch.no_grad():
        want = hf(input_ids=ids, attention_mask=mask, labels=labels, output_hidden_states=True)
        got = xf(input_ids=ids, attention_mask=mask, labels=labels, output_hidden_states=True)
    torch.testing.assert_close(got.logits, want.logits, atol=ATOL, rtol=0)
    torch.testing.assert_close(got.loss, want.loss, atol=ATOL, rtol=0)
    torch.testing.assert_close(
        got.encoder_last_hidden_state, want.encoder_last_hidden_state, atol=ATOL, rtol=0
    )


def test_cached_decoding_matches_the_full_forward(checkpoints):
    xf = AutoModelForSeq2SeqLM.from_pretrained(checkpoints["t5"])
    ids, mask, labels = _inputs()
    dec = labels.clamp(min=3)
    with torch.no_grad():
        full = xf(input_ids=ids, attention_mask=mask, decoder_input_ids=dec).logits
        first = xf(input_ids=ids, attention_mask=mask, decoder_input_ids=dec[:, :2], use_cache=True)
        cache = first.past_key_values
        steps = [first.logits]
        for t in range(2, dec.shape[1]):
            out = xf(
                encoder_outputs=(first.encoder_last_hidden_state,),
                attention_mask=mask,
                decoder_input_ids=dec[:, t : t + 1],
                past_key_values=cache,
                use_cache=True,
            )
            steps.append(out.logits)
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=ATOL, rtol=0)
    assert cache.get_seq_length() == dec.shape[1]
    assert len(cache.cross_attention_cache) == len(xf.get_decoder().block) == 3


def test_xf_save_loads_in_transformers(checkpoints):
    xf = AutoModelForSeq2SeqLM.from_pretrained(checkpoints["t5_v11"])
    ids, mask, labels = _inputs()
    with temporary_directory() as path:
        xf.save_pretrained(path)
        hf = _hf(path)
        again = AutoModelForSeq2SeqLM.from_pretrained(path)
    with torch.no_grad():
        want = xf(input_ids=ids, attention_mask=mask, labels=labels).logits
        torch.testing.assert_close(
            hf(input_ids=ids, attention_mask=mask, labels=labels).logits, want, atol=ATOL, rtol=0
        )
        torch.testing.assert_close(
            again(input_ids=ids, attention_mask=mask, labels=labels).logits, want, atol=0, rtol=0
        )


def test_tied_and_untied_heads(checkpoints):
    tied = T5ForConditionalGeneration.from_pretrained(checkpoints["t5"])
    untied = T5ForConditionalGeneration.from_pretrained(checkpoints["t5_v11"])
    assert tied.lm_head.weight is tied.shared.weight
    assert tied.config.scales_decoder_output
    assert untied.lm_head.weight is not untied.shared.weight
    assert not untied.config.scales_decoder_output
    for model in (tied, untied):  # the stacks' embeddings are always the shared one
        assert model.encoder.embed_tokens.weight is model.shared.weight
        assert model.decoder.embed_tokens.weight is model.shared.weight


def test_auto_model_gives_the_base_model(checkpoints):
    ids, mask, labels = _inputs()
    xf = AutoModel.from_pretrained(checkpoints["t5"])
    assert type(xf) is T5Model
    hf = transformers.T5Model.from_pretrained(checkpoints["t5"]).eval()
    dec = labels.clamp(min=3)
    with torch.no_grad():
        want = hf(input_ids=ids, attention_mask=mask, decoder_input_ids=dec).last_hidden_state
        got = xf(input_ids=ids, attention_mask=mask, decoder_input_ids=dec).last_hidden_state
    torch.testing.assert_close(got, want, atol=ATOL, rtol=0)


def test_relative_position_buckets_match_transformers():
    from transformers.models.t5.modeling_t5 import T5Attention

    relative = torch.arange(-300, 300)[None, :] - torch.arange(0, 40)[:, None]
    for bidirectional in (True, False):
        for buckets, distance in ((32, 128), (8, 16), (4, 4)):
            want = T5Attention._relative_position_bucket(relative, bidirectional, buckets, distance)
            got = relative_position_bucket(
                relative, bidirectional=bidirectional, num_buckets=buckets, max_distance=distance
            )
            assert torch.equal(got, want)


@pytest.mark.parametrize(("buckets", "distance"), [(32, 128), (8, 16), (8, 5), (4, 4), (32, 20)])
def test_position_bias_from_the_bucket_table_matches_transformers(buckets, distance):
    """compute_bias looks buckets up in a table of distances (clamped past max_distance), or computes them when
    max_distance is within the exact buckets: the same buckets as transformers, also far past the table."""
    from transformers.models.t5.modeling_t5 import T5Attention as HFAttention

    from xf_load.models._t5_layers import T5Attention

    config = T5Config(
        d_model=8,
        d_kv=2,
        num_heads=2,
        relative_attention_num_buckets=buckets,
        relative_attention_max_distance=distance,
    )
    queries = torch.tensor([0, 3, 250, 599])
    for is_decoder in (False, True):
        layer = T5Attention(config, is_decoder=is_decoder, has_relative_attention_bias=True, layer_idx=0)
        assert layer.relative_buckets.numel() == (
            0 if distance <= buckets // 2 else 2 * max(distance, buckets) + 1
        )
        relative = torch.arange(600)[None, :] - queries[:, None]
        want = layer.relative_attention_bias(
            HFAttention._relative_position_bucket(relative, not is_decoder, buckets, distance)
        ).permute(2, 0, 1)[None]
        assert torch.equal(layer.compute_bias(queries, 600), want)


@pytest.mark.parametrize(
    ("values", "key"),
    [
        ({"feed_forward_proj": "gated-nonsense"}, "feed_forward_proj"),
        ({"feed_forward_proj": "relu-gated"}, "feed_forward_proj"),
        ({"feed_forward_proj": "gated-gelu-x"}, "feed_forward_proj"),
        ({"relative_attention_num_buckets": 0}, "relative_attention_num_buckets"),
        ({"relative_attention_num_buckets": -8}, "relative_attention_num_buckets"),
        ({"d_model": 0}, "d_model"),
    ],
)
def test_bad_t5_configs_name_the_key(values, key):
    with pytest.raises(XfConfigError) as caught:
        T5Config(**values)
    assert caught.value.key == key
    assert key in str(caught.value)


def test_bad_config_file_names_the_file(tmp_path):
    (tmp_path / "config.json").write_text(
        json.dumps({"model_type": "t5", "feed_forward_proj": "gated-swishy"})
    )
    with pytest.raises(XfConfigError) as caught:
        AutoConfig.from_pretrained(tmp_path)
    assert "config.json" in str(caught.value) and "gated-swishy" in str(caught.value)


def test_labels_need_a_decoder_start_token(checkpoints):
    model = T5ForConditionalGeneration.from_pretrained(checkpoints["t5"], decoder_start_token_id=None)
    ids, _, labels = _inputs()
    with pytest.raises(XfConfigError, match="decoder_start_token_id"):
        model(input_ids=ids, labels=labels)


def test_config_round_trip_keeps_transformers_keys(checkpoints):
    config = AutoConfig.from_pretrained(checkpoints["t5_v11"])
    data = config.to_dict()
    assert data["feed_forward_proj"] == "gated-gelu"
    assert data["dense_act_fn"] == "gelu_new" and data["is_gated_act"] is True
    assert data["tie_word_embeddings"] is False and data["scale_decoder_outputs"] is False
    assert T5Config.from_dict(data).to_dict() == data
