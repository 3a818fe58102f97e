"""``fuse_projections()``: q/k/v and gate/up as one matmul each at inference, with transformers' modules,
state-dict keys and saved files unchanged; and generate under no_grad leaving the model trainable."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from xf_load._fusing import fused_linear
from xf_load.models.llama import GATE_UP, QKV, LlamaForCausalLM, Qwen2ForCausalLM
from xf_load.testing import left_padded_batch, load_with_transformers, save_tiny_transformers_checkpoint


@pytest.fixture(scope="module", params=["LlamaForCausalLM", "Qwen2ForCausalLM"])  # Qwen2: biased q/k/v
def ckpt(request, tmp_path_factory):
    path = tmp_path_factory.mktemp(request.param)
    return request.param, save_tiny_transformers_checkpoint(request.param, path, tie_word_embeddings=False)


def _cls(arch: str) -> type[LlamaForCausalLM]:
    return {"LlamaForCausalLM": LlamaForCausalLM, "Qwen2ForCausalLM": Qwen2ForCausalLM}[arch]


def _load(arch, path, fuse: bool, **kwargs) -> LlamaForCausalLM:
    model = _cls(arch).from_pretrained(path, **kwargs)
    if fuse:
        assert model.fuse_projections() == 2 * model.config.num_hidden_layers
    return model


def _fused_groups_used(model: nn.Module) -> int:
    """How many groups would run fused now (for an input of the model's width)."""
    x = torch.zeros(1, 1, model.config.hidden_size, dtype=model.dtype)
    n = 0
    for layer in model.model.layers:
        n += fused_linear(layer.self_attn, QKV, x) is not None
        n += fused_linear(layer.mlp, GATE_UP, x) is not None
    return n


def test_fused_matches_unfused_and_transformers(ckpt):
    arch, path = ckpt
    plain, fused = _load(arch, path, fuse=False), _load(arch, path, fuse=True)
    with torch.no_grad():
        assert _fused_groups_used(fused) == 2 * fused.config.num_hidden_layers
        assert _fused_groups_used(plain) == 0
        batch = left_padded_batch()
        expected = load_with_transformers(path)(**batch).logits
        torch.testing.assert_close(fused(**batch).logits, plain(**batch).logits)
        torch.testing.assert_close(fused(**batch).logits, expected)
    kwargs = {"max_new_tokens": 6, "do_sample": False}
    torch.testing.assert_close(fused.generate(**batch, **kwargs), plain.generate(**batch, **kwargs))


def test_fused_model_keeps_modules_keys_and_saved_files(ckpt, tmp_path):
    arch, path = ckpt
    plain, fused = _load(arch, path, fuse=False), _load(arch, path, fuse=True)
    attn = fused.model.layers[0].self_attn
    assert type(attn.q_proj) is nn.Linear and type(fused.model.layers[0].mlp.up_proj) is nn.Linear
    # the members are rows of one buffer
    assert attn.k_proj.weight.data_ptr() == attn.q_proj.weight.data_ptr() + attn.q_proj.weight.nbytes
    reference = load_with_transformers(path).state_dict()
    state = fused.state_dict()
    assert list(state) == list(plain.state_dict()) and sorted(state) == sorted(reference)
    assert all(state[k].shape == reference[k].shape and torch.equal(state[k], reference[k]) for k in state)
    plain.save_pretrained(tmp_path / "plain")
    fused.save_pretrained(tmp_path / "fused")
    for name in ("model.safetensors", "config.json"):
        assert (tmp_path / "fused" / name).read_bytes() == (tmp_path / "plain" / name).read_bytes(), name
    again = _cls(arch).from_pretrained(tmp_path / "fused")
    assert all(torch.equal(again.state_dict()[k], v) for k, v in state.items())


def test_training_a_fused_model_runs_unfused_with_the_same_gradients(ckpt):
    arch, path = ckpt
    models = [_load(arch, path, fuse=fuse) for fuse in (False, True)]
    batch = left_padded_batch()
    grads = []
    for model in models:
        model.train()
        assert _fused_groups_used(model) == 0  # grad enabled, weights require grad
        model(**batch, labels=batch["input_ids"]).loss.backward()
        grads.append({n: p.grad for n, p in model.named_parameters()})
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], msg=name)
    # an optimizer step updates the views in place: the fused path sees the new weights
    fused = models[1]
    torch.optim.SGD(fused.parameters(), lr=0.1).step()
    fused.eval()
    with torch.no_grad():
        assert _fused_groups_used(fused) == 2 * fused.config.num_hidden_layers
        unfused = _cls(arch)(fused.config).eval()
        unfused.load_state_dict(fused.state_dict())
        torch.testing.assert_close(fused(**batch).logits, unfused(**batch).logits)


def test_to_dtype_repacks_and_a_replaced_module_falls_back(ckpt):
    arch, path = ckpt
    fused = _load(arch, path, fuse=True).to(torch.bfloat16)
    plain = _load(arch, path, fuse=False).to(torch.bfloat16)
    batch = left_padded_batch()
    with torch.no_grad():
        assert _fused_groups_used(fused) == 2 * fused.config.num_hidden_layers
        torch.testing.assert_close(fused(**batch).logits, plain(**batch).logits)

        class Scaled(nn.Module):  # what an adapter or a quantizer does: another module under the same name
            def __init__(self, inner: nn.Linear) -> None:
                super().__init__()
                self.inner = inner

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                return 2 * self.inner(x)

        for model in (fused, plain):
            model.model.layers[0].self_attn.k_proj = Scaled(model.model.layers[0].self_attn.k_proj)
        assert _fused_groups_used(fused) == 2 * fused.config.num_hidden_layers - 1
        torch.testing.assert_close(fused(**batch).logits, plain(**batch).logits)
        # a weight replaced outside (copied one by one, as FSDP or tensor parallelism do) is noticed too
        mlp = fused.model.layers[1].mlp
        mlp.up_proj.weight.data = mlp.up_proj.weight.data.clone()
        assert fused_linear(mlp, GATE_UP, torch.zeros(1, 1, fused.config.hidden_size)) is None


def test_generate_then_backward_on_the_same_model(ckpt):
    """generate runs without autograd; the model (and its rotary buffers) stays usable for training, and the
    generated ids can be trained on."""
    arch, path = ckpt
    model = _load(arch, path, fuse=True)
    batch = left_padded_batch()
    out = model.generate(**batch, max_new_tokens=4, do_sample=False)
    model.train()
    mask = torch.cat([batch["attention_mask"], torch.ones_like(out[:, batch["input_ids"].shape[1] :])], dim=1)
    loss = model(input_ids=out, attention_mask=mask, labels=out).loss
    loss.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
