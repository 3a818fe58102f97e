"""Zero-copy loading: a tensor stored in the wanted dtype, loaded on the CPU, views the memory-mapped
safetensors file; casts and ``disable_mmap=True`` read; what a mapped model does when its files change."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import ClassVar

import pytest
import torch
from torch import nn

from xf_load import quantizers
from xf_load._saving import save_safetensors
from xf_load.models.bert import BertModel
from xf_load.models.llama import LlamaConfig, LlamaForCausalLM
from xf_load.options import LoadOptions
from xf_load.testing import left_padded_batch, save_tiny_transformers_checkpoint

pytestmark = pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="reads /proc/self/maps (Linux)")


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    """Tiny bf16 Llama checkpoints saved by transformers: tied and sharded; untied single file."""
    root = tmp_path_factory.mktemp("zero-copy")
    sharded = save_tiny_transformers_checkpoint(
        "LlamaForCausalLM",
        root / "sharded",
        dtype=torch.bfloat16,
        tie_word_embeddings=True,
        save_kwargs={"max_shard_size": "40KB"},
    )
    single = save_tiny_transformers_checkpoint(
        "LlamaForCausalLM", root / "single", dtype=torch.bfloat16, tie_word_embeddings=False
    )
    return {"sharded": sharded, "single": single}


def _files(path: Path) -> list[Path]:
    return sorted(path.glob("*.safetensors"))


def _mapped_ranges(files: list[Path]) -> list[tuple[int, int]]:
    """Address ranges of this process's mappings of ``files`` (also once they are deleted)."""
    names = {str(f.resolve()) for f in files}
    ranges = []
    for line in Path("/proc/self/maps").read_text().splitlines():
        parts = line.split(maxsplit=5)
        if len(parts) == 6 and parts[5].removesuffix(" (deleted)") in names:
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            ranges.append((lo, hi))
    return ranges


def _views(t: torch.Tensor, ranges: list[tuple[int, int]]) -> bool:
    start = t.data_ptr()
    return any(lo <= start and start + t.numel() * t.element_size() <= hi for lo, hi in ranges)


def _logits(model) -> torch.Tensor:
    with torch.no_grad():
        return model(**left_padded_batch()).logits


def _stored_bytes(path: Path) -> int:
    return sum(os.path.getsize(f) for f in _files(path))


def test_same_dtype_parameters_view_the_mapping_of_a_sharded_tied_checkpoint(ckpts):
    path = ckpts["sharded"]
    assert len(_files(path)) > 2  # really sharded
    mapped, info = LlamaForCausalLM.from_pretrained(path, output_loading_info=True)
    ranges = _mapped_ranges(_files(path))
    params = dict(mapped.named_parameters())
    assert params and all(p.dtype == torch.bfloat16 for p in params.values())
    assert all(_views(p, ranges) for p in params.values()), [
        n for n, p in params.items() if not _views(p, ranges)
    ]
    assert mapped.lm_head.weight is mapped.model.embed_tokens.weight

    copied, copied_info = LlamaForCausalLM.from_pretrained(path, disable_mmap=True, output_loading_info=True)
    assert not any(_views(p, _mapped_ranges(_files(path))) for p in copied.parameters())
    torch.testing.assert_close(_logits(mapped), _logits(copied), rtol=0, atol=0)
    # every stored tensor is taken once either way (the files also hold headers)
    assert info["bytes_read"] == copied_info["bytes_read"]
    assert 0.9 * _stored_bytes(path) < info["bytes_read"] < _stored_bytes(path)


def test_renamed_keys_view_the_mapping(tmp_path):
    """Legacy ``LayerNorm.gamma``/``beta`` names, loaded through ``_checkpoint_renames``, are views too."""
    path = save_tiny_transformers_checkpoint("BertModel", tmp_path / "bert", dtype=torch.bfloat16)
    reference = BertModel.from_pretrained(path, disable_mmap=True)
    state = reference.state_dict()
    legacy = {
        k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta"): v
        for k, v in state.items()
    }
    assert any(k.endswith("gamma") for k in legacy)
    save_safetensors(legacy, path / "model.safetensors")
    model, info = BertModel.from_pretrained(path, output_loading_info=True)
    assert info["missing_keys"] == [] and info["unexpected_keys"] == []
    ranges = _mapped_ranges(_files(path))
    norm = model.embeddings.LayerNorm.weight
    assert _views(norm, ranges) and torch.equal(norm, reference.embeddings.LayerNorm.weight)
    assert all(_views(p, ranges) for p in model.parameters())


