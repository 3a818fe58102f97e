"""xf-quant vs transformers: load time and peak RSS of bitsandbytes nf4 and int8 loads of a ~120M Llama.

A random-weight Llama (hidden 768, 12 layers, MLP 2048, vocab 32000: ~134M parameters, fp32 safetensors
saved by transformers) is written once. Every load then runs in a fresh spawned process, one per load; xf
and transformers alternate round by round and the medians are compared.

* load time: ``from_pretrained(dir, quantization_config=...)`` alone; torch, bitsandbytes and the library
  are imported before the clock starts, so import costs do not count;
* peak RSS: the process's ``ru_maxrss`` after the load, and the growth over the RSS before it (what the load
  itself took).

    uv run python benchmark/quant_bench.py [--rounds 3] [--threads 2] [--dir /tmp/xf-quant-bench]

Goals (issue 6): xf load time <= 0.8x transformers'; xf peak RSS <= 1.0x transformers'.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from metrics import MetricsRecorder  # benchmark/ is on sys.path: this file runs as a script

CONTENDERS = ("xf", "transformers")
METHODS = {
    "nf4": {"load_in_4bit": True, "bnb_4bit_quant_type": "nf4"},
    "int8": {"load_in_8bit": True},
}


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def make_checkpoint(path: Path) -> Path:
    if (path / "model.safetensors").exists():
        return path
    import torch
    import transformers

    config = transformers.LlamaConfig(
        hidden_size=768,
        intermediate_size=2048,
        num_hidden_layers=12,
        num_attention_heads=12,
        num_key_value_heads=12,
        vocab_size=32000,
        max_position_embeddings=2048,
    )
    torch.manual_seed(0)
    transformers.LlamaForCausalLM(config).save_pretrained(path)
    return path


def load_once(who: str, method: str, model_dir: str, threads: int) -> dict[str, float]:
    import torch

    torch.set_num_threads(threads)
    import bitsandbytes  # noqa: F401  (imported up front by both: its import is not part of the load)

    if who == "xf":
        from xf_load.auto import AutoModelForCausalLM
        from xf_quant import BitsAndBytesConfig
    else:
        from transformers import AutoModelForCausalLM, BitsAndBytesConfig
        from transformers.utils import logging

        logging.disable_progress_bar()
    config = BitsAndBytesConfig(**METHODS[method])
    before = _rss_bytes()
    start = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(model_dir, quantization_config=config)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    with torch.no_grad():  # the loaded model works
        model(torch.zeros(1, 4, dtype=torch.long))
    return {"seconds": seconds, "peak_mb": peak / 2**20, "growth_mb": (peak - before) / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--dir", default=os.path.join(tempfile.gettempdir(), "xf-quant-bench-llama"))
    args = parser.parse_args()
    os.environ.setdefault("XF_DISABLE_PROGRESS", "1")
    model_dir = str(make_checkpoint(Path(args.dir)))

    ctx = multiprocessing.get_context("spawn")
    results: dict[tuple[str, str], list[dict[str, float]]] = {}
    with MetricsRecorder("quant", rounds=args.rounds, threads=args.threads) as recorder:
        for method in METHODS:
            for _ in range(args.rounds):
                for who in CONTENDERS:
                    with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
                        out = pool.submit(load_once, who, method, model_dir, args.threads).result()
                    results.setdefault((method, who), []).append(out)
                    recorder.record(
                        who,
                        {
                            "load_s": out["seconds"],
                            "peak_rss_mb": out["peak_mb"],
                            "growth_mb": out["growth_mb"],
                        },
                        method=method,
                    )

    print(f"checkpoint: {model_dir} (~134M parameters, fp32); {args.rounds} rounds, {args.threads} threads")
    print(f"{'method':<6} {'library':<13} {'load s':>8} {'peak RSS MB':>12} {'load growth MB':>15}")
    for method in METHODS:
        med = {
            who: {
                k: statistics.median(r[k] for r in results[(method, who)]) for k in results[(method, who)][0]
            }
            for who in CONTENDERS
        }
        for who in CONTENDERS:
            m = med[who]
            print(f"{method:<6} {who:<13} {m['seconds']:>8.2f} {m['peak_mb']:>12.0f} {m['growth_mb']:>15.0f}")
        xf, hf = med["xf"], med["transformers"]
        print(
            f"{method:<6} {'xf / hf':<13} {xf['seconds'] / hf['seconds']:>8.2f} "
            f"{xf['peak_mb'] / hf['peak_mb']:>12.2f} {xf['growth_mb'] / hf['growth_mb']:>15.2f}"
            "   (goals: load <= 0.8, peak RSS <= 1.0)"
        )


if __name__ == "__main__":
    main()
