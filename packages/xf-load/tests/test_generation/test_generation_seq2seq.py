"""Encoder-decoder generation (T5, BART) token for token against transformers' generate, on tiny random
checkpoints transformers saves: greedy, seeded sampling, beam search with length penalty, forced BOS/EOS,
decoder_start_token_id, the static cache and the compiled step."""

from __future__ import annotations

import pytest
import torch

from xf_core.errors import XfValueError
from xf_core.testing import temporary_directory
from xf_load import AutoModelForSeq2SeqLM

transformers = pytest.importorskip("transformers")

VOCAB = 64


def _save(kind: str, path: str) -> None:
    torch.manual_seed(0)
    if kind == "t5":
        config = transformers.T5Config(
            vocab_size=VOCAB, d_model=32, d_kv=8, d_ff=48, num_layers=2, num_heads=4,
            relative_attention_num_buckets=8, relative_attention_max_distance=16, decoder_start_token_id=0,
            feed_forward_proj="gated-gelu",
        )  # fmt: skip
        model = transformers.T5ForConditionalGeneration(config)
    else:
        config = transformers.BartConfig(
            vocab_size=VOCAB, d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
            decoder_attention_heads=4, encoder_ffn_dim=48, decoder_ffn_dim=48, max_position_embeddings=64,
        )  # fmt: skip
        model = transformers.BartForConditionalGeneration(config)
    with torch.no_grad():  # spread the logits so greedy paths are not decided by float noise
        model.lm_head.weight.mul_(4.0) if kind == "bart" else model.shared.weight.mul_(4.0)
    model.save_pretrained(path)


@pytest.fixture(scope="module")
def pairs():
    with temporary_directory() as root:
        out = {}
        for kind in ("t5", "bart"):
            _save(kind, f"{root}/{kind}")
            hf = transformers.AutoModelForSeq2SeqLM.from_pretrained(f"{root}/{kind}").eval()
            out[kind] = (AutoModelForSeq2SeqLM.from_pretrained(f"{root}/{kind}"), hf)
        yield out


def _inputs(seed: int = 0) -> dict[str, torch.Tensor]:
    ids = torch.randint(4, VOCAB, (3, 7), generator=torch.Generator().manual_seed(seed))
    mask = torch.ones_like(ids)
    ids[1, 5:], mask[1, 5:] = 1, 0  # right padding (BART's pad id is 1; T5 reads the mask)
    ids[2, 3:], mask[2, 3:] = 1, 0
    return {"input_ids": ids, "attention_mask": mask}


SETTINGS = {
    "greedy": {"max_new_tokens": 12},
    "greedy-min-eos": {"max_new_tokens": 12, "min_new_tokens": 4, "eos_token_id": [1, 2, 5]},
    "forced-eos": {"max_length": 9, "forced_eos_token_id": 3},
    "no-repeat": {"max_new_tokens": 12, "no_repeat_ngram_size": 2, "repetition_penalty": 1.3},
    "beam-3": {"max_new_tokens": 10, "num_beams": 3},
    "beam-4-lp2-return2": {
        "max_new_tokens": 10,
        "num_beams": 4,
        "length_penalty": 2.0,
        "num_return_sequences": 2,
    },
    "beam-4-lp-neg-early": {
        "max_new_tokens": 8,
        "num_beams": 4,
        "length_penalty": -0.5,
        "early_stopping": True,
    },
    "decoder-start": {"max_new_tokens": 8, "decoder_start_token_id": 7},
    "no-cache": {"max_new_tokens": 8, "use_cache": False},
}


@pytest.mark.parametrize("setting", list(SETTINGS))
@pytest.mark.parametrize("kind", ["t5", "bart"])
def test_generate_matches_transformers(pairs, kind, setting):
    ours, theirs = pairs[kind]
    with torch.no_grad():
        a = ours.generate(**_inputs(), **SETTINGS[setting])
        b = theirs.generate(**_inputs(), **SETTINGS[setting])
    assert a.tolist() == b.tolist()


def test_bart_forced_bos_and_generation_config_file(pairs):
    ours, theirs = pairs["bart"]
    assert ours.generation_config.decoder_start_token_id == 2  # from generation_config.json
    assert ours.generation_config.forced_eos_token_id == 2
    with torch.no_grad():
        a = ours.generate(**_inputs(1), max_new_tokens=6, forced_bos_token_id=5)
        b = theirs.generate(**_inputs(1), max_new_tokens=6, forced_bos_token_id=5)
    assert a[:, 0].tolist() == [2, 2, 2] and a[:, 1].tolist() == [5, 5, 5]  # start, then the forced BOS
    assert a.tolist() == b.tolist()


@pytest.mark.parametrize(
    "kwargs",
    [{"do_sample": True, "top_k": 0}, {"do_sample": True, "temperature": 0.7, "top_p": 0.9}],
    ids=["plain", "temp-topp"],
)
@pytest.mark.parametrize("kind", ["t5", "bart"])
def test_sampling_matches_transformers_under_a_fixed_seed(pairs, kind, kwargs):
    ours, theirs = pairs[kind]
    with torch.no_grad():
        torch.manual_seed(5)
        a = ours.generate(**_inputs(2), max_new_tokens=10, **kwargs)
        torch.manual_seed(5)
        b = theirs.generate(**_inputs(2), max_new_tokens=10, **kwargs)
    assert a.tolist() == b.tolist()


