"""xf-parallel on real process groups: 2 and 4 gloo processes launched with torchrun --standalone.

One launch per world size runs every scenario of ``dist_worker.py`` (each compares the parallel run with the
same computation in one process) and writes JSON; the tests below assert on it. The single-process side (a
checkpoint saved and loaded without any process group, corruption, the error cases) runs in this process.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import xf_parallel as xp
from xf_core.testing import requires_gpu

WORKER = Path(__file__).with_name("dist_worker.py")
TOL = 1e-5


def _worker_module():
    spec = importlib.util.spec_from_file_location("xf_parallel_dist_worker", WORKER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


w = _worker_module()


def launch(
    nproc: int, group: str, directory: Path, *, check: bool = True
) -> tuple[dict, subprocess.CompletedProcess]:
    out = directory / f"results-{group}.json"
    env = {**os.environ, "XF_DISABLE_PROGRESS": "1", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={nproc}",
        str(WORKER),
        str(out),
        group,
        str(directory),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    if check and proc.returncode:
        pytest.fail(
            f"torchrun {group} exited with {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
        )
    results = json.loads(out.read_text()) if out.exists() else {}
    return results, proc


def ok(results: dict, name: str) -> dict:
    result = results[name]
    assert "exception" not in result, result.get("traceback")
    return result


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """Tiny Llama/GPT-2/BERT checkpoints, and a DCP checkpoint saved by this process without a process group."""
    d = tmp_path_factory.mktemp("parallel")
    for name, build in (("llama", w.llama), ("gpt2", w.gpt2), ("bert", w.bert)):
        build(seed=7).save_pretrained(d / name)
    model = w.llama()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    w.train(model, opt, [w.data(1, 2, 1, seed=2)[0][0]], dp_degree=1, local_tokens=True)
    sched.step()
    xp.save_checkpoint(d / "ckpt-w1", model, opt, scheduler=sched, data={"epoch": 0, "start": 2}, step=1)
    (d / "w1-sums.json").write_text(json.dumps(_sums(model)))
    return d


def _sums(model: torch.nn.Module) -> dict[str, float]:
    return {n: float(p.detach().double().sum()) for n, p in model.named_parameters()}


@pytest.fixture(scope="module")
def two(workdir: Path) -> dict:
    results, proc = launch(2, "two", workdir, check=False)  # its last scenario kills rank 1 mid-save
    if "kill_during_save" not in results:
        pytest.fail(
            f"torchrun two exited with {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
        )
    return {**results, "returncode": proc.returncode}


@pytest.fixture(scope="module")
def four(workdir: Path, two: dict) -> dict:  # after `two`: it loads the 2-rank checkpoint
    return launch(4, "four", workdir)[0]


# ---- process groups and the mesh ----------------------------------------------------------------------------
def test_dims_that_do_not_match_the_world_size_show_the_equation(two):
    with pytest.raises(
        ValueError, match=r"^dp_replicate 1 × dp_shard 3 × cp 1 × tp 2 = 6, but the world size is 4"
    ):
        xp.ParallelDims(dp_shard=3, tp=2, world_size=4)
    assert ok(two, "dims_error")["error"].startswith(
        "dp_replicate 1 × dp_shard 3 × cp 1 × tp 2 = 6, but the world size is 2"
    )
    assert two["dims_error"]["is_value_error"]


def test_one_dim_of_minus_one_is_inferred():
    dims = xp.ParallelDims(dp_shard=-1, tp=2, world_size=8)
    assert (dims.dp_shard, dims.dp) == (4, 4)
    with pytest.raises(xp.ParallelDimsError, match="only one dim may be -1"):
        xp.ParallelDims(dp_shard=-1, tp=-1, world_size=8)
    with pytest.raises(
        xp.ParallelDimsError, match=r"dp_shard \? × cp 1 × tp 3 = \?, but the world size is 8"
    ):
        xp.ParallelDims(dp_shard=-1, tp=3, world_size=8)


def test_mesh_and_tp_loading_need_a_process_group(workdir):
    from xf_load import AutoModelForCausalLM

    with pytest.raises(xp.ProcessGroupNotInitializedError, match="torchrun"):
        xp.ParallelDims(tp=2)
    with pytest.raises(xp.ProcessGroupNotInitializedError, match=r"from_pretrained\(tp_plan='auto'\)"):
        AutoModelForCausalLM.from_pretrained(workdir / "llama", tp_plan="auto")


# ---- data parallel ------------------------------------------------------------------------------------------
def test_sampler_deals_every_sample_once_per_epoch_deterministically():
    for n, world in ((10, 3), (8, 2), (1, 4)):
        samplers = [xp.ShardedSampler(n, rank=r, world_size=world, seed=5) for r in range(world)]
        epoch0 = [list(s) for s in samplers]
        assert sorted(i for part in epoch0 for i in part) == list(range(n))
        assert [len(s) for s in samplers] == [len(p) for p in epoch0]
        assert [list(s) for s in samplers] == epoch0  # same seed and epoch: same order
        for s in samplers:
            s.set_epoch(1)
        epoch1 = [list(s) for s in samplers]
        assert sorted(i for part in epoch1 for i in part) == list(range(n))
        if n > 3:
            assert epoch1 != epoch0
    resumed = xp.ShardedSampler(10, rank=1, world_size=2, seed=5)
    resumed.load_state_dict({"epoch": 0, "start": 2})
    assert list(resumed) == list(xp.ShardedSampler(10, rank=1, world_size=2, seed=5))[2:]


def test_token_count_skips_ignored_labels_and_the_first_position_of_causal_lm():
    labels = [torch.tensor([[5, -100, 7, 8]]), torch.tensor([[-100, 1, -100, 2]])]
    assert xp.global_token_count(labels) == 4  # targets are labels[1:]: 7, 8 and 1, 2
    assert xp.global_token_count(labels, causal=False) == 5


def test_ddp_training_equals_one_process_on_the_global_batch(two):
    r = ok(two, "ddp")
    assert r["wrapped"] == "DistributedDataParallel"
    assert r["diff"] < TOL and r["norm_diff"] < TOL  # accumulation, global-token loss, clipping included
    assert r["unsynced_grads_differ"]  # no_sync really skips the all-reduce


def test_fsdp_training_equals_one_process_and_shards_parameters_with_or_without_checkpointing(two):
    r = ok(two, "fsdp")
    assert r["diff"] < TOL and r["norm_diff"] < TOL
    assert r["local_numel"] == r["full_numel"] // 2
    assert r["ac_wrapped_blocks"] == 2 and r["ac_diff"] < TOL  # activation checkpointing changes nothing


def test_fsdp_mixed_precision_computes_in_bf16_and_keeps_fp32_parameters(two):
    r = ok(two, "fsdp_mixed_precision")
    assert r == {
        "compute_dtype": "torch.bfloat16",
        "param_dtype": "torch.float32",
        "grad_dtype": "torch.float32",
    }


def test_2d_fsdp_by_tp_on_four_processes_equals_one_process(four):
    r = ok(four, "2d")
    assert r["diff"] < TOL and r["norm_diff"] < TOL
    assert any(p.count("Shard") == 2 for p in r["placements"])  # FSDP's shard on top of TP's split


# ---- tensor parallel ----------------------------------------------------------------------------------------
def test_tp_forward_and_training_equal_one_process(two):
    r = ok(two, "tp")
    for name, sharded in (("llama", 14), ("gpt2", 8), ("bert", 8)):  # 7 Llama linears/layer; 2 MLP (w+b) ...
        assert r[f"{name}_forward_diff"] < TOL, name
        assert r[f"{name}_sharded"] == sharded, name
    assert r["train_diff"] < TOL and r["norm_diff"] < TOL


def test_tp_from_pretrained_returns_full_logits_equal_to_one_process(two):
    r = ok(two, "tp_from_pretrained")
    for name in ("llama", "gpt2", "bert"):
        assert r[f"{name}_diff"] < TOL, name
        assert r[f"{name}_is_plain_tensor"], name
        assert r[f"{name}_sharded"] > 0, name
    model = w.llama()  # the loader itself read only this rank's half of every split projection
    split = sum(p.numel() * 4 for n, p in model.named_parameters() if "proj" in n)
    assert r["llama_bytes_read"] == sum(p.numel() * 4 for p in model.parameters()) - split // 2


def test_tp_loading_reads_only_local_slices(two, workdir):
    r = ok(two, "tp_local_slices")
    assert r["diff"] < TOL  # local shards wrapped with from_local give the same logits
    assert r["q_proj_slice"] == [[0, 16], [None, None]]  # rank 0: first half of the output features
    assert r["o_proj_slice"] == [[None, None], [0, 16]]  # rowwise: first half of the input features
    assert r["norm_slice"] is None  # replicated: read whole
    model = w.llama()
    split = sum(p.numel() * 4 for n, p in model.named_parameters() if "proj" in n)
    total = sum(p.numel() * 4 for p in model.parameters())
    assert r["bytes_total"] == total
    assert r["bytes_read"] == total - split // 2


def test_tp_degree_that_does_not_divide_the_heads_is_refused(two):
    r = ok(two, "tp_heads_error")
    assert r["module"] == "model.layers.0.self_attn"
    assert "TP degree 2 does not divide the 3 heads" in r["error"]


def test_unknown_style_and_unmatched_pattern_are_named():
    from xf_parallel.tensor_parallel import resolve_plan

    with pytest.raises(xp.TensorParallelPlanError, match="'diagonal' is not a style"):
        resolve_plan(w.llama(), {"layers.*.mlp.up_proj": "diagonal"}, 2)
    with pytest.raises(xp.TensorParallelPlanError, match="'layers.*.mlp.nope' matches no module"):
        resolve_plan(w.llama(), {"layers.*.mlp.nope": "colwise"}, 2)


def test_ddp_with_tp_is_refused_before_anything_is_built():
    with pytest.raises(xp.TensorParallelPlanError, match="DDP cannot replicate tensor-parallel"):
        xp.parallelize(w.llama(), xp.ParallelDims(dp_replicate=2, tp=2, world_size=4))


# ---- context parallel ---------------------------------------------------------------------------------------
def test_context_parallel_on_cpu_says_it_needs_cuda(two):
    assert "only on CUDA" in ok(two, "cp_cpu")["error"]
    if not torch.cuda.is_available():
        with pytest.raises(xp.ContextParallelUnavailableError, match="needs CUDA"):
            from xf_parallel.context_parallel import require_context_parallel

            require_context_parallel()


@requires_gpu
def test_context_parallel_on_gpu_equals_plain_attention(tmp_path):
    results, _ = launch(1, "cp_gpu", tmp_path)
    r = ok(results, "cp_gpu")
    assert r["diff"] < 1e-3


# ---- distributed checkpoints --------------------------------------------------------------------------------
def _assert_same(saved: dict[str, float], loaded: dict[str, float]) -> None:
    assert saved.keys() == loaded.keys()
    for name in saved:
        assert abs(saved[name] - loaded[name]) < 1e-4, name


def test_dcp_reshard_matrix(two, four, workdir):
    saved_w2 = ok(two, "dcp_save")
    saved_w1 = json.loads((workdir / "w1-sums.json").read_text())
    loads = {
        **{f"w2:{k}": v for k, v in ok(two, "dcp_load").items()},
        **{f"w4:{k}": v for k, v in ok(four, "dcp_load").items()},
    }
    expected = {
        "w2:ckpt-w1/fsdp",
        "w2:ckpt-w1/tp",
        "w2:ckpt-w2/fsdp",
        "w2:ckpt-w2/tp",
        "w4:ckpt-w1/fsdp",
        "w4:ckpt-w1/tp",
        "w4:ckpt-w2/fsdp",
        "w4:ckpt-w2/tp",
    }
    assert set(loads) == expected
    for key, r in loads.items():  # 1 -> 2, 2 -> 2, 1 -> 4, 2 -> 4; into FSDP and into TP
        _assert_same(saved_w1 if "ckpt-w1" in key else saved_w2["param_sums"], r["param_sums"])
        assert r["lr"] == 0.005 and r["step"] == 1 and r["opt_step"] == [1], key
    assert loads["w2:ckpt-w1/tp"]["data"] == {"epoch": 0, "start": 2}
    # 2 -> 1: a plain process without a process group
    model = w.llama(seed=99)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    state = xp.load_checkpoint(workdir / "ckpt-w2", model, opt, scheduler=sched)
    _assert_same(saved_w2["param_sums"], _sums(model))
    assert state["data"] == {"epoch": 0, "start": 1} and sched.get_last_lr() == [0.005]
    assert all(int(s["step"]) == 1 for s in opt.state_dict()["state"].values())


def test_export_from_rank_0_is_a_normal_pretrained_directory(two, workdir):
    from xf_load.models.llama import LlamaForCausalLM

    saved = ok(two, "dcp_save")["param_sums"]
    model = LlamaForCausalLM.from_pretrained(workdir / "export-w2")
    _assert_same(saved, _sums(model))


def _copy(workdir: Path, tmp_path: Path) -> Path:
    ckpt = tmp_path / "ckpt"
    shutil.copytree(workdir / "ckpt-w2", ckpt)
    return ckpt


def test_corrupted_byte_is_detected_and_the_file_named(two, workdir, tmp_path):
    ckpt = _copy(workdir, tmp_path)
    shard = ckpt / "__1_0.distcp"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0x01
    shard.write_bytes(bytes(data))
    with pytest.raises(xp.CheckpointCorruptedError, match=r"__1_0\.distcp does not match its SHA-256") as e:
        xp.load_checkpoint(ckpt, w.llama())
    assert e.value.file == shard


def test_truncated_and_missing_files_are_named(two, workdir, tmp_path):
    ckpt = _copy(workdir, tmp_path)
    (ckpt / ".metadata").write_bytes((ckpt / ".metadata").read_bytes()[:-10])
    with pytest.raises(xp.CheckpointCorruptedError, match=r"\.metadata is truncated"):
        xp.verify_checkpoint(ckpt)
    ckpt = _copy(workdir, tmp_path / "b")
    (ckpt / "__0_0.distcp").unlink()
    with pytest.raises(xp.CheckpointCorruptedError, match=r"__0_0\.distcp is missing"):
        xp.verify_checkpoint(ckpt)
    with pytest.raises(xp.CheckpointNotFoundError, match="manifest.json is missing"):
        xp.verify_checkpoint(tmp_path / "nothing")


def test_rank_killed_mid_save_leaves_the_previous_checkpoint_loadable(two, workdir):
    assert two["returncode"] != 0 and "finished" not in two["kill_during_save"]  # rank 1 died in DCP's write
    assert (workdir / "before.partial").exists()  # the unfinished save, never renamed into place
    model = w.llama(seed=99)
    assert xp.load_checkpoint(workdir / "before", model) == {"step": 1}
    _assert_same(_sums(w.llama()), _sums(model))
