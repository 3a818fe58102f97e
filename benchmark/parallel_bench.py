"""Data parallel and FSDP on this machine: tokens/s of DP on 2 processes vs 1, FSDP memory per rank vs 1.

    uv run python benchmark/parallel_bench.py [--steps 10] [--nproc 2] [--tiny]

Each measurement is a ``torchrun --standalone`` launch of this script in worker mode (gloo on CPU, NCCL on
GPUs) training a small random Llama with ``xf_parallel.parallelize``: batch 8 x 128 tokens per rank (weak
scaling: N ranks process N times the tokens per step). Reported per launch:

* ``tokens_per_s``: global tokens per second (timed after 2 warm-up steps), and ``tokens_per_s_per_rank``;
* ``state_bytes_per_rank``: parameters + gradients + AdamW state held by one rank (exact; FSDP shards them);
* on CUDA also ``peak_gpu_bytes`` (``torch.cuda.max_memory_allocated``) and ``mfu`` (torchtitan's metric:
  model FLOPs per token ``6 N + 12 L H T`` x tokens/s per GPU / the GPU's peak bf16 dense FLOP/s).

Every launch is recorded through the MetricsRecorder (contenders ``dp1``, ``dp2``, ``fsdp1``, ``fsdp2``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from metrics import MetricsRecorder  # benchmark/ is on sys.path: this file runs as a script

MODEL = {
    "vocab_size": 4000,
    "hidden_size": 256,
    "intermediate_size": 688,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "max_position_embeddings": 256,
}
TINY = {**MODEL, "vocab_size": 96, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2}
BATCH, SEQ, WARMUP = 8, 128, 2
PEAK_BF16_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12, "L4": 121e12}


def _state_bytes(model, optimizer) -> int:
    from torch.distributed.tensor import DTensor

    def local(t):
        return t.to_local() if isinstance(t, DTensor) else t

    total = 0
    for p in model.parameters():
        total += local(p).numel() * p.element_size()
        if p.grad is not None:
            total += local(p.grad).numel() * p.grad.element_size()
    for state in optimizer.state.values():
        for value in state.values():
            if hasattr(value, "numel") and value.dim() > 0:
                total += local(value).numel() * value.element_size()
    return total


def worker(mode: str, out: str, steps: int, tiny: bool) -> None:
    import torch
    import torch.distributed as dist
    import torch.nn.functional as F

    import xf_parallel as xp
    from xf_load.models.llama import LlamaConfig, LlamaForCausalLM

    xp.init_distributed()
    world, rank = dist.get_world_size(), dist.get_rank()
    cuda = torch.cuda.is_available()
    device = torch.device("cuda", torch.cuda.current_device()) if cuda else torch.device("cpu")
    torch.manual_seed(0)
    config = LlamaConfig(**(TINY if tiny else MODEL))
    with device:
        model = LlamaForCausalLM(config)
    n_params = sum(p.numel() for p in model.parameters())
    if world > 1:
        dims = xp.ParallelDims(dp_replicate=world) if mode == "dp" else xp.ParallelDims(dp_shard=world)
        mp = xp.MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32) if cuda else None
        model = xp.parallelize(model, dims, mixed_precision=mp)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    g = torch.Generator().manual_seed(rank)

    def step() -> None:
        ids = torch.randint(0, config.vocab_size, (BATCH, SEQ), generator=g).to(device)
        with torch.autocast("cuda", torch.bfloat16, enabled=cuda and world == 1):
            logits = model(ids, use_cache=False).logits
        loss = F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), ids[:, 1:].flatten())
        loss.backward()
        xp.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=False)

    for _ in range(WARMUP):
        step()
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    dist.barrier()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if cuda:
        torch.cuda.synchronize()
    dist.barrier()
    seconds = time.perf_counter() - start
    tokens = steps * BATCH * SEQ * world
    result = {
        "tokens_per_s": tokens / seconds,
        "tokens_per_s_per_rank": tokens / seconds / world,
        "state_bytes_per_rank": float(_state_bytes(model, optimizer)),
    }
    if cuda:
        result["peak_gpu_bytes"] = float(torch.cuda.max_memory_allocated())
        flops_per_token = 6 * n_params + 12 * config.num_hidden_layers * config.hidden_size * SEQ
        name = torch.cuda.get_device_name()
        peak = next((v for k, v in PEAK_BF16_FLOPS.items() if k in name), None)
        if peak is not None:
            result["mfu"] = flops_per_token * result["tokens_per_s_per_rank"] / peak
    if rank == 0:
        Path(out).write_text(json.dumps(result))
    dist.destroy_process_group()


def launch(mode: str, nproc: int, steps: int, tiny: bool) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="xf-parallelbench-") as tmp:
        out = Path(tmp) / "result.json"
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={nproc}",
            __file__,
            "--worker",
            mode,
            str(out),
            "--steps",
            str(steps),
        ] + (["--tiny"] if tiny else [])
        env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
        subprocess.run(cmd, check=True, env=env, capture_output=True, text=True)
        return json.loads(out.read_text())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--nproc", type=int, default=2, help="processes for the parallel runs")
    parser.add_argument("--tiny", action="store_true", help="a 2-layer model, to check the script quickly")
    parser.add_argument("--worker", nargs=2, metavar=("MODE", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker[0], args.worker[1], args.steps, args.tiny)
        return

    results = {}
    with MetricsRecorder("parallel", steps=args.steps, tiny=args.tiny, nproc=args.nproc) as recorder:
        for mode in ("dp", "fsdp"):
            for nproc in (1, args.nproc):
                results[f"{mode}{nproc}"] = launch(mode, nproc, args.steps, args.tiny)
                recorder.record(f"{mode}{nproc}", results[f"{mode}{nproc}"])
    for name, r in results.items():
        print(name, json.dumps({k: round(v, 4) if v < 10 else round(v) for k, v in r.items()}))
    dp1, dpn = results["dp1"]["tokens_per_s"], results[f"dp{args.nproc}"]["tokens_per_s"]
    f1, fn = results["fsdp1"]["state_bytes_per_rank"], results[f"fsdp{args.nproc}"]["state_bytes_per_rank"]
    print(f"DP {args.nproc} processes vs 1: {dpn:.0f} vs {dp1:.0f} tokens/s (x{dpn / dp1:.2f})")
    print(
        f"FSDP {args.nproc} processes vs 1: {fn / 2**20:.2f} vs {f1 / 2**20:.2f} MiB of state per rank "
        f"(x{fn / f1:.2f})"
    )


if __name__ == "__main__":
    main()
