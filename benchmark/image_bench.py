"""xf-pipeline vs transformers' pipeline: ``image-classification`` throughput on a random ViT-Base-sized model.

A ViT-Base/16 (hidden 768, 12 layers, 12 heads, 224x224, 1000 labels) with random weights and its
``preprocessor_config.json`` are saved once by transformers; ``N`` photo-sized JPEG files (640x480, gradients
and noise) are written beside it. Every measurement runs in a fresh spawned process (one per contender and
round, the contenders alternating) and calls ``pipe(paths, batch_size=B)`` after a warm-up batch; the medians
of images per wall second are compared (wall time: xf decodes and resizes the images of a batch in threads,
which CPU time would not show; images per CPU second are printed too).

    uv run python benchmark/image_bench.py [--images 48] [--batch-size 16] [--rounds 3] [--threads 2]
        [--device cpu|cuda]

Goal (issue 16): xf >= 1.2x transformers' images per second.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from metrics import MetricsRecorder  # benchmark/ is on sys.path: this file runs as a script

CONTENDERS = ("xf", "transformers")
VIT_BASE = {
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "image_size": 224,
    "patch_size": 16,
    "num_labels": 1000,
}


def prepare(root: Path, n: int) -> tuple[str, list[str]]:
    """The checkpoint directory and ``n`` JPEG paths under ``root``."""
    import numpy as np
    import torch
    import transformers
    from PIL import Image

    model_dir = root / "vit-base"
    torch.manual_seed(0)
    model = transformers.ViTForImageClassification(transformers.ViTConfig(**VIT_BASE))
    model.save_pretrained(model_dir)
    transformers.ViTImageProcessorPil(size={"height": 224, "width": 224}).save_pretrained(model_dir)
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:480, 0:640]
    paths = []
    for i in range(n):
        base = np.stack([x * (i % 5 + 1) // 5, y // 2, (x + y) * (i % 3 + 1) // 8], axis=-1)
        pixels = (base + rng.integers(0, 40, (480, 640, 3))).clip(0, 255).astype(np.uint8)
        path = root / f"image-{i:03d}.jpg"
        Image.fromarray(pixels).save(path, quality=90)
        paths.append(str(path))
    return str(model_dir), paths


def throughput(
    who: str, model_dir: str, paths: list[str], batch_size: int, threads: int, device: str
) -> tuple[float, float]:
    """(images per wall second, images per CPU second of this process) for ``who``'s pipeline."""
    import torch

    torch.set_num_threads(threads)
    if who == "xf":
        from xf_pipeline import pipeline

        pipe = pipeline("image-classification", model=model_dir, device=device)
    else:
        import transformers

        pipe = transformers.pipeline("image-classification", model=model_dir, device=device)
    pipe(paths[:batch_size], batch_size=batch_size)  # warm-up
    wall, cpu = time.perf_counter(), time.process_time()
    out = pipe(paths, batch_size=batch_size)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert len(out) == len(paths) and len(out[0]) == 5
    return len(paths) / wall, len(paths) / cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    context = multiprocessing.get_context("spawn")
    wall: dict[str, list[float]] = {c: [] for c in CONTENDERS}
    cpu: dict[str, list[float]] = {c: [] for c in CONTENDERS}
    recorder = MetricsRecorder("image", images=args.images, batch_size=args.batch_size, device=args.device)
    with tempfile.TemporaryDirectory(prefix="xf-image-bench-") as tmp, recorder:
        with ProcessPoolExecutor(1, mp_context=context, max_tasks_per_child=1) as pool:
            model_dir, paths = pool.submit(prepare, Path(tmp), args.images).result()
        with ProcessPoolExecutor(1, mp_context=context, max_tasks_per_child=1) as pool:
            for r in range(args.rounds):
                order = CONTENDERS if r % 2 == 0 else CONTENDERS[::-1]
                for who in order:
                    per_wall, per_cpu = pool.submit(
                        throughput, who, model_dir, paths, args.batch_size, args.threads, args.device
                    ).result()
                    wall[who].append(per_wall)
                    cpu[who].append(per_cpu)
                    recorder.record(who, {"images_per_s": per_wall, "images_per_cpu_s": per_cpu})
                    print(
                        f"  round {r + 1} {who}: {per_wall:.2f} images/s ({per_cpu:.2f} per CPU s)",
                        flush=True,
                    )
    w = {c: statistics.median(v) for c, v in wall.items()}
    c = {k: statistics.median(v) for k, v in cpu.items()}
    print(
        f"image-classification, ViT-Base random weights, {args.images} JPEGs 640x480, batch {args.batch_size}, "
        f"{args.device}, {args.threads} threads (medians of {args.rounds}):\n"
        f"  images/s: xf {w['xf']:.2f}  transformers {w['transformers']:.2f}  ratio {w['xf'] / w['transformers']:.2f} "
        "(goal >= 1.2)\n"
        f"  images per CPU s: xf {c['xf']:.2f}  transformers {c['transformers']:.2f}  "
        f"ratio {c['xf'] / c['transformers']:.2f}"
    )


if __name__ == "__main__":
    main()
