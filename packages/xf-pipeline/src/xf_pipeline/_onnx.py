"""ONNX export of a loaded model (``torch.onnx.export(dynamo=True)``, dynamic batch and length), its check
against the eager model with onnxruntime, and the onnxruntime encoder behind ``SentenceTransformer(...,
backend="onnx")``.

Needs ``onnx``, ``onnxscript`` (export) and ``onnxruntime`` (run): ``pip install 'xf-pipeline[onnx]'``.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import torch

from xf_core import require
from xf_core.errors import XfValueError
from xf_core.logging import get_logger

__all__ = ["OnnxEncoder", "check_onnx", "export_onnx", "onnx_inputs"]

logger = get_logger(__name__)

_ONNX_EXTRA = "pip install 'xf-pipeline[onnx]'"


class _MainOutput(torch.nn.Module):
    """The model's first output (``last_hidden_state`` of a base model, ``logits`` of a head) as a plain
    tensor, from named integer inputs: the graph ONNX users expect."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        kwargs: dict[str, Any] = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            kwargs["token_type_ids"] = token_type_ids
        if hasattr(self.model, "generate"):
            kwargs["use_cache"] = False  # a traced graph returns no cache
        return self.model(**kwargs)[0]


def onnx_inputs(model: Any, tokenizer: Any) -> tuple[str, ...]:
    """The input names the exported graph takes: the tokenizer's model inputs that the model's forward takes."""
    import inspect

    names = getattr(tokenizer, "model_input_names", None) or ["input_ids", "attention_mask"]
    accepted = inspect.signature(model.forward).parameters
    return tuple(name for name in names if name in accepted)


def export_onnx(
    model: Any,
    path: str | os.PathLike[str],
    *,
    input_names: tuple[str, ...],
    opset_version: int | None = None,
) -> Path:
    """Write ``model`` (eval mode, CPU) to ``path`` as ONNX with dynamic batch and sequence length; the graph
    takes ``input_names`` (int64, ``(batch, length)``) and gives ``output`` (the model's first output)."""
    require("onnxscript", purpose=f"ONNX export ({_ONNX_EXTRA})")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    unknown = set(input_names) - {"input_ids", "attention_mask", "token_type_ids"}
    if "input_ids" not in input_names or unknown:
        raise XfValueError(
            f"ONNX export takes input_ids and optionally attention_mask and token_type_ids; got {input_names}."
        )
    wrapper = _MainOutput(model.eval()).eval()
    batch, length = torch.export.Dim("batch", min=1, max=1024), torch.export.Dim("length", min=2, max=8192)
    kwargs = {name: torch.ones((2, 8), dtype=torch.long) for name in input_names}
    if "token_type_ids" in kwargs:
        kwargs["token_type_ids"].zero_()
    with torch.no_grad():
        program = torch.onnx.export(
            wrapper,
            (),
            kwargs=kwargs,
            input_names=list(input_names),
            output_names=["output"],
            dynamic_shapes={name: {0: batch, 1: length} for name in input_names},
            opset_version=opset_version,
            dynamo=True,
            external_data=False,
            verbose=False,
        )
    assert program is not None
    tmp = path.with_name(path.name + ".tmp")
    program.save(str(tmp))
    os.replace(tmp, path)  # a reader never sees half a file
    return path


def check_onnx(
    path: str | os.PathLike[str], model: Any, batches: list[dict[str, torch.Tensor]], *, atol: float = 1e-4
) -> float:
    """Run ``path`` with onnxruntime and ``model`` eagerly on ``batches``; the largest absolute difference of
    their outputs over unpadded positions. Raises :class:`~xf_core.errors.XfValueError` above ``atol``."""
    encoder = OnnxEncoder(path)
    worst = 0.0
    for batch in batches:
        with torch.no_grad():
            want = model(**batch)[0].float()
        got = encoder(batch)
        mask = (
            batch["attention_mask"].bool()
            if "attention_mask" in batch
            else torch.ones(got.shape[:2], dtype=torch.bool)
        )
        worst = max(worst, float((got[mask] - want[mask]).abs().max()))
    if worst > atol:
        raise XfValueError(
            f"{path}: onnxruntime's outputs differ from the eager model's by {worst:.3g} (more than {atol}); "
            "the export is wrong, please report it with the model id."
        )
    return worst


class OnnxEncoder:
    """An ONNX model run with onnxruntime on CPU: ``encoder(batch)`` -> the graph's output as a tensor."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        ort = require("onnxruntime", purpose=f"the onnx backend ({_ONNX_EXTRA})")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.path = Path(path)
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]

    @classmethod
    def for_model(
        cls, model: Any, tokenizer: Any, *, cache_dir: str | os.PathLike[str] | None = None
    ) -> OnnxEncoder:
        """The encoder of a loaded model: its directory's ``onnx/model.onnx`` (sentence-transformers' place for
        it) when there is one, else an export cached under ``cache_dir`` (default ``$HF_HOME/xf/onnx``) by the
        model's path and weights' modification time."""
        source = Path(str(getattr(model, "name_or_path", "") or ""))
        shipped = source / "onnx" / "model.onnx"
        if shipped.is_file():
            return cls(shipped)
        names = onnx_inputs(model, tokenizer)
        path = _cache_path(source, names, cache_dir)
        if not path.is_file():
            logger.info("exporting %s to ONNX at %s (once; later runs reuse it)", source, path)
            export_onnx(model, path, input_names=names)
        return cls(path)

    def __call__(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        feed = {name: batch[name].cpu().numpy() for name in self.input_names if name in batch}
        missing = [name for name in self.input_names if name not in feed]
        if missing:
            raise XfValueError(f"{self.path} needs input(s) {missing}; the batch has {sorted(batch)}.")
        (output,) = self.session.run(["output"], feed)
        return torch.from_numpy(output)


def _cache_path(source: Path, names: tuple[str, ...], cache_dir: str | os.PathLike[str] | None) -> Path:
    if cache_dir is None:
        from huggingface_hub import constants

        cache_dir = Path(constants.HF_HOME) / "xf" / "onnx"
    weights = sorted(source.glob("*.safetensors")) if source.is_dir() else []
    stamp = [str(source.resolve()) if source.is_dir() else str(source), *names, torch.__version__]
    stamp += [f"{w.name}:{w.stat().st_mtime_ns}:{w.stat().st_size}" for w in weights]
    key = hashlib.sha256("\n".join(stamp).encode()).hexdigest()[:16]
    return Path(cache_dir) / key / "model.onnx"
