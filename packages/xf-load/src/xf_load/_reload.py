"""``load_weights(model, directory)``: read a saved directory's weights into a model that already exists (a
Trainer resuming a run, a script restoring a snapshot), with ``from_pretrained``'s checks.

The checkpoint is found as ``from_pretrained`` finds it (``model.safetensors`` or its sharded index, a
variant, ``pytorch_model.bin`` only with ``use_safetensors=False``), its keys are matched to the model as
``from_pretrained`` matches them (legacy renames, the base-model prefix, a tied weight stored once under
either name), and every key and shape is checked before any weight is overwritten.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import torch
from torch import nn

from xf_core.errors import XfValueError
from xf_load._checkpoint import TensorInfo, find_checkpoint
from xf_load._loading import _match_keys
from xf_load.errors import CheckpointMismatchError, CheckpointNotFoundError, ShapeMismatchError
from xf_load.modeling_utils import PreTrainedModel

__all__ = ["IncompatibleKeys", "load_weights"]


class IncompatibleKeys(NamedTuple):
    """What did not match, as ``nn.Module.load_state_dict`` reports it (empty lists when everything did)."""

    missing_keys: list[str]
    unexpected_keys: list[str]


def load_weights(
    model: nn.Module,
    directory: str | os.PathLike[str],
    /,
    *,
    strict: bool = True,
    variant: str | None = None,
    use_safetensors: bool | None = None,
) -> IncompatibleKeys:
    """Overwrite ``model``'s weights, in place and in their current dtype and device, with those saved in
    ``directory`` (by ``save_pretrained``, single file or sharded).

    With ``strict`` (the default) a key the model has but the checkpoint lacks, or the other way round,
    raises :class:`~xf_load.errors.CheckpointMismatchError` naming them and the directory before anything is
    loaded; without it the matching weights are loaded and the rest is returned. A shape that differs
    raises :class:`~xf_load.errors.ShapeMismatchError`, also before anything is loaded. Tied weights need
    only their source in the checkpoint (``model.all_tied_weights_keys``). A plain ``nn.Module`` is matched
    key for key against its ``state_dict()``.
    """
    path = Path(directory)
    if not path.is_dir():
        raise CheckpointNotFoundError(
            f"{path} is not a directory; pass the folder save_pretrained (or Trainer.save_checkpoint) wrote.",
            path=str(path),
        )
    if getattr(model, "quantizer", None) is not None:
        raise XfValueError(
            f"{type(model).__name__} is quantized; its weights cannot be overwritten in place. Load the "
            f"checkpoint with from_pretrained({str(path)!r}, quantization_config=...) instead."
        )
    # mapped: each weight is copied once, from the page cache into the model's own tensor
    checkpoint = find_checkpoint(path, variant=variant, use_safetensors=use_safetensors, mmap=True)
    try:
        infos = checkpoint.infos()
        plan, missing, unexpected = _match(model, infos)
        if strict and (missing or unexpected):
            raise CheckpointMismatchError(
                f"the weights in {path} do not fit {type(model).__name__}: missing {missing}, unexpected "
                f"{unexpected}. Load the checkpoint into the model class and config that saved it (or pass "
                "strict=False to load what matches).",
                path=str(path),
                missing_keys=missing,
                unexpected_keys=unexpected,
            )
        state = model.state_dict(keep_vars=True)
        for name, key in plan.items():
            _check_target(state[name], infos[key], name, key, checkpoint.key_to_file.get(key, path))
        with torch.no_grad():
            for name, key in plan.items():
                current = state[name]
                floating = current.is_floating_point() and infos[key].dtype.is_floating_point
                tensor = checkpoint.read(
                    key, dtype=current.dtype if floating else None, device=current.device
                )
                current.copy_(tensor)
    finally:
        checkpoint.close()
    return IncompatibleKeys(missing, unexpected)


def _match(model: nn.Module, infos: dict[str, TensorInfo]) -> tuple[dict[str, str], list[str], list[str]]:
    """``{model key: checkpoint key}``, the missing and the unexpected keys."""
    if isinstance(model, PreTrainedModel):
        plan, info = _match_keys(model, infos)
        return plan, sorted(info.missing_keys), sorted(info.unexpected_keys)
    state = model.state_dict()
    plan = {key: key for key in infos if key in state}
    return plan, sorted(k for k in state if k not in infos), sorted(k for k in infos if k not in state)


def _check_target(current: torch.Tensor, found: TensorInfo, name: str, key: str, file: Path) -> None:
    if tuple(current.shape) != found.shape:
        raise ShapeMismatchError(
            f"{key!r} in {file} has shape {list(found.shape)} but the model's {name} has shape "
            f"{list(current.shape)}; load the checkpoint into a model with the config that saved it.",
            key=key,
            file=str(file),
            expected=tuple(current.shape),
            found=found.shape,
        )
    if current.device.type == "meta":
        raise XfValueError(
            f"the model's {name} has no storage (it is on the meta device or offloaded to disk); load the "
            f"weights with from_pretrained({str(file.parent)!r}) instead of into this model."
        )
