"""Worker for the multi-process tests: ``torchrun --standalone --nproc_per_node=N dist_worker.py OUT GROUP [DIR]``.

Runs every scenario of GROUP on gloo, each comparing the parallel run with the same computation done in this
process without parallelism, and (rank 0) writes ``{scenario: result}`` to OUT as JSON after each scenario, so
the test asserts on the numbers. A scenario that raises records its error type and message instead.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import traceback
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from safetensors import safe_open
from torch.distributed.tensor import DTensor

import xf_parallel as xp
from xf_load.models.bert import BertConfig, BertModel
from xf_load.models.gpt2 import GPT2Config, GPT2LMHeadModel
from xf_load.models.llama import LlamaConfig, LlamaForCausalLM

VOCAB = 64


def llama(seed: int = 0, **kw) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    cfg = dict(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
    )
    cfg.update(kw)
    return LlamaForCausalLM(LlamaConfig(**cfg))


def gpt2(seed: int = 0) -> GPT2LMHeadModel:
    torch.manual_seed(seed)
    return GPT2LMHeadModel(GPT2Config(vocab_size=VOCAB, n_embd=32, n_head=4, n_layer=2, n_positions=64))


def bert(seed: int = 0) -> BertModel:
    torch.manual_seed(seed)
    return BertModel(
        BertConfig(
            vocab_size=VOCAB,
            hidden_size=32,
            num_attention_heads=4,
            intermediate_size=64,
            num_hidden_layers=2,
            max_position_embeddings=64,
        )
    )


def full(t: torch.Tensor) -> torch.Tensor:
    return t.full_tensor() if isinstance(t, DTensor) else t


def max_param_diff(a: torch.nn.Module, b: torch.nn.Module) -> float:
    pa = dict(a.named_parameters())
    diffs = [(full(p.detach()) - pa[n].detach()).abs().max().item() for n, p in _clean(b).items()]
    return max(diffs)


def _clean(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    out = {}
    for n, p in model.named_parameters():
        n = n.replace("module.", "", 1) if n.startswith("module.") else n
        out[n.replace("_checkpoint_wrapped_module.", "")] = p
    return out


def data(steps: int, per_rank: int, world: int, seed: int = 1) -> list[list[list[torch.Tensor]]]:
    """data[step][rank] = that rank's micro-batches (one sequence each); labels have some -100s so ranks hold
    different token counts."""
    n = steps * per_rank * world
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, VOCAB, (n, 12), generator=g)
    labels = ids.clone()
    labels[torch.rand(n, 12, generator=g) < 0.3] = -100
    samplers = [xp.ShardedSampler(n, rank=r, world_size=world, seed=seed) for r in range(world)]
    order = [list(s) for s in samplers]
    return [
        [
            [(ids[i : i + 1], labels[i : i + 1]) for i in order[r][s * per_rank : (s + 1) * per_rank]]
            for r in range(world)
        ]
        for s in range(steps)
    ]


def train(
    model, opt, steps_batches, *, dp_degree: int, group=None, local_tokens: bool = False, clip: float = 0.05
):
    norms = []
    for micro in steps_batches:
        labels = [lab for _, lab in micro]
        tokens = (
            int(sum((lab[..., 1:] != -100).sum() for lab in labels))
            if local_tokens
            else xp.global_token_count(labels, group=group)
        )
        for i, (ids, lab) in enumerate(micro):
            with xp.no_sync(model, sync=i == len(micro) - 1):
                logits = model(ids).logits
                loss = F.cross_entropy(
                    logits[:, :-1].flatten(0, 1).float(), lab[:, 1:].flatten(), reduction="sum"
                )
                xp.scaled_loss(loss, tokens, dp_degree=dp_degree).backward()
        norms.append(float(xp.clip_grad_norm_(model.parameters(), clip)))
        opt.step()
        opt.zero_grad()
    return norms


def reference(model_fn, steps: list[list[list]], clip: float = 0.05):
    """The single-process run: every rank's micro-batches of a step in one accumulation."""
    model = model_fn()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    merged = [[mb for rank_batches in step for mb in rank_batches] for step in steps]
    norms = train(model, opt, merged, dp_degree=1, local_tokens=True, clip=clip)
    return model, norms


# ---- scenarios ----------------------------------------------------------------------------------------------
def s_dims_error(ctx):
    try:
        xp.ParallelDims(dp_shard=3, tp=2).build_mesh()
    except xp.ParallelDimsError as e:
        return {"error": str(e), "is_value_error": isinstance(e, ValueError)}
    return {"error": None}


