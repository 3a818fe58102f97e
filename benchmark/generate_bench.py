"""Greedy generation speed: xf vs transformers vs a hand-written cached loop (the floor).

A ~125M-parameter random Llama (hidden 768, 12 layers, vocab 32000) is saved once by transformers; every
measurement then runs in a fresh process (xf, transformers and the loop alternating, ``--repeats`` rounds),
loads that checkpoint, warms up, and times ``generate`` of ``--new-tokens`` tokens after a
``--prompt``-token prompt. EOS is unset on both sides, so every run makes exactly the same number of tokens.

    uv run python benchmark/generate_bench.py                      # batch 1 and 8, fp32 and bf16
    uv run python benchmark/generate_bench.py --batch 1 --dtype bf16 --device cuda --compile
    uv run python benchmark/generate_bench.py --fused   # also xf after model.fuse_projections()

Prints tokens/s (median over rounds) per setting and the ratios xf/transformers and xf/loop.

With ``--compile`` xf runs ``compile=True`` with a compile cache (``XF_COMPILE_CACHE``) that starts empty for
each setting: a first xf process compiles the decode step (its compile time is printed as ``cold s``), then
every measured xf process loads it from the cache (``warm s``), as a user's second run would. transformers
runs its default ``generate`` (dynamic cache, eager).
Candidate decoding (batch 1, greedy; see :func:`speculative_main` for what the tasks are):

    uv run python benchmark/generate_bench.py --prompt-lookup     # xf/hf prompt lookup vs hf default generate
    uv run python benchmark/generate_bench.py --assistant 2       # draft = the target's first 2 layers
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from metrics import MetricsRecorder  # benchmark/ is on sys.path: this file runs as a script

MODEL = {
    "hidden_size": 768,
    "intermediate_size": 2048,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "num_key_value_heads": 12,
    "vocab_size": 32000,
    "max_position_embeddings": 1024,
    "tie_word_embeddings": False,
}
TINY = {
    **MODEL,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "vocab_size": 1000,
}


def make_checkpoint(path: Path, tiny: bool) -> None:
    import torch
    import transformers

    torch.manual_seed(0)
    config = transformers.LlamaConfig(**(TINY if tiny else MODEL), bos_token_id=1, eos_token_id=2)
    model = transformers.LlamaForCausalLM(config)
    model.save_pretrained(path)
    n = sum(p.numel() for p in model.parameters())
    print(f"checkpoint: {n / 1e6:.0f}M parameters at {path}", file=sys.stderr)


def worker(args: argparse.Namespace) -> None:
    """One measurement in this (fresh) process; prints a JSON line with tokens/s."""
    import torch

    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[args.dtype]
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    ids = torch.randint(3, 1000, (args.batch, args.prompt), device=device)

    if args.impl == "hf":
        import transformers

        model = transformers.LlamaForCausalLM.from_pretrained(args.path, dtype=dtype).to(device).eval()
    else:
        import xf_load

        model = xf_load.AutoModelForCausalLM.from_pretrained(args.path, dtype=dtype).to(device).eval()
        if args.impl == "xf-fused":
            model.fuse_projections()

    # No EOS on either side: every run makes exactly n tokens and measures plain greedy decoding.
    model.generation_config.eos_token_id = None

    def run(n: int) -> torch.Tensor:
        with torch.no_grad():
            if args.impl == "loop":
                return hand_written_loop(model, ids, n)
            kwargs = {"max_new_tokens": n, "do_sample": False}
            if args.impl.startswith("xf") and args.compile:
                kwargs["compile"] = True
            return model.generate(ids, **kwargs)

    compile_time = None
    if args.compile and args.impl.startswith("xf"):
        # Warm-up at the measured length: the decode step compiles (or loads from the compile cache) once.
        with torch.no_grad():
            out = model.generate(
                ids, max_new_tokens=args.new_tokens, compile=True, return_dict_in_generate=True
            )
        compile_time = out.compile_time
    else:
        run(8)  # warm-up (kernels, allocator)
    times = []
    for _ in range(args.inner):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        out = run(args.new_tokens)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
        assert out.shape[1] == args.prompt + args.new_tokens, out.shape
    seconds = statistics.median(times)
    print(json.dumps({"tokens_per_s": args.batch * args.new_tokens / seconds, "compile_time": compile_time}))


def fused_line(results: dict[str, list[float]]) -> str:
    """xf after fuse_projections() against plain xf: medians, and the median of the per-round ratios (each
    round runs both back to back, so the ratio is less exposed to load drift than the medians)."""
    fused, plain = results["xf-fused"], results["xf"]
    ratios = [f / p for f, p in zip(fused, plain, strict=True)]
    return (
        f"      xf-fused {statistics.median(fused):.1f} tok/s vs xf {statistics.median(plain):.1f}: "
        f"ratio {statistics.median(ratios):.3f} (per round {', '.join(f'{r:.2f}' for r in ratios)})"
    )


def hand_written_loop(model, ids, new_tokens: int):
    """The floor: xf's model, a dynamic cache, argmax, nothing else."""
    import torch

    from xf_load.cache import DynamicCache

    cache = DynamicCache()
    logits = model(input_ids=ids, past_key_values=cache, use_cache=True, logits_to_keep=1).logits
    tokens = [logits[:, -1].argmax(-1, keepdim=True)]
    for _ in range(new_tokens - 1):
        logits = model(input_ids=tokens[-1], past_key_values=cache, use_cache=True, logits_to_keep=1).logits
        tokens.append(logits[:, -1].argmax(-1, keepdim=True))
    return torch.cat([ids, *tokens], dim=1)


