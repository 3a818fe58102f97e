"""GPT-2 against transformers (the test-only oracle) on tiny random weights: logits, losses, the cache path,
the attention-scaling options, the config boundary and the init table."""

from __future__ import annotations

import math

import pytest
import torch

from xf_core.testing import temporary_directory
from xf_load.cache import DynamicCache
from xf_load.models.gpt2 import Conv1D, GPT2Config, GPT2LMHeadModel, GPT2Model
from xf_load.testing import FAMILIES, tiny_transformers_model

transformers = pytest.importorskip("transformers")

TINY = FAMILIES["GPT2"].tiny
ATOL = 1e-5
XF_CLASSES = {"GPT2Model": GPT2Model, "GPT2LMHeadModel": GPT2LMHeadModel}


def _pair(name: str, *, impl: str = "sdpa", **overrides):
    """A transformers model with random weights, saved by transformers, and the xf model loaded from that save."""
    hf = tiny_transformers_model(name, **overrides)  # LayerNorms perturbed, so a misplaced one shows
    hf.set_attn_implementation(impl)
    with temporary_directory() as path:
        hf.save_pretrained(path)
        xf, info = XF_CLASSES[name].from_pretrained(path, attn_implementation=impl, output_loading_info=True)
    assert info["missing_keys"] == info["unexpected_keys"] == info["mismatched_keys"] == []
    return hf, xf


def _batch(padding: str):
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(1, TINY["vocab_size"], (3, 9), generator=g)
    mask = torch.ones_like(ids)
    if padding == "left":
        mask[0, :4] = 0
        mask[2, :1] = 0
    else:
        mask[0, 6:] = 0
        mask[2, 8:] = 0
    return ids, mask