def s_ddp(ctx):
    world, rank = ctx["world"], ctx["rank"]
    steps = data(2, 2, world)
    ref, ref_norms = reference(llama, steps)
    model = xp.parallelize(llama(), xp.ParallelDims(dp_replicate=world))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    norms = train(model, opt, [s[rank] for s in steps], dp_degree=world)
    # inside no_sync each rank keeps its own gradient; the next synced backward averages them
    ids = torch.randint(0, VOCAB, (1, 8), generator=torch.Generator().manual_seed(10 + rank))
    with xp.no_sync(model):
        model(ids).logits.sum().backward()
    grad = model.module.lm_head.weight.grad.clone()
    grads = [torch.zeros_like(grad) for _ in range(world)]
    dist.all_gather(grads, grad)
    return {
        "diff": max_param_diff(ref, model),
        "norm_diff": max(abs(a - b) for a, b in zip(norms, ref_norms)),
        "wrapped": type(model).__name__,
        "unsynced_grads_differ": bool((grads[0] - grads[1]).abs().max() > 0),
    }


def s_fsdp(ctx):
    world, rank = ctx["world"], ctx["rank"]
    steps = data(2, 2, world)
    ref, ref_norms = reference(llama, steps)
    model = xp.parallelize(llama(), xp.ParallelDims(dp_shard=world))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    norms = train(model, opt, [s[rank] for s in steps], dp_degree=world)
    local = sum(
        full(p).numel() if not isinstance(p, DTensor) else p.to_local().numel() for p in model.parameters()
    )
    # with activation checkpointing (recomputed blocks): the same training
    ac = xp.parallelize(llama(), xp.ParallelDims(dp_shard=world), activation_checkpointing=True)
    ac_opt = torch.optim.AdamW(ac.parameters(), lr=1e-2)
    train(ac, ac_opt, [s[rank] for s in steps], dp_degree=world)
    wrapped = sum(type(m).__name__ == "CheckpointWrapper" for m in ac.modules())
    return {
        "diff": max_param_diff(ref, model),
        "norm_diff": max(abs(a - b) for a, b in zip(norms, ref_norms)),
        "local_numel": local,
        "full_numel": sum(p.numel() for p in ref.parameters()),
        "ac_diff": max_param_diff(ref, ac),
        "ac_wrapped_blocks": wrapped,
    }


def s_fsdp_mixed_precision(ctx):
    world = ctx["world"]
    model = xp.apply_fsdp(
        llama(),
        xp.ParallelDims(dp_shard=world).build_mesh(),
        mixed_precision=xp.MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32),
    )
    seen = []
    model.model.layers[0].self_attn.q_proj.register_forward_hook(lambda m, i, o: seen.append(str(o.dtype)))
    ids = torch.randint(0, VOCAB, (1, 8))
    model(ids).logits.float().sum().backward()
    return {
        "compute_dtype": seen[0],
        "param_dtype": str(next(model.parameters()).dtype),
        "grad_dtype": str(next(model.parameters()).grad.dtype),
    }


def s_tp(ctx):
    world = ctx["world"]
    out = {}
    ids = torch.randint(0, VOCAB, (2, 10), generator=torch.Generator().manual_seed(3))
    for name, fn in (("llama", llama), ("gpt2", gpt2), ("bert", bert)):
        ref, model = fn().eval(), fn().eval()
        xp.apply_tp(model, xp.ParallelDims(tp=world).build_mesh())
        get = (lambda o: o.last_hidden_state) if name == "bert" else (lambda o: o.logits)
        with torch.no_grad():
            out[f"{name}_forward_diff"] = (get(model(ids)) - get(ref(ids))).abs().max().item()
        out[f"{name}_sharded"] = sum(isinstance(p, DTensor) for p in model.parameters())
    steps = data(2, 2, 1)
    ref, ref_norms = reference(llama, steps)
    model = xp.apply_tp(llama(), xp.ParallelDims(tp=world).build_mesh())
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    norms = train(model, opt, [s[0] for s in steps], dp_degree=1, local_tokens=True)
    out["train_diff"] = max_param_diff(ref, model)
    out["norm_diff"] = max(abs(a - b) for a, b in zip(norms, ref_norms))
    return out


def s_tp_heads_error(ctx):
    model = llama(num_attention_heads=3, num_key_value_heads=3, hidden_size=24, intermediate_size=48)
    try:
        xp.apply_tp(model, xp.ParallelDims(tp=ctx["world"]).build_mesh())
    except xp.TensorParallelPlanError as e:
        return {"error": str(e), "module": e.module}
    return {"error": None}


