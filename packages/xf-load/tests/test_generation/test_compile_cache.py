"""The inductor-compiled decode step (``generate(..., compile=True)``): same tokens as eager, bucketed shapes
that do not recompile, a compile cache a second process loads from, and ``compile="auto"``'s rule.

Every test shares one compilation (a tiny Llama, one bucket: a left-padded batch of 3 rows runs as 4 rows over
a 64-slot cache), kept in a module-wide cache directory; the second-process test starts one fresh Python on
that directory.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch._dynamo.utils import counters

from xf_load.cache import StaticCache
from xf_load.generation._compile import (
    AUTO_MIN_TOKENS_COLD,
    AUTO_MIN_TOKENS_WARM,
    bucket_batch,
    bucket_length,
    compile_cache_dir,
    should_compile,
)

NEW = 40  # prompt 7 + 40 new tokens: the 64-slot bucket
MODEL_SOURCE = """
import torch
from xf_load import LlamaConfig, LlamaForCausalLM

def tiny_llama():
    torch.manual_seed(0)
    config = LlamaConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, vocab_size=128, max_position_embeddings=512, bos_token_id=1,
        eos_token_id=None, pad_token_id=0,
    )
    model = LlamaForCausalLM(config).eval()
    with torch.no_grad():  # spread the logits so that greedy paths are not decided by float noise
        model.lm_head.weight.mul_(4.0)
    return model

def padded_batch(length=7, seed=0):
    ids = torch.randint(3, 128, (3, length), generator=torch.Generator().manual_seed(seed))
    mask = torch.ones_like(ids)
    mask[1, :2] = 0  # left padding
    mask[2, :4] = 0
    return ids.masked_fill(mask == 0, 0), mask
