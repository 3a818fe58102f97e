"""Llama-family parity with transformers on random checkpoints transformers saves, padded batches."""

from __future__ import annotations

import pytest
import torch

import xf_load
from xf_load.cache import DynamicCache
from xf_load.models import llama

VARIANTS = {
    "llama": ("LlamaConfig", "Llama", {}),
    "llama-tied-bias": (
        "LlamaConfig",
        "Llama",
        {"tie_word_embeddings": True, "attention_bias": True, "mlp_bias": True},
    ),
    "mistral": ("MistralConfig", "Mistral", {"sliding_window": 4}),
    "qwen2": (
        "Qwen2Config",
        "Qwen2",
        {"use_sliding_window": True, "sliding_window": 5, "max_window_layers": 1},
    ),
    "qwen3": ("Qwen3Config", "Qwen3", {"head_dim": 24, "attention_bias": True}),
}


def _valid(mask: torch.Tensor) -> torch.Tensor:
    return mask.bool()


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_causal_lm_logits_match_transformers(variant, attn, save_hf, load_hf, batch):
    config_class, prefix, extra = VARIANTS[variant]
    path = save_hf(f"{prefix}ForCausalLM", config_class=config_class, **extra)
    ours = xf_load.AutoModelForCausalLM.from_pretrained(path, attn_implementation=attn)
    assert type(ours).__name__ == f"{prefix}ForCausalLM"
    theirs = load_hf(path, f"{prefix}ForCausalLM", attn_implementation=attn)
    with torch.no_grad():
        a = ours(**batch).logits
        b = theirs(**batch).logits
    valid = _valid(batch["attention_mask"])
    torch.testing.assert_close(a[valid], b[valid], atol=1e-5, rtol=0)


@pytest.mark.parametrize("variant", ["llama", "qwen3"])
def test_sequence_classification_matches_transformers(variant, save_hf, load_hf, batch):
    config_class, prefix, extra = VARIANTS[variant]
    path = save_hf(f"{prefix}ForSequenceClassification", config_class=config_class, num_labels=3, **extra)
    ours = xf_load.AutoModelForSequenceClassification.from_pretrained(path)
    theirs = load_hf(path, f"{prefix}ForSequenceClassification")
    # right padding: the pooled token is the last non-pad one
    ids = batch["input_ids"].clone()
    ids[1] = torch.cat([ids[1, 3:], torch.zeros(3, dtype=ids.dtype)])
    mask = (ids != 0).long()
    labels = torch.tensor([0, 2])
    with torch.no_grad():
        a = ours(input_ids=ids, attention_mask=mask, labels=labels)
        b = theirs(input_ids=ids, attention_mask=mask, labels=labels)
    assert a.logits.shape == (2, 3)
    torch.testing.assert_close(a.logits, b.logits, atol=1e-5, rtol=0)
    torch.testing.assert_close(a.loss, b.loss, atol=1e-5, rtol=0)


def test_hidden_states_and_loss_match_transformers(save_hf, load_hf, batch):
    path = save_hf("LlamaForCausalLM")
    ours = xf_load.LlamaForCausalLM.from_pretrained(path)
    theirs = load_hf(path, "LlamaForCausalLM")
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    with torch.no_grad():
        a = ours(**batch, labels=labels, output_hidden_states=True)
        b = theirs(**batch, labels=labels, output_hidden_states=True)
        a7 = ours(**batch, labels=labels, num_items_in_batch=7)
        b7 = theirs(**batch, labels=labels, num_items_in_batch=7)
    torch.testing.assert_close(a.loss, b.loss, atol=1e-5, rtol=0)
    torch.testing.assert_close(a7.loss, b7.loss, atol=1e-5, rtol=0)
    assert a7.loss > a.loss  # summed over 18 tokens and divided by 7, not averaged
    assert len(a.hidden_states) == len(b.hidden_states) == 3
    valid = _valid(batch["attention_mask"])
    for x, y in zip(a.hidden_states, b.hidden_states):
        torch.testing.assert_close(x[valid], y[valid], atol=1e-5, rtol=0)


