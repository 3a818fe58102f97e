"""xf-load vs transformers: from_pretrained wall time and peak memory, and a 512-token prefill.

Every measurement runs in a fresh interpreter (``python -c``), xf and transformers alternate round by round,
and medians are compared. Checkpoints are random-weight Llama models written once into ``--dir``:

* ``llama-120m-fp32`` and ``llama-120m-bf16``: hidden 768, 12 layers, vocab 32000 (~134M parameters);
* ``llama-1b-bf16-sharded``: hidden 2048, 22 layers, GQA 32/4 (~1.1B parameters), 500MB shards.

Load: wall time of ``import torch, <library>`` + ``AutoModelForCausalLM.from_pretrained(dir)`` measured inside
the child from its first line, and peak RSS above the RSS right after the imports (what loading itself
costs), next to the checkpoint's bytes. Warm load: in a child that has already loaded the same checkpoint
once (modeling code imported, files in the page cache, that model released), the time of one more
``from_pretrained`` and the RSS it adds, for a same-dtype load (the bf16 checkpoint as stored: xf views the
memory-mapped file) and a casting load (the fp32 checkpoint as bf16: read and cast), with xf's
``disable_mmap=True`` (every tensor read, as before issue 20) alongside. Children write bytecode to ``<dir>/pycache`` (one warm-up run each),
so imports cost what they cost in an installed environment even where PYTHONDONTWRITEBYTECODE is set. Forward: median time of a 512-token prefill (batch 1, no grad) after one warm-up.

    uv run python benchmark/load_bench.py [--rounds 3] [--skip-1b] [--dir /tmp/xf-load-bench] [--only warm]

Goals (issue 4): xf cold wall time <= 0.7x transformers'; loading's peak RSS <= 1.15x the checkpoint's bytes;
prefill speed >= 1.0x transformers'. Issue 20: same-dtype warm load <= 1.0x transformers' time with RSS growth
<= 0.2x the weights; casting warm loads no slower than before (0.2x transformers').
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import textwrap
from pathlib import Path

from metrics import MetricsRecorder  # benchmark/ is on sys.path: this file runs as a script

SIZES = {
    "llama-120m": {
        "hidden_size": 768,
        "intermediate_size": 2048,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
        "num_key_value_heads": 12,
        "vocab_size": 32000,
    },
    "llama-1b": {
        "hidden_size": 2048,
        "intermediate_size": 5632,
        "num_hidden_layers": 22,
        "num_attention_heads": 32,
        "num_key_value_heads": 4,
        "vocab_size": 32000,
    },
}

_MAKE = """
import torch
from xf_load.models.llama import LlamaConfig, LlamaForCausalLM
torch.manual_seed(0)
config = LlamaConfig(**{values})
with torch.device("meta"):
    model = LlamaForCausalLM(config)
model = model.to_empty(device="cpu").to({dtype})
model.model.rotary_emb.reset_buffers()
for p in model.parameters():
    torch.nn.init.normal_(p, std=0.02)
model.save_pretrained({path!r}, max_shard_size={shard!r})
print("{{}}")
"""

_LOAD = """
import time
t0 = time.perf_counter()
import resource, json
{imports}
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()
base = rss()
t1 = time.perf_counter()
model = {load}
t2 = time.perf_counter()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({{"wall": t2 - t0, "load": t2 - t1, "import": t1 - t0, "peak": peak, "loading_rss": peak - base}}))
"""

_WARM = """
import time, json, gc, resource
{imports}
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()
model = {load}  # warm-up: modeling code imported, files in the page cache
del model
gc.collect()
base = rss()
t = time.perf_counter()
model = {load}
load = time.perf_counter() - t
print(json.dumps({{"load": load, "rss_growth": rss() - base}}))
"""

_FORWARD = """
import time, json, torch
{imports}
model = {load}
ids = torch.randint(0, 32000, (1, 512), generator=torch.Generator().manual_seed(0))
with torch.no_grad():
    model(input_ids=ids, use_cache=False)
    times = []
    for _ in range({reps}):
        t = time.perf_counter()
        model(input_ids=ids, use_cache=False)
        times.append(time.perf_counter() - t)
