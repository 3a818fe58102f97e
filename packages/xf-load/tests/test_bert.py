"""BERT and RoBERTa against transformers (the test-only oracle) on tiny random checkpoints that transformers
saves: every head's logits and loss, hidden states, RoBERTa's padding-offset positions, the config boundary,
legacy checkpoint names, tying, and xf save -> transformers load."""

from __future__ import annotations

import json
from unittest import mock

import pytest
import torch
from safetensors.torch import load_file, save_file

from xf_core.testing import temporary_directory
from xf_load.models import bert
from xf_load.testing import FAMILIES, tiny_transformers_model

transformers = pytest.importorskip("transformers")

TINY = FAMILIES["Bert"].tiny
HEADS = [
    "Model",
    "ForMaskedLM",
    "ForSequenceClassification",
    "ForTokenClassification",
    "ForQuestionAnswering",
]
ATOL = 1e-5


def _pair(family: str, head: str, *, impl: str = "sdpa", **overrides):
    """A transformers model with random weights, saved by transformers, and the xf model loaded from that save."""
    hf = tiny_transformers_model(family + head, **overrides)  # LayerNorms perturbed, so a misplaced one shows
    hf.set_attn_implementation(impl)
    with temporary_directory() as path:
        hf.save_pretrained(path)
        xf, info = getattr(bert, family + head).from_pretrained(
            path, attn_implementation=impl, output_loading_info=True
        )
    assert info["missing_keys"] == info["unexpected_keys"] == info["mismatched_keys"] == []
    return hf, xf


def _batch(family: str, padding: str = "right") -> dict[str, torch.Tensor]:
    """Three sequences of 9 tokens in two segments; two of them padded (pad = the family's pad_token_id)."""
    pad = 0 if family == "Bert" else 1
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(3, TINY["vocab_size"], (3, 9), generator=g)
    mask = torch.ones_like(ids)
    if padding == "right":
        mask[0, 6:] = 0
        mask[2, 8:] = 0
    else:
        mask[0, :3] = 0
        mask[2, :1] = 0
    ids = ids.masked_fill(mask == 0, pad)
    token_type_ids = torch.zeros_like(ids)
    token_type_ids[:, 4:] = 1
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": token_type_ids}


def _outputs(out, head: str) -> list[torch.Tensor]:
    if head == "Model":
        return [out.last_hidden_state, *([out.pooler_output] if out.pooler_output is not None else [])]
    if head == "ForQuestionAnswering":
        return [out.start_logits, out.end_logits]
    return [out.logits]


@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("family", ["Bert", "Roberta"])
def test_every_head_matches_transformers_on_a_padded_batch(family, head):
    hf, xf = _pair(family, head)
    inputs = _batch(family)
    with torch.no_grad():
        want, got = hf(**inputs), xf(**inputs)
    for w, g in zip(_outputs(want, head), _outputs(got, head), strict=True):
        assert w.shape == g.shape
        assert (w - g).abs().max().item() <= ATOL


@pytest.mark.parametrize("family", ["Bert", "Roberta"])
def test_eager_attention_left_padding_and_hidden_states_match_transformers(family):
    hf, xf = _pair(family, "ForMaskedLM", impl="eager")
    inputs = _batch(family, padding="left")
    with torch.no_grad():
        want = hf(**inputs, output_hidden_states=True)
        got = xf(**inputs, output_hidden_states=True)
    assert (want.logits - got.logits).abs().max().item() <= ATOL
    assert len(got.hidden_states) == TINY["num_hidden_layers"] + 1
    for w, g in zip(want.hidden_states, got.hidden_states, strict=True):
        assert (w - g).abs().max().item() <= ATOL