def test_mixed_dtype_checkpoint_casts_what_differs_and_maps_the_rest(ckpts, tmp_path):
    """Norms stored in float32 beside bf16 matrices (written by xf, whose offsets need not be aligned)."""
    reference = LlamaForCausalLM.from_pretrained(ckpts["single"], disable_mmap=True)
    path = tmp_path / "mixed"
    shutil.copytree(ckpts["single"], path)
    state = {k: (v.float() + 1e-3 if "norm" in k else v) for k, v in reference.state_dict().items()}
    save_safetensors(state, path / "model.safetensors")

    model = LlamaForCausalLM.from_pretrained(path, dtype=torch.bfloat16)
    copied = LlamaForCausalLM.from_pretrained(path, dtype=torch.bfloat16, disable_mmap=True)
    ranges = _mapped_ranges(_files(path))
    for name, param in model.named_parameters():
        assert param.dtype == torch.bfloat16, name
        assert _views(param, ranges) == ("norm" not in name), name  # the float32 norms were cast
        torch.testing.assert_close(param, state[name].to(torch.bfloat16), rtol=0, atol=0)
    torch.testing.assert_close(_logits(model), _logits(copied), rtol=0, atol=0)

    wide = LlamaForCausalLM.from_pretrained(path, dtype=torch.float32)
    ranges = _mapped_ranges(_files(path))
    for name, param in wide.named_parameters():
        assert param.dtype == torch.float32
        assert _views(param, ranges) == ("norm" in name), name  # now the bf16 matrices are cast
        torch.testing.assert_close(param, state[name].float(), rtol=0, atol=0)


def test_writes_to_a_mapped_parameter_stay_in_the_process(ckpts, tmp_path):
    path = tmp_path / "m"
    shutil.copytree(ckpts["single"], path)
    before = (path / "model.safetensors").read_bytes()
    model = LlamaForCausalLM.from_pretrained(path)
    with torch.no_grad():
        model.lm_head.weight.add_(1.0)  # copy-on-write: the process's page, never the file
    assert (path / "model.safetensors").read_bytes() == before
    fresh = LlamaForCausalLM.from_pretrained(path)
    torch.testing.assert_close(model.lm_head.weight, fresh.lm_head.weight + 1.0)


def test_a_deleted_or_replaced_file_leaves_a_mapped_model_intact(ckpts, tmp_path):
    """As documented in xf_load._checkpoint: the mapping keeps the old file's data alive."""
    path = tmp_path / "m"
    shutil.copytree(ckpts["single"], path)
    model = LlamaForCausalLM.from_pretrained(path)
    expected = _logits(LlamaForCausalLM.from_pretrained(path, disable_mmap=True))
    assert all(_views(p, _mapped_ranges(_files(path))) for p in model.parameters())

    other = save_tiny_transformers_checkpoint(
        "LlamaForCausalLM", tmp_path / "other", seed=1, dtype=torch.bfloat16, tie_word_embeddings=False
    )
    os.replace(other / "model.safetensors", path / "model.safetensors")  # e.g. a Hub cache update
    torch.testing.assert_close(_logits(model), expected, rtol=0, atol=0)
    assert not torch.equal(
        _logits(LlamaForCausalLM.from_pretrained(path)), expected
    )  # new loads see the new file

    (path / "model.safetensors").unlink()
    torch.testing.assert_close(_logits(model), expected, rtol=0, atol=0)


def test_save_pretrained_over_the_directory_a_mapped_model_came_from(ckpts, tmp_path):
    path = tmp_path / "m"
    shutil.copytree(ckpts["sharded"], path)
    model = LlamaForCausalLM.from_pretrained(path)
    expected = _logits(model)
    model.save_pretrained(path)  # written beside, then swapped in: the mapped files are never rewritten
    torch.testing.assert_close(_logits(model), expected, rtol=0, atol=0)  # still usable after the swap
    reloaded = LlamaForCausalLM.from_pretrained(path)
    torch.testing.assert_close(_logits(reloaded), expected, rtol=0, atol=0)
    model.save_pretrained(path, max_shard_size="40KB")  # and again, over its own files
    torch.testing.assert_close(_logits(LlamaForCausalLM.from_pretrained(path)), expected, rtol=0, atol=0)