def _max_diff_on_tokens(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> float:
    """Max |a - b| over real tokens (a padded query attends to nothing, so its output is arbitrary)."""
    return ((a - b).abs() * mask[..., None]).max().item()


@pytest.mark.parametrize("impl", ["sdpa", "eager"])
@pytest.mark.parametrize("padding", ["left", "right"])
def test_lm_logits_and_hidden_states_match_transformers(impl, padding):
    hf, xf = _pair("GPT2LMHeadModel", impl=impl)
    ids, mask = _batch(padding)
    with torch.no_grad():
        want = hf(ids, attention_mask=mask, output_hidden_states=True)
        got = xf(ids, attention_mask=mask, output_hidden_states=True)
    assert got.logits.shape == (3, 9, TINY["vocab_size"])
    assert _max_diff_on_tokens(want.logits, got.logits, mask) <= ATOL
    assert len(got.hidden_states) == TINY["n_layer"] + 1
    for w, g in zip(want.hidden_states, got.hidden_states, strict=True):
        assert _max_diff_on_tokens(w, g, mask) <= ATOL


def test_base_model_matches_transformers_and_returns_a_cache():
    hf, xf = _pair("GPT2Model")
    ids, mask = _batch("right")
    with torch.no_grad():
        want = hf(ids, attention_mask=mask)
        got = xf(ids, attention_mask=mask)
    assert _max_diff_on_tokens(want.last_hidden_state, got.last_hidden_state, mask) <= ATOL
    assert isinstance(got.past_key_values, DynamicCache)  # config.use_cache is True by default
    assert got.past_key_values.get_seq_length() == 9
    assert xf(ids, use_cache=False).past_key_values is None


def test_loss_matches_transformers_with_ignored_labels_and_num_items_in_batch():
    hf, xf = _pair("GPT2LMHeadModel")
    ids, mask = _batch("right")
    labels = ids.masked_fill(mask == 0, -100)
    with torch.no_grad():
        assert torch.allclose(
            hf(ids, attention_mask=mask, labels=labels).loss,
            xf(ids, attention_mask=mask, labels=labels).loss,
            atol=ATOL,
        )
        n = torch.tensor(40)
        want = hf(ids, attention_mask=mask, labels=labels, num_items_in_batch=n).loss
        got = xf(ids, attention_mask=mask, labels=labels, num_items_in_batch=n).loss
    assert torch.allclose(want, got, atol=ATOL)
    # The summed loss divided by 40 differs from the mean over the 18 counted tokens.
    assert not torch.allclose(got, xf(ids, attention_mask=mask, labels=labels).loss)


@pytest.mark.parametrize("impl", ["sdpa", "eager"])
def test_decoding_with_a_cache_matches_the_full_forward(impl):
    hf, xf = _pair("GPT2LMHeadModel", impl=impl)
    ids, mask = _batch("left")
    with torch.no_grad():
        full = hf(ids, attention_mask=mask).logits
        out = xf(ids[:, :6], attention_mask=mask[:, :6], use_cache=True)
        steps = [out.logits]
        for t in range(6, 9):
            out = xf(ids[:, t : t + 1], attention_mask=mask[:, : t + 1], past_key_values=out.past_key_values)
            steps.append(out.logits)
    assert out.past_key_values.get_seq_length() == 9
    assert _max_diff_on_tokens(full, torch.cat(steps, dim=1), mask) <= ATOL


@pytest.mark.parametrize(
    "overrides",
    [
        {"scale_attn_by_inverse_layer_idx": True},
        {"reorder_and_upcast_attn": True},
        {"scale_attn_weights": False},
        {"n_inner": 48, "activation_function": "relu"},
    ],
    ids=["inverse-layer-idx", "upcast", "unscaled", "n_inner-relu"],
)
def test_config_variants_match_transformers(overrides):
    hf, xf = _pair("GPT2LMHeadModel", impl="eager", **overrides)
    ids, mask = _batch("right")
    with torch.no_grad():
        assert (
            _max_diff_on_tokens(
                hf(ids, attention_mask=mask).logits, xf(ids, attention_mask=mask).logits, mask
            )
            <= ATOL
        )


def test_logits_to_keep_and_inputs_embeds():
    _, xf = _pair("GPT2LMHeadModel")
    ids, _ = _batch("right")
    with torch.no_grad():
        full = xf(ids).logits
        last = xf(ids, logits_to_keep=1).logits
        embeds = xf(inputs_embeds=xf.get_input_embeddings()(ids)).logits
    assert last.shape == (3, 1, TINY["vocab_size"])
    # Not bit-equal: the head's matmul over 1 row and over 9 rows may round differently.
    torch.testing.assert_close(last, full[:, -1:], atol=ATOL, rtol=0)
    assert torch.allclose(embeds, full, atol=ATOL)
    with pytest.raises(ValueError, match="exactly one of input_ids or inputs_embeds"):
        xf(ids, inputs_embeds=embeds)


def test_lm_head_is_tied_to_the_token_embeddings():
    _, xf = _pair("GPT2LMHeadModel")
    assert xf.lm_head.weight is xf.transformer.wte.weight
    untied = GPT2LMHeadModel(GPT2Config(**TINY, tie_word_embeddings=False))
    assert untied.lm_head.weight is not untied.transformer.wte.weight


def test_gradient_checkpointing_gives_the_same_gradients():
    _, xf = _pair("GPT2LMHeadModel", resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    ids, mask = _batch("right")
    xf.train()
    xf(ids, attention_mask=mask, labels=ids).loss.backward()
    want = {n: p.grad.clone() for n, p in xf.named_parameters()}
    xf.zero_grad()
    xf.gradient_checkpointing_enable()
    out = xf(ids, attention_mask=mask, labels=ids)
    assert out.past_key_values is None  # no cache while recomputing blocks
    out.loss.backward()
    for n, p in xf.named_parameters():
        assert torch.allclose(p.grad, want[n], atol=1e-6), n


def test_config_aliases_and_transformers_round_trip():
    hf_config = transformers.GPT2Config(**TINY)
    config = GPT2Config.from_dict(hf_config.to_dict())
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads) == (32, 2, 4)
    assert (config.max_position_embeddings, config.num_key_value_heads, config.head_dim) == (64, 4, 8)
    config.hidden_size = 64
    assert config.n_embd == 64
    written = GPT2Config.from_dict(hf_config.to_dict()).to_dict()
    want = hf_config.to_dict()
    for key in GPT2Config._field_names() & set(want):
        if key in written:
            assert written[key] == want[key], key
    assert written["model_type"] == "gpt2"
    assert "hidden_size" not in written  # aliases are written under the GPT-2 field name


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"n_embd": 30, "n_head": 4}, "n_embd"),
        ({"activation_function": "gelu_newest"}, "activation_function"),
        ({"add_cross_attention": True}, "add_cross_attention"),
        ({"n_layer": 0}, "n_layer"),
    ],
)
def test_invalid_config_names_the_field(values, field):
    with pytest.raises(ValueError, match=field) as info:
        GPT2Config(**values)
    assert info.value.key == field


