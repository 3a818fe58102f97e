"""Summarization speed: xf vs transformers generating with a random T5-small-sized encoder-decoder.

A random T5 of t5-small's shape (d_model 512, 6 + 6 layers, 8 heads, d_ff 2048, vocab 32128, ~60M parameters,
tied head) is saved once by transformers; every measurement then runs in a fresh process (xf and transformers
alternating, ``--repeats`` rounds), loads that checkpoint, warms up, and times ``generate`` summarising
``--batch`` documents of ``--source`` tokens into ``--new-tokens`` tokens, with t5-small's summarization
settings by default (beam search with ``--beams`` beams, length_penalty 2.0, no_repeat_ngram_size 3). EOS is
unset on both sides so every run makes exactly the same number of tokens; tokens/s counts the summary tokens
of all documents.

    uv run python benchmark/summarization_bench.py                 # batch 4, 4 beams, fp32
    uv run python benchmark/summarization_bench.py --beams 1 --batch 1 8 --device cuda

Prints tokens/s (median over rounds) per setting and the ratio xf/transformers (goal: >= 1.2).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from metrics import MetricsRecorder  # benchmark/ is on sys.path: this file runs as a script

T5_SMALL = {
    "vocab_size": 32128,
    "d_model": 512,
    "d_kv": 64,
    "d_ff": 2048,
    "num_layers": 6,
    "num_heads": 8,
    "relative_attention_num_buckets": 32,
    "relative_attention_max_distance": 128,
    "decoder_start_token_id": 0,
}
TINY = {
    **T5_SMALL,
    "vocab_size": 1000,
    "d_model": 64,
    "d_kv": 16,
    "d_ff": 128,
    "num_layers": 2,
    "num_heads": 4,
}


def make_checkpoint(path: Path, tiny: bool) -> None:
    import torch
    import transformers

    torch.manual_seed(0)
    model = transformers.T5ForConditionalGeneration(transformers.T5Config(**(TINY if tiny else T5_SMALL)))
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
    vocab = TINY["vocab_size"] if args.tiny else T5_SMALL["vocab_size"]
    ids = torch.randint(2, vocab, (args.batch, args.source), device=device)
    mask = torch.ones_like(ids)

    if args.impl == "hf":
        import transformers

        model = transformers.T5ForConditionalGeneration.from_pretrained(args.path, dtype=dtype)
    else:
        import xf_load

        model = xf_load.AutoModelForSeq2SeqLM.from_pretrained(args.path, dtype=dtype)
    model = model.to(device).eval()
    model.generation_config.eos_token_id = None  # every run makes exactly the asked number of tokens
    settings = {"do_sample": False, "num_beams": args.beams}
    if args.beams > 1:
        settings.update(length_penalty=2.0, no_repeat_ngram_size=3, early_stopping=True)

    def run(n: int) -> torch.Tensor:
        with torch.no_grad():
            return model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=n, **settings)

    run(4)  # warm-up (kernels, allocator)
    times = []
    for _ in range(args.inner):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        out = run(args.new_tokens)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
        assert out.shape == (args.batch, 1 + args.new_tokens), out.shape
    print(json.dumps({"tokens_per_s": args.batch * args.new_tokens / statistics.median(times)}))


def measure(args: argparse.Namespace, impl: str, batch: int) -> float:
    cmd = [
        sys.executable, __file__, "--worker", impl, "--path", str(args.path), "--batch", str(batch),
        "--dtype", args.dtype, "--device", args.device, "--source", str(args.source),
        "--new-tokens", str(args.new_tokens), "--beams", str(args.beams), "--inner", str(args.inner),
    ]  # fmt: skip
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    if args.tiny:
        cmd.append("--tiny")
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["tokens_per_s"]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batch", type=int, nargs="+", default=[4])
    parser.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--device", default=None, help="cuda when available, else cpu")
    parser.add_argument("--source", type=int, default=256, help="tokens per document")
    parser.add_argument("--new-tokens", type=int, default=48, help="summary tokens per document")
    parser.add_argument("--beams", type=int, default=4, help="num_beams (1: greedy)")
    parser.add_argument("--repeats", type=int, default=3, help="rounds of fresh processes per setting")
    parser.add_argument("--inner", type=int, default=3, help="timed generate calls per process (median)")
    parser.add_argument("--tiny", action="store_true", help="a 2-layer model, to check the script quickly")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads per worker (0: default)")
    parser.add_argument("--worker", choices=["xf", "hf"], help=argparse.SUPPRESS)
    parser.add_argument("--path", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.device is None:
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.worker:
        args.impl = args.worker
        args.batch = args.batch[0]
        worker(args)
        return

    settings = {
        "device": args.device,
        "dtype": args.dtype,
        "source": args.source,
        "new_tokens": args.new_tokens,
        "beams": args.beams,
    }
    with (
        MetricsRecorder("summarization", **settings) as recorder,
        tempfile.TemporaryDirectory(prefix="xf-sumbench-") as tmp,
    ):
        args.path = Path(tmp) / "t5"
        make_checkpoint(args.path, args.tiny)
        print(" ".join(f"{k}={v}" for k, v in settings.items()))
        print(f"{'batch':>5} {'xf tok/s':>10} {'hf tok/s':>10} {'xf/hf':>6}")
        for batch in args.batch:
            results: dict[str, list[float]] = {"xf": [], "hf": []}
            for _ in range(args.repeats):
                for impl in results:  # alternate, so drift hits both alike
                    results[impl].append(measure(args, impl, batch))
                    recorder.record(impl, {"tokens_per_s": results[impl][-1]}, batch=batch)
            xf, hf = (statistics.median(results[k]) for k in ("xf", "hf"))
            print(f"{batch:>5} {xf:>10.1f} {hf:>10.1f} {xf / hf:>6.2f}", flush=True)


if __name__ == "__main__":
    main()