def test_beam_scores_match_transformers(pairs):
    ours, theirs = pairs["t5"]
    kwargs = dict(
        max_new_tokens=8,
        num_beams=3,
        num_return_sequences=3,
        return_dict_in_generate=True,
        output_scores=True,
    )
    with torch.no_grad():
        a = ours.generate(**_inputs(), **kwargs)
        b = theirs.generate(**_inputs(), **kwargs)
    assert a.sequences.tolist() == b.sequences.tolist()
    torch.testing.assert_close(a.sequences_scores, b.sequences_scores, atol=1e-4, rtol=0)
    assert a.beam_indices.tolist() == b.beam_indices.tolist()


@pytest.mark.parametrize("kind", ["t5", "bart"])
def test_static_cache_and_compiled_step_match_dynamic(pairs, kind):
    ours, _ = pairs[kind]
    with torch.no_grad():
        dynamic = ours.generate(**_inputs(), max_new_tokens=8)
        static = ours.generate(**_inputs(), max_new_tokens=8, cache_implementation="static")
        beams = ours.generate(**_inputs(), max_new_tokens=8, num_beams=2, cache_implementation="static")
        beams_dynamic = ours.generate(**_inputs(), max_new_tokens=8, num_beams=2)
        compiled = ours.generate(**_inputs(), max_new_tokens=8, compile={"backend": "eager"})
    assert static.tolist() == dynamic.tolist()
    assert beams.tolist() == beams_dynamic.tolist()
    assert compiled.tolist() == dynamic.tolist()


def test_encoder_runs_once(pairs):
    ours, _ = pairs["t5"]
    calls = []
    handle = ours.encoder.register_forward_hook(lambda *args: calls.append(1))
    try:
        with torch.no_grad():
            ours.generate(**_inputs(), max_new_tokens=6, num_beams=2)
    finally:
        handle.remove()
    assert len(calls) == 1


def test_generate_without_a_start_token_says_what_to_set(pairs):
    ours, _ = pairs["t5"]
    config = ours.generation_config
    saved = config.decoder_start_token_id, config.bos_token_id
    config.decoder_start_token_id = config.bos_token_id = None
    try:
        with pytest.raises(XfValueError, match="decoder_start_token_id"):
            ours.generate(**_inputs(), max_new_tokens=3)
    finally:
        config.decoder_start_token_id, config.bos_token_id = saved


@pytest.mark.parametrize("kind", ["t5", "bart"])
def test_beams_share_the_encoder_row_of_their_prompt(pairs, kind):
    """The cross-attention keys and values are projected once per prompt, not once per beam, and the tokens
    still match transformers (which projects them for every beam)."""
    ours, theirs = pairs[kind]
    layer = ours.decoder.block[0].layer[1].EncDecAttention.k if kind == "t5" else ours.model.decoder.layers[0]
    if kind == "bart":
        layer = layer.encoder_attn.k_proj
    rows = []
    handle = layer.register_forward_hook(lambda module, args, out: rows.append(args[0].shape[0]))
    try:
        with torch.no_grad():
            a = ours.generate(**_inputs(1), max_new_tokens=9, num_beams=4, no_repeat_ngram_size=3)
    finally:
        handle.remove()
    with torch.no_grad():
        b = theirs.generate(**_inputs(1), max_new_tokens=9, num_beams=4, no_repeat_ngram_size=3)
    assert rows == [3]  # 3 prompts, once for the whole generation
    assert a.tolist() == b.tolist()


def test_encoder_decoder_cache_reorders_cross_rows_only_when_kept_per_row():
    from xf_load.cache import DynamicCache, EncoderDecoderCache

    def kv(rows: int) -> torch.Tensor:
        return torch.arange(rows, dtype=torch.float32)[:, None, None, None].expand(rows, 2, 3, 4).clone()

    order = torch.tensor([1, 1, 0, 3, 2, 2])
    for cross_rows in (6, 2):  # one per beam (reordered), or one per prompt of 3 beams (left as it is)
        cache = EncoderDecoderCache(DynamicCache())
        cache.update(kv(6), kv(6), 0)
        cache.cross_attention(0, lambda rows=cross_rows: (kv(rows), kv(rows)))
        cache.reorder(order)
        assert cache.self_attention_cache.keys[0][:, 0, 0, 0].tolist() == order.tolist()
        want = order.tolist() if cross_rows == 6 else [0, 1]
        assert cache.cross_attention_cache.keys[0][:, 0, 0, 0].tolist() == want


@pytest.mark.parametrize("impl", ["sdpa", "eager"])
def test_cross_attend_on_shared_rows_equals_attention_on_repeated_rows(impl):
    from xf_load.attention import get_attention
    from xf_load.models._seq2seq import cross_attend

    attend = get_attention(impl)
    g = torch.Generator().manual_seed(0)
    P, beams, nh, T, S, hs = 2, 3, 4, 3, 5, 8
    q = torch.randn(P * beams, nh, T, hs, generator=g)
    k, v = torch.randn(P, nh, S, hs, generator=g), torch.randn(P, nh, S, hs, generator=g)
    mask = torch.ones(P, 1, T, S, dtype=torch.bool)
    mask[0, :, 1, 3:] = False  # differs per query, so the mask's rows must follow their queries
    mask[1, :, :, 4:] = False
    got = cross_attend(attend, q, k, v, mask, scale=0.5)
    want = attend(
        q, *(t.repeat_interleave(beams, dim=0) for t in (k, v, mask)), scale=0.5
    )  # (rows, T, nh, hs)
    torch.testing.assert_close(got, want)
    k, v = k.repeat_interleave(beams, 0), v.repeat_interleave(beams, 0)  # one row each: attention as is
    assert torch.equal(cross_attend(attend, q, k, v, None, scale=0.5), attend(q, k, v, None, scale=0.5))