def measure(
    args: argparse.Namespace, impl: str, batch: int, dtype: str, env: dict[str, str] | None = None
) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        impl,
        "--path",
        str(args.path),
        "--batch",
        str(batch),
        "--dtype",
        dtype,
        "--device",
        args.device,
        "--prompt",
        str(args.prompt),
        "--new-tokens",
        str(args.new_tokens),
        "--inner",
        str(args.inner),
    ]
    if args.compile:
        cmd.append("--compile")
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--dtype", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    parser.add_argument("--device", default=None, help="cuda when available, else cpu")
    parser.add_argument("--prompt", type=int, default=32)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3, help="rounds of fresh processes per setting")
    parser.add_argument("--inner", type=int, default=3, help="timed generate calls per process (median)")
    parser.add_argument(
        "--compile",
        action="store_true",
        help="xf: compile=True (static cache, CUDA graphs on GPU), measured with a warm compile cache",
    )
    parser.add_argument("--tiny", action="store_true", help="a 2-layer model, to check the script quickly")
    parser.add_argument(
        "--threads", type=int, default=0, help="torch CPU threads per worker (0: torch's default)"
    )
    parser.add_argument(
        "--fused", action="store_true", help="also measure xf after fuse_projections() (column xf-fused)"
    )
    parser.add_argument(
        "--prompt-lookup",
        type=int,
        nargs="?",
        const=10,
        default=0,
        help="prompt-lookup decoding with N candidate tokens (default 10) on a copying task",
    )
    parser.add_argument(
        "--assistant", type=int, default=0, help="assisted decoding, the draft = the target's first N layers"
    )
    parser.add_argument("--mode", default="greedy", help=argparse.SUPPRESS)
    parser.add_argument("--worker", choices=["xf", "xf-fused", "hf", "loop"], help=argparse.SUPPRESS)
    parser.add_argument("--path", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.device is None:
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.prompt_lookup or args.assistant:
        (speculative_worker if args.worker else speculative_main)(args)
        return
    if args.worker:
        args.impl = args.worker
        args.batch = args.batch[0]
        args.dtype = args.dtype[0]
        worker(args)
        return

    settings = {
        "device": args.device,
        "prompt": args.prompt,
        "new_tokens": args.new_tokens,
        "compile": args.compile,
    }
    with (
        MetricsRecorder("generate", **settings) as recorder,
        tempfile.TemporaryDirectory(prefix="xf-genbench-") as tmp,
    ):
        args.path = Path(tmp) / "llama"
        make_checkpoint(args.path, args.tiny)
        print(f"device={args.device} prompt={args.prompt} new={args.new_tokens} compile={args.compile}")
        compile_cols = f" {'cold s':>7} {'warm s':>7}" if args.compile else ""
        print(
            f"{'batch':>5} {'dtype':>5} {'xf tok/s':>10} {'hf tok/s':>10} {'loop tok/s':>10} {'xf/hf':>6} "
            f"{'xf/loop':>7}{compile_cols}"
        )
        for batch in args.batch:
            for dtype in args.dtype:
                env = None
                cold = None
                if args.compile:  # an empty compile cache per setting; the first process fills it
                    env = {**os.environ, "XF_COMPILE_CACHE": str(Path(tmp) / f"compile-{batch}-{dtype}")}
                    cold = measure(args, "xf", batch, dtype, env)["compile_time"]
                    recorder.record("xf_first_process", {"compile_s": cold}, batch=batch, dtype=dtype)
                results: dict[str, list[float]] = {"xf": [], "hf": [], "loop": []}
                if args.fused:
                    results["xf-fused"] = []
                warm: list[float] = []
                for _ in range(args.repeats):
                    for impl in results:  # alternate, so drift hits all three alike
                        got = measure(args, impl, batch, dtype, env)
                        results[impl].append(got["tokens_per_s"])
                        if got.get("compile_time") is not None:
                            warm.append(got["compile_time"])
                        recorder.record(impl, {"tokens_per_s": results[impl][-1]}, batch=batch, dtype=dtype)
                xf, hf, loop = (statistics.median(results[k]) for k in ("xf", "hf", "loop"))
                compile_text = f" {cold:>7.1f} {statistics.median(warm):>7.1f}" if args.compile else ""
                print(
                    f"{batch:>5} {dtype:>5} {xf:>10.1f} {hf:>10.1f} {loop:>10.1f} {xf / hf:>6.2f} {xf / loop:>7.2f}"
                    f"{compile_text}",
                    flush=True,
                )
                if args.fused:
                    print(fused_line(results), flush=True)


# ---------------------------------------------------------------------------------------------- candidate decoding


def speculative_main(args: argparse.Namespace) -> None:
    """Batch-1 greedy generation with candidates, against the default generate of transformers and of xf.

    --prompt-lookup N: a copying task. A random model's greedy output soon cycles; the prompt is the model's own
    greedy output (``--prompt`` tokens after 4 seed tokens), so the continuation repeats text of the prompt and
    the n-gram lookup proposes it. This shows the best case of prompt lookup (input-grounded output), not a
    typical chat. --assistant N: the draft is the target's first N layers with its embeddings, norm and head (no
    training): what a random target and its truncation agree on. Both report the acceptance rate.
    """
    import torch

    with tempfile.TemporaryDirectory(prefix="xf-specbench-") as tmp:
        args.path = Path(tmp) / "llama"
        make_checkpoint(args.path, args.tiny)
        import transformers

        target = transformers.LlamaForCausalLM.from_pretrained(args.path).eval()
        if args.assistant:
            target.model.layers = target.model.layers[: args.assistant]
            target.config.num_hidden_layers = args.assistant
            target.save_pretrained(Path(tmp) / "draft")
            target = transformers.LlamaForCausalLM.from_pretrained(args.path).eval()
        seed = torch.randint(3, 1000, (1, 4), generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            prompt = target.generate(seed, max_new_tokens=args.prompt, do_sample=False, eos_token_id=None)
        (Path(tmp) / "prompt.json").write_text(json.dumps(prompt.tolist()))
        modes = [("hf", "greedy"), ("xf", "greedy")]
        extra = "lookup" if args.prompt_lookup else "assisted"
        modes += [("hf", extra), ("xf", extra)]
        print(f"device={args.device} prompt={prompt.shape[1]} new={args.new_tokens} mode={extra}")
        results: dict[tuple[str, str], list[float]] = {m: [] for m in modes}
        rates: dict[tuple[str, str], float] = {}
        for _ in range(args.repeats):
            for impl, mode in modes:  # alternate, so drift hits all alike
                out = _measure_speculative(args, impl, mode)
                results[(impl, mode)].append(out["tokens_per_s"])
                if out.get("acceptance_rate") is not None:
                    rates[(impl, mode)] = out["acceptance_rate"]
        base = statistics.median(results[("hf", "greedy")])
        print(f"{'impl':>4} {'mode':>9} {'tok/s':>9} {'vs hf greedy':>12} {'accepted':>9}")
        for impl, mode in modes:
            tps = statistics.median(results[(impl, mode)])
            rate = f"{100 * rates[(impl, mode)]:.0f}%" if (impl, mode) in rates else "-"
            print(f"{impl:>4} {mode:>9} {tps:>9.1f} {tps / base:>12.2f} {rate:>9}", flush=True)


def _measure_speculative(args: argparse.Namespace, impl: str, mode: str) -> dict[str, float]:
    cmd = [sys.executable, __file__, "--worker", impl, "--mode", mode, "--path", str(args.path)]
    cmd += ["--device", args.device, "--new-tokens", str(args.new_tokens), "--inner", str(args.inner)]
    cmd += ["--prompt-lookup", str(args.prompt_lookup), "--assistant", str(args.assistant)]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def speculative_worker(args: argparse.Namespace) -> None:
    """One candidate-decoding measurement in this (fresh) process: tokens/s and the acceptance rate (xf)."""
    import torch

    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    ids = torch.tensor(json.loads((args.path.parent / "prompt.json").read_text()), device=device)
    if args.worker == "hf":
        import transformers

        load = transformers.LlamaForCausalLM.from_pretrained
    else:
        import xf_load

        load = xf_load.AutoModelForCausalLM.from_pretrained
    model = load(args.path).to(device).eval()
    model.generation_config.eos_token_id = None
    kwargs: dict = {"do_sample": False}
    if args.mode == "lookup":
        kwargs["prompt_lookup_num_tokens"] = args.prompt_lookup
    elif args.mode == "assisted":
        draft = load(args.path.parent / "draft").to(device).eval()
        draft.generation_config.eos_token_id = None
        kwargs["assistant_model"] = draft
    if args.worker == "xf" and args.mode != "greedy":
        kwargs["return_dict_in_generate"] = True

    def run(n: int):
        with torch.no_grad():
            return model.generate(ids, max_new_tokens=n, **kwargs)

    run(8)  # warm-up
    times, rate = [], None
    for _ in range(args.inner):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        out = run(args.new_tokens)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
        sequences = out.sequences if hasattr(out, "sequences") else out
        assert sequences.shape[1] == ids.shape[1] + args.new_tokens, sequences.shape
        rate = getattr(out, "acceptance_rate", None)
    seconds = statistics.median(times)
    print(json.dumps({"tokens_per_s": args.new_tokens / seconds, "acceptance_rate": rate}))


if __name__ == "__main__":
    main()
