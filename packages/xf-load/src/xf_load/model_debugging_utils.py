"""Record every module call of a forward as a call tree, to compare a model port with its reference.

::

    with model_addition_debugger_context(model, debug_path="debug/", save_tensors=True) as trace:
        model(**inputs)
    trace.to_json("debug/trace.json")             # nested calls: inputs/outputs summarised
    first_difference(trace, reference_trace)      # the first module (in completion order) whose outputs differ

Each call records its module path (the state-dict prefix, so xf and transformers models of one family line up),
class name, and for every tensor in its inputs and outputs: shape, dtype, mean, std, min, max and the count
of non-finite values. With ``save_tensors=True`` the full tensors are kept too (CPU copies) and written to
``<debug_path>/tensors.safetensors`` under ``<call index>.<module path>.<inputs|outputs>.<i>``.

Calls are numbered in completion order (children before their parent), so the first differing call of two
traces is the innermost module where they start to disagree: a perturbed weight shows up at its own layer.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from xf_core.errors import XfValueError

__all__ = ["Call", "Trace", "first_difference", "model_addition_debugger_context", "summarize"]


def summarize(tensor: torch.Tensor) -> dict[str, Any]:
    """Shape, dtype and (for floating tensors) mean/std/min/max and the number of NaN/inf values."""
    out: dict[str, Any] = {"shape": list(tensor.shape), "dtype": str(tensor.dtype).removeprefix("torch.")}
    if tensor.device.type == "meta" or tensor.numel() == 0:
        return out
    values = tensor.detach().float()
    finite = torch.isfinite(values)
    out["nonfinite"] = int((~finite).sum())
    if values.is_floating_point() and bool(finite.any()):
        v = values[finite]
        out |= {
            "mean": float(v.mean()),
            "std": float(v.std()) if v.numel() > 1 else 0.0,
            "min": float(v.min()),
            "max": float(v.max()),
        }
    return out


def _tensors(value: Any) -> list[torch.Tensor]:
    """The tensors in a call's arguments or result (nested tuples, lists, dicts, dataclass outputs)."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _tensors(v)]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _tensors(v)]
    if hasattr(value, "__dataclass_fields__"):
        return [t for name in value.__dataclass_fields__ for t in _tensors(getattr(value, name))]
    return []


@dataclass
class Call:
    path: str
    module: str
    index: int = -1  # completion order
    inputs: list[dict[str, Any]] = field(default_factory=list)
    outputs: list[dict[str, Any]] = field(default_factory=list)
    children: list[Call] = field(default_factory=list)
    input_tensors: list[torch.Tensor] = field(default_factory=list, repr=False)
    output_tensors: list[torch.Tensor] = field(default_factory=list, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "path": self.path,
            "module": self.module,
            "inputs": self.inputs,
            "outputs": self.outputs,
            "children": [c.to_dict() for c in self.children],
        }


@dataclass
class Trace:
    """The recorded forward(s): top-level calls, and every call in completion order."""

    roots: list[Call] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)

    def to_json(self, path: str | os.PathLike[str]) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps([r.to_dict() for r in self.roots], indent=1) + "\n")
        os.replace(tmp, path)
        return path

    def save_tensors(self, path: str | os.PathLike[str]) -> Path:
        from safetensors.torch import save_file

        tensors = {}
        for call in self.calls:
            for kind, values in (("inputs", call.input_tensors), ("outputs", call.output_tensors)):
                for i, t in enumerate(values):
                    tensors[f"{call.index}.{call.path or '<root>'}.{kind}.{i}"] = t.contiguous()
        if not tensors:
            raise XfValueError("no tensors were kept: record with save_tensors=True to write them.")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        save_file(tensors, str(tmp))
        os.replace(tmp, path)
        return path


@contextlib.contextmanager
def model_addition_debugger_context(
    model: nn.Module, debug_path: str | os.PathLike[str] | None = None, *, save_tensors: bool = False
) -> Iterator[Trace]:
    """Record the module calls of every forward run inside the block into the yielded :class:`Trace`.

    On exit the hooks are removed; with ``debug_path`` the trace is written there as ``trace.json`` (and
    ``tensors.safetensors`` with ``save_tensors``)."""
    trace = Trace()
    stack: list[Call] = []
    names = {module: name for name, module in model.named_modules()}

    def before(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        call = Call(names.get(module, "?"), type(module).__name__)
        tensors = _tensors((args, kwargs))
        call.inputs = [summarize(t) for t in tensors]
        if save_tensors:
            call.input_tensors = [t.detach().to("cpu", copy=True) for t in tensors]
        (stack[-1].children if stack else trace.roots).append(call)
        stack.append(call)

    def after(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any) -> None:
        call = stack.pop()
        tensors = _tensors(output)
        call.outputs = [summarize(t) for t in tensors]
        if save_tensors:
            call.output_tensors = [t.detach().to("cpu", copy=True) for t in tensors]
        call.index = len(trace.calls)
        trace.calls.append(call)

    handles = []
    for module in names:
        handles.append(module.register_forward_pre_hook(before, with_kwargs=True))
        handles.append(module.register_forward_hook(after, with_kwargs=True))
    try:
        yield trace
    finally:
        for handle in handles:
            handle.remove()
        stack.clear()
    if debug_path is not None:
        trace.to_json(Path(debug_path) / "trace.json")
        if save_tensors:
            trace.save_tensors(Path(debug_path) / "tensors.safetensors")


def first_difference(
    trace: Trace, reference: Trace, *, atol: float = 1e-5, rtol: float = 1e-5
) -> dict[str, Any] | None:
    """The first call (completion order) whose outputs differ between two traces of the same forward, as
    ``{"index", "path", "module", "max_abs_diff"}``; None when all agree. Uses the kept tensors when both
    traces have them, else the summaries (mean/std/min/max)."""
    by_path = {c.path: c for c in reference.calls}
    for call in trace.calls:
        ref = by_path.get(call.path)
        if ref is None:
            continue
        diff = _max_diff(call, ref)
        if diff is None:
            return {"index": call.index, "path": call.path, "module": call.module, "max_abs_diff": None}
        scale = max((abs(o.get("max", 0.0)) for o in ref.outputs), default=0.0)
        if diff > atol + rtol * scale:
            return {"index": call.index, "path": call.path, "module": call.module, "max_abs_diff": diff}
    return None


def _max_diff(call: Call, ref: Call) -> float | None:
    """Largest absolute difference of the outputs; None when their shapes differ."""
    if [o["shape"] for o in call.outputs] != [o["shape"] for o in ref.outputs]:
        return None
    if call.output_tensors and ref.output_tensors:
        return max(
            (
                float((a.float() - b.float()).abs().max())
                for a, b in zip(call.output_tensors, ref.output_tensors)
                if a.numel()
            ),
            default=0.0,
        )
    keys = ("mean", "std", "min", "max")
    return max(
        (abs(a[k] - b[k]) for a, b in zip(call.outputs, ref.outputs) for k in keys if k in a and k in b),
        default=0.0,
    )