def test_init_table_scales_the_residual_projections():
    config = GPT2Config(n_embd=256, n_layer=8, n_head=4, vocab_size=64, n_positions=16)
    torch.manual_seed(0)
    model = GPT2Model(config)
    block = model.h[0]
    assert isinstance(block.attn.c_attn, Conv1D) and block.attn.c_attn.weight.shape == (256, 768)
    residual_std = 0.02 / math.sqrt(2 * 8)
    for w in (block.attn.c_proj.weight, block.mlp.c_proj.weight):
        assert abs(w.std().item() - residual_std) < 0.05 * residual_std
    assert abs(block.attn.c_attn.weight.std().item() - 0.02) < 0.001
    assert torch.equal(block.attn.c_attn.bias, torch.zeros(768))
    assert torch.equal(block.ln_1.weight, torch.ones(256))


@pytest.mark.parametrize("cache_implementation", ["dynamic", "static"])
def test_greedy_generation_matches_transformers(cache_implementation):
    hf, xf = _pair("GPT2LMHeadModel")
    ids, mask = _batch("left")
    with torch.no_grad():
        want = hf.generate(ids, attention_mask=mask, max_new_tokens=6, do_sample=False, pad_token_id=0)
        got = xf.generate(
            ids,
            attention_mask=mask,
            max_new_tokens=6,
            do_sample=False,
            pad_token_id=0,
            cache_implementation=cache_implementation,
        )
    assert torch.equal(got, want)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_xf_save_loads_in_transformers_with_the_same_weights_and_logits(tmp_path, dtype):
    _, xf = _pair("GPT2LMHeadModel")
    xf = xf.to(dtype)
    xf.save_pretrained(tmp_path, max_shard_size="20KB")  # several shards and an index
    assert (tmp_path / "model.safetensors.index.json").is_file()
    back = transformers.GPT2LMHeadModel.from_pretrained(tmp_path, dtype=dtype).eval()
    state = back.state_dict()
    for key, value in xf.state_dict().items():
        assert torch.equal(state[key], value), key
    assert back.lm_head.weight.data_ptr() == back.transformer.wte.weight.data_ptr()
    ids, mask = _batch("right")
    with torch.no_grad():
        assert torch.equal(
            back(ids, attention_mask=mask).logits.argmax(-1), xf(ids, attention_mask=mask).logits.argmax(-1)
        )
        if dtype == torch.float32:
            assert (
                _max_diff_on_tokens(
                    back(ids, attention_mask=mask).logits, xf(ids, attention_mask=mask).logits, mask
                )
                <= ATOL
            )