print(json.dumps({{"prefill": sorted(times)[len(times) // 2]}}))
"""

CONTENDERS = {
    "xf": ("import torch, xf_load", "xf_load.AutoModelForCausalLM.from_pretrained({path!r}{extra})"),
    "transformers": (
        "import torch, transformers",
        "transformers.AutoModelForCausalLM.from_pretrained({path!r}{extra})",
    ),
}
# warm-load cases: name -> (checkpoint, extra from_pretrained arguments)
WARM_CASES = {
    "same-dtype (bf16 as stored)": ("llama-120m-bf16", ""),
    "casting (fp32 as bf16)": ("llama-120m-fp32", ", dtype=torch.bfloat16"),
}


def _env(directory: Path) -> dict[str, str]:
    """Children cache bytecode (in a private folder), as an installed package would."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(directory / "pycache")
    return env


ENV: dict[str, str] = {}


def _run(code: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, env=ENV or None
    )
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def prepare(directory: Path, *, skip_1b: bool) -> dict[str, Path]:
    wanted = {
        "llama-120m-fp32": ("llama-120m", "torch.float32", "5GB"),
        "llama-120m-bf16": ("llama-120m", "torch.bfloat16", "5GB"),
    }
    if not skip_1b:
        wanted["llama-1b-bf16-sharded"] = ("llama-1b", "torch.bfloat16", "500MB")
    paths = {}
    for name, (size, dtype, shard) in wanted.items():
        path = directory / name
        if not (path / "config.json").exists():
            print(f"writing {name} ...", flush=True)
            _run(_MAKE.format(values=SIZES[size], dtype=dtype, path=str(path), shard=shard))
        paths[name] = path
    return paths


def checkpoint_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.glob("*.safetensors"))


def bench_load(paths: dict[str, Path], rounds: int, recorder: MetricsRecorder) -> None:
    print("\nfrom_pretrained in a fresh process (import + load), medians")
    print(
        f"{'checkpoint':24} {'xf s':>7} {'hf s':>7} {'ratio':>6} {'xf load-RSS':>12} {'hf load-RSS':>12} {'ckpt':>8}"
    )
    for name, path in paths.items():
        results: dict[str, list[dict[str, float]]] = {c: [] for c in CONTENDERS}
        for imports, load in CONTENDERS.values():  # warm-up: bytecode cache and page cache
            _run(_LOAD.format(imports=imports, load=load.format(path=str(path), extra="")))
        for _ in range(rounds):
            for contender, (imports, load) in CONTENDERS.items():
                results[contender].append(
                    _run(_LOAD.format(imports=imports, load=load.format(path=str(path), extra="")))
                )
        recorder.record_all(
            {
                c: [
                    {f"{k}_s" if k in ("wall", "load", "import") else f"{k}_bytes": v for k, v in r.items()}
                    for r in rs
                ]
                for c, rs in results.items()
            },
            checkpoint=name,
        )
        med = {c: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for c, rs in results.items()}
        size = checkpoint_bytes(path)
        xf, hf = med["xf"], med["transformers"]
        print(
            f"{name:24} {xf['wall']:7.2f} {hf['wall']:7.2f} {xf['wall'] / hf['wall']:6.2f} "
            f"{xf['loading_rss'] / size:11.2f}x {hf['loading_rss'] / size:11.2f}x {size / 1e6:7.0f}M"
        )
        print(
            f"{'':24} import xf {xf['import']:.2f}s / hf {hf['import']:.2f}s; load xf {xf['load']:.2f}s / hf "
            f"{hf['load']:.2f}s; peak RSS xf {xf['peak'] / 1e6:.0f}MB / hf {hf['peak'] / 1e6:.0f}MB"
        )


def bench_warm(paths: dict[str, Path], rounds: int, recorder: MetricsRecorder) -> None:
    print("\nwarm from_pretrained (same checkpoint loaded once before in the process), medians")
    print(
        f"{'case':30} {'xf s':>7} {'hf s':>7} {'ratio':>6} {'xf RSS+':>8} {'hf RSS+':>8} {'weights':>8} "
        f"{'xf-copy s':>9} {'RSS+':>6}"
    )
    for case, (name, extra) in WARM_CASES.items():
        path = paths[name]
        codes = {
            c: _WARM.format(imports=imports, load=load.format(path=str(path), extra=extra))
            for c, (imports, load) in CONTENDERS.items()
        }
        imports, load = CONTENDERS["xf"]
        codes["xf-copy"] = _WARM.format(
            imports=imports, load=load.format(path=str(path), extra=extra + ", disable_mmap=True")
        )
        results: dict[str, list[dict[str, float]]] = {c: [] for c in codes}
        for r in range(rounds):
            order = list(codes)[r % 3 :] + list(codes)[: r % 3]  # rotate who goes first
            for contender in order:
                results[contender].append(_run(codes[contender]))
        recorder.record_all(
            {
                c: [{"warm_load_s": m["load"], "warm_rss_growth_bytes": m["rss_growth"]} for m in rs]
                for c, rs in results.items()
            },
            checkpoint=name,
            case=case,
        )
        med = {c: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for c, rs in results.items()}
        weights = checkpoint_bytes(paths["llama-120m-bf16"])  # the loaded model's bytes, bf16 either way
        xf, hf, copy = med["xf"], med["transformers"], med["xf-copy"]
        print(
            f"{case:30} {xf['load']:7.3f} {hf['load']:7.3f} {xf['load'] / hf['load']:6.2f} "
            f"{xf['rss_growth'] / weights:7.2f}x {hf['rss_growth'] / weights:7.2f}x {weights / 1e6:7.0f}M "
            f"{copy['load']:9.3f} {copy['rss_growth'] / weights:5.2f}x"
        )


def bench_forward(path: Path, rounds: int, reps: int, recorder: MetricsRecorder) -> None:
    print(f"\nprefill of 512 tokens, batch 1 ({path.name}), median of {reps} per process, {rounds} processes")
    times: dict[str, list[float]] = {c: [] for c in CONTENDERS}
    for _ in range(rounds):
        for contender, (imports, load) in CONTENDERS.items():
            code = _FORWARD.format(imports=imports, load=load.format(path=str(path), extra=""), reps=reps)
            times[contender].append(_run(code)["prefill"])
            recorder.record(contender, {"prefill_s": times[contender][-1]}, checkpoint=path.name, tokens=512)
    xf, hf = statistics.median(times["xf"]), statistics.median(times["transformers"])
    print(f"xf {xf * 1000:.1f} ms, transformers {hf * 1000:.1f} ms, speed ratio xf/hf {hf / xf:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=Path("/tmp/xf-load-bench"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--skip-1b", action="store_true")
    parser.add_argument("--only", choices=["cold", "warm", "forward"], help="run one part only")
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    ENV.update(_env(args.dir))
    paths = prepare(args.dir, skip_1b=args.skip_1b or args.only == "warm")
    with MetricsRecorder("load", rounds=args.rounds) as recorder:
        if args.only in (None, "cold"):
            bench_load(paths, args.rounds, recorder)
        if args.only in (None, "warm"):
            bench_warm(paths, args.rounds, recorder)
        if args.only in (None, "forward"):
            bench_forward(paths["llama-120m-fp32"], args.rounds, args.reps, recorder)
    print(
        textwrap.dedent("""
        goals: wall ratio <= 0.70; load-RSS <= 1.15x the checkpoint; prefill speed ratio >= 1.0x;
        warm same-dtype ratio <= 1.0 with RSS+ <= 0.2x the weights; warm casting no slower than before""")
    )


if __name__ == "__main__":
    main()
