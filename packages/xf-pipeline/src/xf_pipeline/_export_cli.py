"""``xf export onnx MODEL OUT``: export a model to ONNX (dynamic batch and length) and check it with
onnxruntime against the eager model. Cheap to import: torch and the exporter load when the command runs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, TextIO

from xf_pipeline._registry import TASKS

__all__ = ["setup"]

_SAMPLES = ["A short text.", "A somewhat longer text, so that the batch holds some padding at its end."]


def setup(parser: argparse.ArgumentParser) -> Any:
    """Export a model to ONNX and check it against the eager model with onnxruntime."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = (
        "Examples:\n"
        "  xf export onnx sentence-transformers/all-MiniLM-L6-v2 minilm-onnx/\n"
        "  xf export onnx ./my-classifier model.onnx --task text-classification\n"
        "Needs onnx, onnxscript and onnxruntime: pip install 'xf-pipeline[onnx]'."
    )
    parser.add_argument("format", choices=["onnx"], help="the export format (onnx)")
    parser.add_argument("model", metavar="MODEL", help="local directory or Hub repo id")
    parser.add_argument(
        "out", metavar="OUT", help="the .onnx file to write, or a directory (then OUT/model.onnx)"
    )
    parser.add_argument(
        "--task",
        default="feature-extraction",
        choices=sorted(TASKS),
        help="which head to load (default feature-extraction: the base model's last hidden state)",
    )
    parser.add_argument("--opset", type=int, default=None, help="ONNX opset version (default: torch's)")
    parser.add_argument(
        "--atol", type=float, default=1e-4, help="largest accepted |onnx - eager| difference (default 1e-4)"
    )

    def run(args: argparse.Namespace) -> int:
        return _run(args, sys.stdout)

    return run


def _run(args: argparse.Namespace, stdout: TextIO) -> int:
    import torch

    import xf_load
    from xf_pipeline._onnx import check_onnx, export_onnx, onnx_inputs
    from xf_tokenize import AutoTokenizer

    out = Path(args.out)
    path = out if out.suffix == ".onnx" else out / "model.onnx"
    auto = getattr(xf_load, TASKS[args.task].auto_class)
    model = auto.from_pretrained(args.model, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    names = onnx_inputs(model, tokenizer)
    export_onnx(model, path, input_names=names, opset_version=args.opset)
    batches = []
    groups = [_SAMPLES, _SAMPLES[:1]] if tokenizer.pad_token_id is not None else [[t] for t in _SAMPLES]
    for texts in groups:
        encoded = tokenizer(texts, padding=True)
        batches.append({name: torch.tensor(encoded[name]) for name in names if name in encoded})
    worst = check_onnx(path, model, batches, atol=args.atol)
    stdout.write(f"wrote {path} (inputs: {', '.join(names)}; max |onnx - eager| = {worst:.2e})\n")
    return 0