def test_old_checkpoints_with_mask_buffers_load_cleanly(tmp_path):
    """GPT-2 checkpoints on the Hub (e.g. openai-community/gpt2) still store the causal-mask buffers
    ``h.N.attn.bias``/``masked_bias`` and no ``transformer.`` prefix; they load with nothing unexpected."""
    from safetensors.torch import save_file

    hf, _ = _pair("GPT2LMHeadModel")
    state = {k.removeprefix("transformer."): v for k, v in hf.state_dict().items() if k != "lm_head.weight"}
    for i in range(TINY["n_layer"]):
        state[f"h.{i}.attn.bias"] = torch.tril(torch.ones(64, 64)).view(1, 1, 64, 64)
        state[f"h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
    save_file(
        {k: v.contiguous() for k, v in state.items()},
        tmp_path / "model.safetensors",
        metadata={"format": "pt"},
    )
    hf.config.save_pretrained(tmp_path)
    xf, info = GPT2LMHeadModel.from_pretrained(tmp_path, output_loading_info=True)
    assert info["missing_keys"] == info["unexpected_keys"] == info["mismatched_keys"] == []
    ids, mask = _batch("right")
    with torch.no_grad():
        assert (
            _max_diff_on_tokens(
                hf(ids, attention_mask=mask).logits, xf(ids, attention_mask=mask).logits, mask
            )
            <= ATOL
        )


def test_resize_token_embeddings_keeps_the_head_tied():
    _, xf = _pair("GPT2LMHeadModel")
    xf.resize_token_embeddings(120)
    assert xf.transformer.wte.weight.shape == (120, 32)
    assert xf.lm_head.weight is xf.transformer.wte.weight
    assert xf.config.vocab_size == 120
    assert xf(torch.tensor([[119, 3]])).logits.shape == (1, 2, 120)


def test_token_type_ids_and_explicit_positions_match_transformers():
    hf, xf = _pair("GPT2LMHeadModel")
    ids, mask = _batch("left")
    token_type_ids = torch.zeros_like(ids)
    token_type_ids[:, 5:] = 1
    position_ids = (mask.cumsum(-1) - 1).clamp(min=0)  # what generate passes for a left-padded batch
    inputs = {"attention_mask": mask, "token_type_ids": token_type_ids, "position_ids": position_ids}
    with torch.no_grad():
        assert _max_diff_on_tokens(hf(ids, **inputs).logits, xf(ids, **inputs).logits, mask) <= ATOL


def test_auto_classes_pick_the_gpt2_classes(tmp_path):
    import xf_load

    hf, _ = _pair("GPT2LMHeadModel")
    hf.save_pretrained(tmp_path)
    assert isinstance(xf_load.AutoConfig.from_pretrained(tmp_path), GPT2Config)
    lm = xf_load.AutoModelForCausalLM.from_pretrained(tmp_path)
    base = xf_load.AutoModel.from_pretrained(tmp_path)  # a head checkpoint into the base model
    assert type(lm) is GPT2LMHeadModel and type(base) is GPT2Model
    ids, mask = _batch("right")
    with torch.no_grad():
        assert (
            _max_diff_on_tokens(
                hf(ids, attention_mask=mask).logits, lm(ids, attention_mask=mask).logits, mask
            )
            <= ATOL
        )
        want = hf.transformer(ids, attention_mask=mask).last_hidden_state
        assert _max_diff_on_tokens(want, base(ids, attention_mask=mask).last_hidden_state, mask) <= ATOL


def test_auto_device_map_with_disk_offload(tmp_path):
    hf, _ = _pair("GPT2LMHeadModel", n_layer=4)
    hf.save_pretrained(tmp_path / "ckpt")
    model = GPT2LMHeadModel.from_pretrained(
        tmp_path / "ckpt", device_map="auto", max_memory={"cpu": 120_000}, offload_folder=tmp_path / "offload"
    )
    assert set(model.hf_device_map.values()) == {"cpu", "disk"}, model.hf_device_map
    ids, mask = _batch("right")
    with torch.no_grad():
        want = hf(ids, attention_mask=mask).logits
        assert _max_diff_on_tokens(want, model(ids, attention_mask=mask).logits, mask) <= ATOL


def test_bfloat16_load_matches_transformers_in_bfloat16(tmp_path):
    hf, _ = _pair("GPT2LMHeadModel")
    hf.save_pretrained(tmp_path)
    hf16 = transformers.GPT2LMHeadModel.from_pretrained(tmp_path, dtype=torch.bfloat16).eval()
    xf16 = GPT2LMHeadModel.from_pretrained(tmp_path, dtype=torch.bfloat16)
    assert xf16.dtype == torch.bfloat16
    ids, mask = _batch("right")
    with torch.no_grad():
        want, got = hf16(ids, attention_mask=mask).logits, xf16(ids, attention_mask=mask).logits
    assert got.dtype == torch.bfloat16
    assert _max_diff_on_tokens(want.float(), got.float(), mask) <= 1e-2


def test_too_long_inputs_and_legacy_caches_raise_errors_that_say_what_to_do():
    _, xf = _pair("GPT2LMHeadModel")
    with pytest.raises(ValueError, match="n_positions=64"):
        xf(torch.zeros(1, 65, dtype=torch.long))
    out = xf(torch.zeros(1, 60, dtype=torch.long), use_cache=True)
    with pytest.raises(ValueError, match=r"65 positions \(60 cached \+ 5 new\)"):
        xf(torch.zeros(1, 5, dtype=torch.long), past_key_values=out.past_key_values)
    legacy = tuple((k, v) for k, v in zip(out.past_key_values.keys, out.past_key_values.values, strict=True))
    with pytest.raises(ValueError, match="past_key_values is a tuple; pass an xf_load.cache.Cache"):
        xf(torch.zeros(1, 1, dtype=torch.long), past_key_values=legacy)


def test_training_gradients_match_transformers():
    hf, xf = _pair("GPT2LMHeadModel", resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    ids, mask = _batch("right")
    labels = ids.masked_fill(mask == 0, -100)
    hf.train(), xf.train()
    hf(ids, attention_mask=mask, labels=labels).loss.backward()
    xf(ids, attention_mask=mask, labels=labels).loss.backward()
    want = dict(hf.named_parameters())
    for name, p in xf.named_parameters():  # the tied lm_head/wte pair appears once, with both contributions
        assert torch.allclose(p.grad, want[name].grad, atol=1e-6), name