def test_roberta_positions_skip_padding_and_start_after_the_pad_id():
    _, xf = _pair("Roberta", "Model")
    ids = torch.tensor([[1, 1, 5, 6, 7], [5, 6, 7, 1, 1]])  # pad_token_id = 1, left and right padded
    positions = xf.embeddings.position_ids(ids, 2, 5, ids.device)
    assert positions.tolist() == [[1, 1, 2, 3, 4], [2, 3, 4, 1, 1]]
    bert_model = _pair("Bert", "Model")[1]
    assert bert_model.embeddings.position_ids(ids, 2, 5, ids.device).tolist() == [[0, 1, 2, 3, 4]] * 2
    # Same tokens, different padding: RoBERTa gives the real tokens the same positions, so the same outputs.
    with torch.no_grad():
        left = xf(torch.tensor([[1, 1, 5, 6, 7]]), attention_mask=torch.tensor([[0, 0, 1, 1, 1]]))
        bare = xf(torch.tensor([[5, 6, 7]]))
    assert (left.last_hidden_state[0, 2:] - bare.last_hidden_state[0]).abs().max().item() <= ATOL


@pytest.mark.parametrize("family", ["Bert", "Roberta"])
def test_masked_lm_loss_matches_transformers(family):
    hf, xf = _pair(family, "ForMaskedLM")
    inputs = _batch(family)
    labels = torch.full_like(inputs["input_ids"], -100)
    labels[:, 2] = inputs["input_ids"][:, 2]
    labels[1, 5] = 7
    with torch.no_grad():
        want, got = hf(**inputs, labels=labels).loss, xf(**inputs, labels=labels).loss
    assert torch.allclose(want, got, atol=ATOL)


@pytest.mark.parametrize(
    ("num_labels", "labels", "problem_type"),
    [
        (1, torch.tensor([0.5, -1.0, 2.0]), None),  # regression
        (3, torch.tensor([0, 2, 1]), None),  # single label
        (3, torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]]), None),  # multi label
        (3, torch.tensor([[0.1, 0.2, 0.3], [1.0, 0.0, 1.0], [0.5, 0.5, 0.5]]), "regression"),
    ],
    ids=["regression", "single-label", "multi-label", "multi-output-regression"],
)
@pytest.mark.parametrize("family", ["Bert", "Roberta"])
def test_sequence_classification_losses_match_transformers(family, num_labels, labels, problem_type):
    hf, xf = _pair(family, "ForSequenceClassification", num_labels=num_labels, problem_type=problem_type)
    inputs = _batch(family)
    with torch.no_grad():
        want, got = hf(**inputs, labels=labels), xf(**inputs, labels=labels)
    assert got.logits.shape == (3, num_labels)
    assert torch.allclose(want.loss, got.loss, atol=ATOL)
    assert xf.config.problem_type == problem_type  # the guess is per call; the config is not changed


@pytest.mark.parametrize("family", ["Bert", "Roberta"])
def test_token_classification_and_question_answering_losses_match_transformers(family):
    inputs = _batch(family)
    hf, xf = _pair(family, "ForTokenClassification")
    labels = torch.randint(0, 3, (3, 9)).masked_fill(inputs["attention_mask"] == 0, -100)
    with torch.no_grad():
        assert torch.allclose(hf(**inputs, labels=labels).loss, xf(**inputs, labels=labels).loss, atol=ATOL)
    hf, xf = _pair(family, "ForQuestionAnswering")
    start, end = torch.tensor([1, 3, 40]), torch.tensor([[2], [5], [8]])  # 40 is outside: ignored
    with torch.no_grad():
        want = hf(**inputs, start_positions=start, end_positions=end).loss
        got = xf(**inputs, start_positions=start, end_positions=end).loss
    assert torch.allclose(want, got, atol=ATOL)


@pytest.mark.parametrize("family", ["Bert", "Roberta"])
def test_masked_lm_decoder_is_tied_and_survives_resizing(family):
    _, xf = _pair(family, "ForMaskedLM")
    head = xf.cls.predictions if family == "Bert" else xf.lm_head
    assert xf.get_output_embeddings() is head.decoder
    assert head.decoder.weight is xf.get_input_embeddings().weight
    assert head.decoder.bias is head.bias
    xf.resize_token_embeddings(104)
    assert head.decoder.weight is xf.get_input_embeddings().weight
    assert head.decoder.bias is head.bias and head.bias.shape == (104,)
    assert xf(torch.tensor([[5, 103]])).logits.shape == (1, 2, 104)