def test_device_map_offload_reads_from_the_mapping(tmp_path):
    # float32: a bf16 model with a disk-offloaded layer fails in forward, mapped or not (dtype mix-up)
    path = save_tiny_transformers_checkpoint("LlamaForCausalLM", tmp_path / "f32")
    device_map = {
        "model.embed_tokens": "cpu",
        "model.layers.0": "cpu",
        "model.layers.1": "disk",
        "model.norm": "cpu",
        "lm_head": "cpu",
    }
    model = LlamaForCausalLM.from_pretrained(path, device_map=device_map, offload_folder=tmp_path / "off")
    ranges = _mapped_ranges(_files(path))
    assert _views(model.model.layers[0].self_attn.q_proj.weight, ranges)
    reference = LlamaForCausalLM.from_pretrained(path, disable_mmap=True)
    torch.testing.assert_close(_logits(model), _logits(reference), rtol=0, atol=0)


class _Recording(quantizers.Quantizer):
    """Keeps each tensor it is handed (as the weight, unquantized) and remembers where it came from."""

    quant_method = "zero-copy-recording"
    seen: ClassVar[dict[str, torch.Tensor]] = {}

    def param_needs_quantization(self, model, name):
        return name.endswith("proj.weight")

    def create_quantized_param(self, model, tensor, name, device):
        self.seen[name] = tensor
        mod_name, _, attr = name.rpartition(".")
        model.get_submodule(mod_name)._parameters[attr] = nn.Parameter(tensor.clone(), requires_grad=False)


def test_quantizers_are_handed_views_of_the_mapping(ckpts, monkeypatch):
    monkeypatch.setitem(quantizers.QUANTIZERS, _Recording.quant_method, _Recording)
    _Recording.seen = {}
    path = ckpts["single"]
    model = LlamaForCausalLM.from_pretrained(
        path, quantization_config={"quant_method": _Recording.quant_method}
    )
    ranges = _mapped_ranges(_files(path))
    assert len(_Recording.seen) == 14 and all(_views(t, ranges) for t in _Recording.seen.values())
    reference = LlamaForCausalLM.from_pretrained(path, disable_mmap=True)
    torch.testing.assert_close(_logits(model), _logits(reference), rtol=0, atol=0)


def test_disable_mmap_is_a_load_option():
    assert LoadOptions().disable_mmap is None
    assert LoadOptions.pop_from({"disable_mmap": True}).disable_mmap is True
    with pytest.raises(ValueError, match="disable_mmap"):
        LoadOptions(disable_mmap="yes")


_RSS_SCRIPT = textwrap.dedent(
    """
    import gc, json, sys
    import torch
    from xf_load.models.llama import LlamaForCausalLM

    def rss():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4096

    path = sys.argv[1]
    LlamaForCausalLM.from_pretrained(path)  # warm: modeling code and lazy imports loaded
    gc.collect()
    out = {}
    for name, kwargs in (("mapped", {}), ("copied", {"disable_mmap": True})):
        before = rss()
        model = LlamaForCausalLM.from_pretrained(path, **kwargs)
        out[name] = rss() - before
        del model
        gc.collect()
    print(json.dumps(out))
    """
)


def test_rss_growth_of_a_same_dtype_load_is_small(tmp_path):
    """In a fresh process: a mapped bf16 load grows RSS by < 0.2x the weights; a copying load by ~1x."""
    config = LlamaConfig(
        hidden_size=256,
        intermediate_size=512,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=4,
        vocab_size=16000,
        tie_word_embeddings=False,
    )
    with torch.device("meta"):
        model = LlamaForCausalLM(config)
    model = model.to_empty(device="cpu").to(torch.bfloat16)
    for param in model.parameters():
        param.data.fill_(0.5)
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    model.save_pretrained(tmp_path / "rss")
    del model
    done = subprocess.run(
        [sys.executable, "-c", _RSS_SCRIPT, str(tmp_path / "rss")],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "XF_DISABLE_PROGRESS": "1"},
    )
    assert done.returncode == 0, done.stderr
    out = {"weights": weights, **json.loads(done.stdout.strip().splitlines()[-1])}
    assert out["mapped"] < 0.2 * out["weights"], out
    assert out["copied"] > 0.5 * out["weights"], out  # the measurement sees a copy when there is one