def s_tp_from_pretrained(ctx):
    from xf_load import AutoModel, AutoModelForCausalLM

    out = {}
    mesh = xp.ParallelDims(tp=ctx["world"]).build_mesh()
    ids = torch.randint(0, VOCAB, (2, 10), generator=torch.Generator().manual_seed(4))
    for name in ("llama", "gpt2", "bert"):
        path = Path(ctx["dir"]) / name
        auto = AutoModel if name == "bert" else AutoModelForCausalLM
        get = (lambda o: o.last_hidden_state) if name == "bert" else (lambda o: o.logits)
        ref = auto.from_pretrained(path)
        model, info = auto.from_pretrained(path, tp_plan="auto", device_mesh=mesh, output_loading_info=True)
        out[f"{name}_bytes_read"] = info["bytes_read"]
        with torch.no_grad():
            logits = get(model(ids))
            out[f"{name}_diff"] = (logits - get(ref(ids))).abs().max().item()
        out[f"{name}_is_plain_tensor"] = type(logits) is torch.Tensor
        out[f"{name}_sharded"] = sum(isinstance(p, DTensor) for p in model.parameters())
    return out


def s_tp_local_slices(ctx):
    """What the slice-reading loader does: prepare on the skeleton, read only local_slice of each stored tensor,
    set the local tensors, apply. Counts the bytes read."""
    mesh = xp.ParallelDims(tp=ctx["world"]).build_mesh()
    path = Path(ctx["dir"]) / "llama"
    ref = LlamaForCausalLM.from_pretrained(path)
    with torch.device("meta"):
        model = LlamaForCausalLM(ref.config)
    hook = xp.TensorParallelLoader(tp_plan="auto", device_mesh=mesh)
    hook.prepare(model)
    read = total = 0
    slices = {}
    with safe_open(str(path / "model.safetensors"), framework="pt") as f:
        for key in f.keys():  # noqa: SIM118 (safe_open is not iterable)
            sl = f.get_slice(key)
            shape = tuple(sl.get_shape())
            local = hook.local_slice(key, shape)
            tensor = f.get_tensor(key) if local is None else sl[local]
            if local is not None:
                slices[key] = [[s.start, s.stop] for s in local]
            read += tensor.numel() * tensor.element_size()
            total += torch.Size(shape).numel() * tensor.element_size()
            module_name, _, pname = key.rpartition(".")
            module = model.get_submodule(module_name)
            setattr(module, pname, torch.nn.Parameter(tensor))
    model.tie_weights()
    for name, buf in list(model.named_buffers()):
        if buf.is_meta:
            module_name, _, bname = name.rpartition(".")
            model.get_submodule(module_name).register_buffer(
                bname, dict(ref.named_buffers())[name].clone(), persistent=False
            )
    hook.apply(model)
    model.eval()
    ids = torch.randint(0, VOCAB, (2, 10), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        diff = (model(ids).logits - ref(ids).logits).abs().max().item()
    return {
        "bytes_read": read,
        "bytes_total": total,
        "diff": diff,
        "q_proj_slice": slices.get("model.layers.0.self_attn.q_proj.weight"),
        "o_proj_slice": slices.get("model.layers.0.self_attn.o_proj.weight"),
        "norm_slice": slices.get("model.norm.weight"),
    }


def s_dcp_save(ctx):
    """FSDP-sharded model + optimizer saved at this world size; rank 0 reports the weights it saved."""
    world, rank = ctx["world"], ctx["rank"]
    model = xp.parallelize(llama(), xp.ParallelDims(dp_shard=world))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    train(model, opt, [s[rank] for s in data(1, 1, world)], dp_degree=world)
    sched.step()
    xp.save_checkpoint(
        Path(ctx["dir"]) / f"ckpt-w{world}",
        model,
        opt,
        scheduler=sched,
        data={"epoch": 0, "start": 1},
        step=1,
    )
    xp.export_pretrained(model, Path(ctx["dir"]) / f"export-w{world}")
    sums = {n: float(full(p.detach()).double().sum()) for n, p in model.named_parameters()}
    return {"param_sums": sums, "lr": sched.get_last_lr()[0]}


def s_dcp_load(ctx):
    """Load every checkpoint named in ctx["load"] into a TP or FSDP model at this world size."""
    world = ctx["world"]
    out = {}
    for source in [s for s in ("ckpt-w1", "ckpt-w2") if (Path(ctx["dir"]) / s).exists()]:
        for how in ("fsdp", "tp"):
            tp = xp.ParallelDims(tp=world) if world <= 2 else xp.ParallelDims(dp_shard=world // 2, tp=2)
            dims = xp.ParallelDims(dp_shard=world) if how == "fsdp" else tp  # 4 ranks: FSDP x TP (2 kv heads)
            model = xp.parallelize(llama(seed=99), dims)
            opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
            sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
            state = xp.load_checkpoint(Path(ctx["dir"]) / source, model, opt, scheduler=sched)
            sums = {n: float(full(p.detach()).double().sum()) for n, p in model.named_parameters()}
            steps = [int(s["step"]) for s in opt.state_dict()["state"].values()][:1]
            out[f"{source}/{how}"] = {
                "param_sums": sums,
                "lr": sched.get_last_lr()[0],
                "step": state["step"],
                "data": state["data"],
                "opt_step": steps,
            }
    return out


def s_2d(ctx):
    world, rank = ctx["world"], ctx["rank"]
    dims = xp.ParallelDims(dp_shard=2, tp=2)
    mesh = dims.build_mesh()
    steps = data(2, 2, 2)
    ref, ref_norms = reference(llama, steps)
    model = xp.parallelize(llama(), dims, mesh=mesh)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    dp_rank = mesh["dp_shard"].get_local_rank()
    norms = train(model, opt, [s[dp_rank] for s in steps], dp_degree=2, group=mesh["dp_shard"].get_group())
    placements = {str(p.placements) for p in model.parameters() if isinstance(p, DTensor)}
    return {
        "diff": max_param_diff(ref, model),
        "norm_diff": max(abs(a - b) for a, b in zip(norms, ref_norms)),
        "placements": sorted(placements),
        "world": world,
        "rank": rank,
    }


def s_cp_cpu(ctx):
    try:
        xp.parallelize(llama(), xp.ParallelDims(cp=ctx["world"]))
    except xp.ContextParallelUnavailableError as e:
        return {"error": str(e)}
    return {"error": None}


def s_cp_gpu(ctx):
    """Ring attention over the "cp" ranks (CUDA only) gives the plain forward's logits."""
    from torch.distributed.tensor.experimental._attention import context_parallel_unshard

    world = ctx["world"]
    mesh = xp.ParallelDims(dp_shard=world).build_mesh()  # the ranks that share each sequence
    model = llama(attn_implementation="sdpa").cuda().eval()
    ids = torch.randint(0, VOCAB, (2, 16 * world), generator=torch.Generator().manual_seed(6)).cuda()
    pos = torch.arange(ids.shape[1], device="cuda").expand(2, -1).contiguous()
    with torch.no_grad():
        ref = model(ids, position_ids=pos, use_cache=False).logits
        local_ids, local_pos = ids.clone(), pos.clone()
        with xp.context_parallel(mesh, buffers=[local_ids, local_pos], seq_dims=[1, 1]):
            local = model(local_ids, position_ids=local_pos, use_cache=False).logits
        (logits,) = context_parallel_unshard(mesh, [local], [1])
    return {"diff": (logits - ref).abs().max().item()}


def s_kill_during_save(ctx):
    """Save "before", then start saving "after" and SIGKILL rank 1 while it writes its shard."""
    world, rank = ctx["world"], ctx["rank"]
    model = xp.parallelize(llama(), xp.ParallelDims(dp_shard=world))
    xp.save_checkpoint(Path(ctx["dir"]) / "before", model, step=1)
    from torch.distributed.checkpoint import FileSystemWriter

    original = FileSystemWriter.write_data

    def dying_write(self, plan, planner):
        if rank == 1:
            os.kill(os.getpid(), signal.SIGKILL)
        return original(self, plan, planner)

    FileSystemWriter.write_data = dying_write
    _write(ctx, "kill_during_save", {"started": True})
    xp.save_checkpoint(Path(ctx["dir"]) / "before", model, step=2)  # overwrites in place: must not damage it
    return {"finished": True}


GROUPS = {  # "two" ends with the scenario that kills rank 1, so that launch exits non-zero
    "two": [
        s_dims_error,
        s_ddp,
        s_fsdp,
        s_fsdp_mixed_precision,
        s_tp,
        s_tp_heads_error,
        s_tp_from_pretrained,
        s_tp_local_slices,
        s_cp_cpu,
        s_dcp_save,
        s_dcp_load,
        s_kill_during_save,
    ],
    "four": [s_2d, s_dcp_load],
    "cp_gpu": [s_cp_gpu],
}


def _write(ctx, name, result):
    if ctx["rank"] == 0:
        ctx["results"][name] = result
        Path(ctx["out"]).write_text(json.dumps(ctx["results"], indent=1))


def main() -> None:
    out, group = sys.argv[1], sys.argv[2]
    xp.init_distributed()
    ctx = {
        "out": out,
        "dir": sys.argv[3] if len(sys.argv) > 3 else None,
        "rank": dist.get_rank(),
        "world": dist.get_world_size(),
        "results": {},
    }
    for scenario in GROUPS[group]:
        name = scenario.__name__[2:]
        try:
            result = scenario(ctx)
        except Exception as e:  # recorded for the test to show
            result = {"exception": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()}
        _write(ctx, name, result)
        dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