def test_gamma_beta_checkpoint_names_load(tmp_path):
    """TensorFlow-era checkpoints name LayerNorm parameters gamma/beta; they load into weight/bias."""
    hf, _ = _pair("Bert", "ForMaskedLM")
    hf.save_pretrained(tmp_path)
    state = load_file(tmp_path / "model.safetensors")
    legacy = {
        k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta"): v
        for k, v in state.items()
    }
    assert any(k.endswith("LayerNorm.gamma") for k in legacy)
    save_file(legacy, tmp_path / "model.safetensors", metadata={"format": "pt"})
    xf, info = bert.BertForMaskedLM.from_pretrained(tmp_path, output_loading_info=True)
    assert info["missing_keys"] == info["unexpected_keys"] == info["mismatched_keys"] == []
    inputs = _batch("Bert")
    with torch.no_grad():
        assert (hf(**inputs).logits - xf(**inputs).logits).abs().max().item() <= ATOL


def test_a_base_checkpoint_loads_into_a_head_and_back():
    hf, _ = _pair("Roberta", "Model")
    with temporary_directory() as path:
        hf.save_pretrained(path)
        xf, info = bert.RobertaForTokenClassification.from_pretrained(path, output_loading_info=True)
    assert info["unexpected_keys"] == [k for k in info["unexpected_keys"] if k.startswith("pooler.")]
    assert sorted(info["missing_keys"]) == ["classifier.bias", "classifier.weight"]
    inputs = _batch("Roberta")
    with torch.no_grad():
        want = hf(**inputs).last_hidden_state
        got = xf.roberta(**inputs).last_hidden_state
    assert (want - got).abs().max().item() <= ATOL


@pytest.mark.parametrize(
    ("family", "head"), [("Bert", "ForMaskedLM"), ("Roberta", "ForSequenceClassification")]
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_xf_save_loads_in_transformers_with_the_same_weights(tmp_path, family, head, dtype):
    _, xf = _pair(family, head)
    xf = xf.to(dtype)
    xf.save_pretrained(tmp_path, max_shard_size="30KB")
    assert (tmp_path / "model.safetensors.index.json").is_file()
    back = getattr(transformers, family + head).from_pretrained(tmp_path, dtype=dtype).eval()
    state = back.state_dict()
    for key, value in xf.state_dict().items():
        assert torch.equal(state[key], value), key
    if dtype == torch.float32:
        inputs = _batch(family)
        with torch.no_grad():
            assert (back(**inputs).logits - xf(**inputs).logits).abs().max().item() <= ATOL


def test_config_round_trips_transformers_fields():
    for family in ("Bert", "Roberta"):
        hf_config = getattr(transformers, family + "Config")(**TINY, num_labels=4)
        config = getattr(bert, family + "Config").from_dict(hf_config.to_dict())
        written, want = config.to_dict(), json.loads(hf_config.to_json_string())  # as written to config.json
        assert written["model_type"] == family.lower()
        assert config.num_labels == 4 and written["id2label"] == want["id2label"]
        for key in set(type(config)._field_names()) & set(want) & set(written):
            assert written[key] == want[key], (family, key)
    roberta = bert.RobertaConfig()
    assert (roberta.pad_token_id, roberta.bos_token_id, roberta.eos_token_id, roberta.vocab_size) == (
        1,
        0,
        2,
        50265,
    )


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"hidden_size": 30, "num_attention_heads": 4}, "hidden_size"),
        ({"hidden_act": "gelu_newest"}, "hidden_act"),
        ({"is_decoder": True}, "is_decoder"),
        ({"extra": {"position_embedding_type": "relative_key"}}, "position_embedding_type"),
    ],
)
def test_invalid_config_names_the_field(values, field):
    with pytest.raises(ValueError, match=field) as info:
        bert.BertConfig(**values)
    assert info.value.key == field


def test_gradient_checkpointing_gives_the_same_gradients():
    _, xf = _pair(
        "Bert", "ForSequenceClassification", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0
    )
    inputs = _batch("Bert")
    labels = torch.tensor([0, 2, 1])
    xf.train()
    xf(**inputs, labels=labels).loss.backward()
    want = {n: p.grad.clone() for n, p in xf.named_parameters()}
    xf.zero_grad()
    xf.gradient_checkpointing_enable()
    xf(**inputs, labels=labels).loss.backward()
    for n, p in xf.named_parameters():
        assert torch.allclose(p.grad, want[n], atol=1e-6), n