def test_incremental_decoding_with_cache_equals_full_forward(save_hf, batch):
    path = save_hf("MistralForCausalLM", config_class="MistralConfig", sliding_window=6)
    model = xf_load.AutoModelForCausalLM.from_pretrained(path)
    ids, mask = batch["input_ids"], batch["attention_mask"]
    with torch.no_grad():
        full = model(input_ids=ids, attention_mask=mask).logits
        cache = DynamicCache()
        out = model(input_ids=ids[:, :7], attention_mask=mask[:, :7], past_key_values=cache, use_cache=True)
        steps = [out.logits]
        for t in range(7, ids.shape[1]):
            out = model(input_ids=ids[:, t : t + 1], attention_mask=mask[:, : t + 1], past_key_values=cache)
            steps.append(out.logits)
    assert cache.get_seq_length() == ids.shape[1]
    step_logits = torch.cat(steps, dim=1)
    valid = _valid(mask)
    torch.testing.assert_close(step_logits[valid], full[valid], atol=1e-5, rtol=0)


def test_logits_to_keep_returns_only_the_last_positions(save_hf, batch):
    model = xf_load.LlamaForCausalLM.from_pretrained(save_hf("LlamaForCausalLM"))
    with torch.no_grad():
        full = model(**batch).logits
        last = model(**batch, logits_to_keep=1).logits
    assert last.shape == (2, 1, 128)
    torch.testing.assert_close(last[:, 0], full[:, -1])


def test_gradient_checkpointing_gives_the_same_gradients(save_hf, batch):
    path = save_hf("LlamaForCausalLM")
    grads = []
    for checkpointing in (False, True):
        model = xf_load.LlamaForCausalLM.from_pretrained(path).train()
        if checkpointing:
            model.gradient_checkpointing_enable()
            assert model.is_gradient_checkpointing
        model(**batch, labels=batch["input_ids"]).loss.backward()
        grads.append(model.model.layers[0].mlp.up_proj.weight.grad.clone())
    torch.testing.assert_close(grads[0], grads[1])


def test_num_parameters_and_resize_token_embeddings(save_hf, load_hf, batch):
    path = save_hf("LlamaForCausalLM", tie_word_embeddings=True)
    ours = xf_load.LlamaForCausalLM.from_pretrained(path)
    theirs = load_hf(path, "LlamaForCausalLM")
    assert ours.num_parameters() == theirs.num_parameters()
    assert ours.num_parameters(exclude_embeddings=True) == theirs.num_parameters(exclude_embeddings=True)
    old = ours.get_input_embeddings().weight.detach().clone()
    emb = ours.resize_token_embeddings(130, pad_to_multiple_of=8)
    assert emb.num_embeddings == 136 and ours.config.vocab_size == 136
    assert ours.lm_head.weight is ours.get_input_embeddings().weight  # still tied
    torch.testing.assert_close(emb.weight[:128], old)
    torch.testing.assert_close(emb.weight[130], old.mean(0))
    assert ours(**batch).logits.shape[-1] == 136


def test_config_validation_names_the_field():
    with pytest.raises(ValueError, match="num_key_value_heads"):
        llama.LlamaConfig(hidden_size=64, num_attention_heads=4, num_key_value_heads=3)
    with pytest.raises(ValueError, match="hidden_size"):
        llama.LlamaConfig(hidden_size=66, num_attention_heads=4)


def test_bf16_logits_match_transformers(save_hf, load_hf, batch):
    path = save_hf("Qwen2ForCausalLM", config_class="Qwen2Config", dtype=torch.bfloat16)
    ours = xf_load.AutoModelForCausalLM.from_pretrained(path)
    theirs = load_hf(path, "Qwen2ForCausalLM")
    assert ours.dtype == theirs.dtype == torch.bfloat16
    with torch.no_grad():
        a, b = ours(**batch).logits, theirs(**batch).logits
    valid = _valid(batch["attention_mask"])
    torch.testing.assert_close(a[valid].float(), b[valid].float(), atol=1e-2, rtol=0)