"""
_namespace: dict = {}
exec(MODEL_SOURCE, _namespace)
tiny_llama, padded_batch = _namespace["tiny_llama"], _namespace["padded_batch"]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("xf-compile")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model: threads only wait on each other on a loaded machine
    with pytest.MonkeyPatch.context() as mp:  # TORCHINDUCTOR_CACHE_DIR is restored afterwards
        mp.setenv("XF_COMPILE_CACHE", str(directory))
        mp.setenv("TORCHINDUCTOR_CACHE_DIR", os.environ.get("TORCHINDUCTOR_CACHE_DIR", str(directory)))
        yield directory
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def model():
    return tiny_llama()


@pytest.fixture(scope="module")
def compiled(cache_dir, model):
    """The one compilation: greedy over the padded batch, and its eager reference."""
    ids, mask = padded_batch()
    eager = model.generate(ids, attention_mask=mask, max_new_tokens=NEW)
    out = model.generate(
        ids, attention_mask=mask, max_new_tokens=NEW, compile=True, return_dict_in_generate=True
    )
    print(f"first compilation in this process: {out.compile_time:.1f} s")
    return eager, out


def test_buckets():
    assert [bucket_length(n) for n in (1, 64, 65, 200, 256, 257, 1000)] == [64, 64, 128, 256, 256, 512, 1024]
    assert [bucket_batch(n) for n in (1, 2, 3, 5, 8, 9)] == [1, 2, 4, 8, 8, 16]


def test_compiled_greedy_equals_eager_on_a_padded_batch_with_padded_rows(compiled):
    eager, out = compiled
    assert torch.equal(out.sequences, eager)
    assert out.compile_time is not None and out.compile_time > 0
    cache = out.past_key_values
    assert isinstance(cache, StaticCache) and cache.max_cache_len == 64 and cache.keys[0].shape[0] == 4


def test_compiled_sampling_equals_eager_under_the_same_seed(compiled, model):
    ids, mask = padded_batch()
    kwargs = dict(attention_mask=mask, max_new_tokens=NEW, do_sample=True, top_k=20, temperature=1.3)
    eager = model.generate(ids, generator=torch.Generator().manual_seed(5), **kwargs)
    out = model.generate(
        ids, generator=torch.Generator().manual_seed(5), compile=True, return_dict_in_generate=True, **kwargs
    )
    assert torch.equal(out.sequences, eager)
    assert out.compile_time == 0.0  # the same bucket: nothing compiled


def test_other_prompt_lengths_and_batches_in_the_bucket_do_not_recompile(compiled, model):
    graphs = counters["stats"]["unique_graphs"]
    for length, rows, new in ((4, 3, 50), (11, 3, NEW), (7, 4, 30)):  # all in the 64 bucket
        ids, mask = padded_batch(length, seed=length)
        ids, mask = ids.repeat(2, 1)[:rows], mask.repeat(2, 1)[:rows]
        eager = model.generate(ids, attention_mask=mask, max_new_tokens=new)
        out = model.generate(
            ids, attention_mask=mask, max_new_tokens=new, compile=True, return_dict_in_generate=True
        )
        assert torch.equal(out.sequences, eager), (length, rows)
        assert out.compile_time == 0.0
    assert counters["stats"]["unique_graphs"] == graphs


def test_a_second_process_loads_the_step_from_the_compile_cache(compiled, cache_dir):
    assert compile_cache_dir() == cache_dir
    assert any((cache_dir / "fxgraph").iterdir())
    script = MODEL_SOURCE + textwrap.dedent(
        f"""
        import json
        import torch
        from torch._dynamo.utils import counters
        from xf_core.logging import set_verbosity

        set_verbosity("info")
        model = tiny_llama()
        ids, mask = padded_batch()
        out = model.generate(
            ids, attention_mask=mask, max_new_tokens={NEW}, compile=True, return_dict_in_generate=True
        )
        print(json.dumps({{
            "compile_time": out.compile_time,
            "fx_hit": counters["inductor"]["fxgraph_cache_hit"],
            "fx_miss": counters["inductor"]["fxgraph_cache_miss"],
            "aot_hit": counters["aot_autograd"]["autograd_cache_hit"],
            "aot_miss": counters["aot_autograd"]["autograd_cache_miss"],
            "sequences": out.sequences.tolist(),
        }}))
        """
    )
    env = {**os.environ, "XF_COMPILE_CACHE": str(cache_dir), "OMP_NUM_THREADS": "1"}
    env.pop("TORCHINDUCTOR_CACHE_DIR", None)  # xf points inductor at XF_COMPILE_CACHE itself
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    _, first = compiled
    print(
        f"compile time: first process {first.compile_time:.1f} s, second process {result['compile_time']:.1f} s"
    )
    assert result["fx_hit"] >= 1 and result["fx_miss"] == 0, result
    assert result["aot_hit"] >= 1 and result["aot_miss"] == 0, result
    assert result["sequences"] == first.sequences.tolist()
    assert "decode step loaded from the compile cache" in proc.stderr


def test_auto_rule():
    assert not should_compile(rows=1, max_new_tokens=20, warm=False)
    assert not should_compile(rows=1, max_new_tokens=AUTO_MIN_TOKENS_WARM - 1, warm=True)
    assert should_compile(rows=1, max_new_tokens=AUTO_MIN_TOKENS_WARM, warm=True)
    assert not should_compile(rows=4, max_new_tokens=AUTO_MIN_TOKENS_COLD // 8, warm=False)
    assert should_compile(rows=8, max_new_tokens=AUTO_MIN_TOKENS_COLD // 8, warm=False)


def test_auto_is_off_for_a_short_job_and_on_for_a_long_one_with_a_warm_cache(compiled, model, monkeypatch):
    from xf_load.generation import _compile

    monkeypatch.setattr(_compile, "AUTO_MIN_TOKENS_WARM", 100)  # so that a tiny job counts as long
    ids, mask = padded_batch()
    short = model.generate(
        ids, attention_mask=mask, max_new_tokens=8, compile="auto", return_dict_in_generate=True
    )
    assert short.compile_time is None  # 3 x 8 tokens: eager
    # 3 rows x 50 tokens: over the warm threshold, under the cold one; this bucket is compiled already.
    assert not should_compile(rows=3, max_new_tokens=50, warm=False)
    long = model.generate(
        ids, attention_mask=mask, max_new_tokens=50, compile="auto", return_dict_in_generate=True
    )
    assert long.compile_time == 0.0  # compiled, and nothing to compile
    dynamic = model.generate(
        ids,
        attention_mask=mask,
        max_new_tokens=50,
        compile="auto",
        cache_implementation="dynamic",
        return_dict_in_generate=True,
    )
    assert dynamic.compile_time is None  # a dynamic cache cannot be compiled
    assert torch.equal(long.sequences, dynamic.sequences)
    with pytest.raises(ValueError, match="auto"):
        model.generate(ids, max_new_tokens=2, compile="always")


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("XF_COMPILE_CACHE", raising=False)
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "mine"))  # the user's choice is kept
    assert compile_cache_dir() == tmp_path / "mine"
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert compile_cache_dir() == tmp_path / "xf" / "compile"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert compile_cache_dir() == Path.home() / ".cache" / "xf" / "compile"
    monkeypatch.setenv("XF_COMPILE_CACHE", "")
    assert compile_cache_dir() is None