def test_init_table():
    torch.manual_seed(0)
    model = bert.RobertaForMaskedLM(
        bert.RobertaConfig(**{**TINY, "hidden_size": 256, "intermediate_size": 512})
    )
    emb = model.roberta.embeddings
    assert torch.equal(emb.word_embeddings.weight[1], torch.zeros(256))  # pad row
    assert torch.equal(emb.position_embeddings.weight[1], torch.zeros(256))  # RoBERTa's position padding row
    assert abs(emb.word_embeddings.weight[2:].std().item() - 0.02) < 0.002
    dense = model.roberta.encoder.layer[0].attention.self.query
    assert abs(dense.weight.std().item() - 0.02) < 0.001 and torch.equal(dense.bias, torch.zeros(256))
    assert torch.equal(model.lm_head.bias, torch.zeros(TINY["vocab_size"]))
    assert torch.equal(model.lm_head.layer_norm.weight, torch.ones(256))


@pytest.mark.parametrize("family", ["Bert", "Roberta"])
def test_inputs_embeds_match_transformers(family):
    hf, xf = _pair(family, "ForTokenClassification")
    inputs = _batch(family)
    ids = inputs.pop("input_ids")
    embeds = xf.get_input_embeddings()(ids)
    with torch.no_grad():
        want, got = hf(inputs_embeds=embeds, **inputs).logits, xf(inputs_embeds=embeds, **inputs).logits
    assert (want - got).abs().max().item() <= ATOL
    with pytest.raises(ValueError, match="exactly one of input_ids or inputs_embeds"):
        xf(ids, inputs_embeds=embeds)


AUTO_HEADS = {
    "Model": "AutoModel",
    "ForMaskedLM": "AutoModelForMaskedLM",
    "ForSequenceClassification": "AutoModelForSequenceClassification",
    "ForTokenClassification": "AutoModelForTokenClassification",
    "ForQuestionAnswering": "AutoModelForQuestionAnswering",
}


@pytest.mark.parametrize("family", ["Bert", "Roberta"])
def test_auto_classes_pick_the_family_head(tmp_path, family):
    import xf_load

    hf, _ = _pair(family, "ForMaskedLM")
    hf.save_pretrained(tmp_path)
    assert type(xf_load.AutoConfig.from_pretrained(tmp_path)) is getattr(bert, family + "Config")
    for head, auto in AUTO_HEADS.items():
        model = getattr(xf_load, auto).from_pretrained(tmp_path)
        assert type(model) is getattr(bert, family + head)


def test_auto_device_map_with_disk_offload(tmp_path):
    hf, _ = _pair("Bert", "ForMaskedLM", num_hidden_layers=4)
    hf.save_pretrained(tmp_path / "ckpt")
    model = bert.BertForMaskedLM.from_pretrained(
        tmp_path / "ckpt", device_map="auto", max_memory={"cpu": 60_000}, offload_folder=tmp_path / "offload"
    )
    assert set(model.hf_device_map.values()) == {"cpu", "disk"}, model.hf_device_map
    inputs = _batch("Bert")
    with torch.no_grad():
        assert (hf(**inputs).logits - model(**inputs).logits).abs().max().item() <= ATOL


def test_bfloat16_load_matches_transformers_in_bfloat16(tmp_path):
    hf, _ = _pair("Roberta", "ForMaskedLM")
    hf.save_pretrained(tmp_path)
    hf16 = transformers.RobertaForMaskedLM.from_pretrained(tmp_path, dtype=torch.bfloat16).eval()
    xf16 = bert.RobertaForMaskedLM.from_pretrained(tmp_path, dtype=torch.bfloat16)
    inputs = _batch("Roberta")
    with torch.no_grad():
        want, got = hf16(**inputs).logits, xf16(**inputs).logits
    assert got.dtype == torch.bfloat16
    assert (want.float() - got.float()).abs().max().item() <= 1e-2


def test_a_new_head_on_a_masked_lm_checkpoint_is_initialised_by_the_table(tmp_path):
    hf, _ = _pair("Bert", "ForMaskedLM")
    hf.save_pretrained(tmp_path)
    torch.manual_seed(0)
    model, info = bert.BertForSequenceClassification.from_pretrained(
        tmp_path, num_labels=5, output_loading_info=True
    )
    assert model.config.num_labels == 5 and model.classifier.weight.shape == (5, 32)
    assert sorted(info["missing_keys"]) == [
        "bert.pooler.dense.bias",
        "bert.pooler.dense.weight",
        "classifier.bias",
        "classifier.weight",
    ]
    assert all(k.startswith("cls.predictions.") for k in info["unexpected_keys"])
    assert torch.equal(model.classifier.bias, torch.zeros(5))
    assert 0.005 < model.bert.pooler.dense.weight.std().item() < 0.04  # N(0, 0.02), not left empty
    inputs = _batch("Bert")
    with torch.no_grad():
        want = hf.bert(**inputs).last_hidden_state
        assert (model.bert(**inputs).last_hidden_state - want).abs().max().item() <= ATOL
        assert torch.isfinite(model(**inputs).logits).all()


def test_the_family_modules_never_import_transformers():
    from xf_core.testing import imported_modules

    modules = imported_modules("import xf_load.models.bert, xf_load.models.gpt2")
    assert "torch" in modules
    assert not any(m == "transformers" or m.startswith("transformers.") for m in modules)


@pytest.mark.parametrize(("family", "longest"), [("Bert", 64), ("Roberta", 62)])
def test_too_long_input_names_max_position_embeddings(family, longest):
    _, xf = _pair(family, "Model")
    assert xf(torch.full((1, longest), 5)).last_hidden_state.shape == (1, longest, 32)
    with pytest.raises(ValueError, match=f"max_position_embeddings=64; truncate inputs to {longest} tokens"):
        xf(torch.full((1, longest + 1), 5))


@pytest.mark.parametrize("family", ["Bert", "Roberta"])
def test_training_gradients_match_transformers(family):
    hf, xf = _pair(family, "ForMaskedLM", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    inputs = _batch(family)
    labels = inputs["input_ids"].masked_fill(inputs["attention_mask"] == 0, -100)
    hf.train(), xf.train()
    hf(**inputs, labels=labels).loss.backward()
    xf(**inputs, labels=labels).loss.backward()
    want = dict(hf.named_parameters())
    for name, p in xf.named_parameters():
        assert torch.allclose(p.grad, want[name].grad, atol=1e-6), name


def test_fuse_projections_runs_qkv_as_one_matmul_and_follows_weight_changes():
    """After ``fuse_projections()`` q, k and v run as one matmul without autograd: the same outputs as the
    three layers, following an in-place weight change and a dtype move; a hooked layer runs as itself; the
    state dict keeps the three keys."""
    hf, xf = _pair("Bert", "Model")
    inputs = _batch("Bert")
    keys = set(xf.state_dict())
    want = xf(**inputs).last_hidden_state
    assert xf.fuse_projections() == xf.config.num_hidden_layers
    attention = xf.encoder.layer[0].attention.self
    calls = []
    real = torch.nn.functional.linear

    def counting(x, w, b=None):
        calls.append(w.shape[0])
        return real(x, w, b)

    with torch.inference_mode(), mock.patch("xf_load._fusing.F.linear", counting):
        got = xf(**inputs).last_hidden_state
    assert calls.count(3 * attention.query.out_features) == xf.config.num_hidden_layers  # one per layer
    assert (want - got).abs().max().item() <= 1e-6
    with torch.no_grad():
        attention.value.weight.mul_(-1.0)
        hf.encoder.layer[0].attention.self.value.weight.mul_(-1.0)
        changed = xf(**inputs).last_hidden_state
        assert (changed - hf(**inputs).last_hidden_state).abs().max().item() <= ATOL
        assert (changed - got).abs().max().item() > 1e-3
        xf.double()
        assert (xf(**inputs).last_hidden_state.float() - changed).abs().max().item() <= 1e-5
    seen = []
    attention.key.register_forward_hook(lambda _m, _a, out: seen.append(out.shape))
    with torch.no_grad():
        xf(**inputs)
    assert len(seen) == 1  # a hooked layer runs as itself
    assert set(xf.state_dict()) == keys
