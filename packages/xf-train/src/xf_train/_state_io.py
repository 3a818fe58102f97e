"""Optimizer, scheduler and RNG state of a checkpoint, stored without pickle.

A checkpoint downloaded from somewhere else must never run code when it is resumed, so xf writes:

- ``optimizer.safetensors``: every tensor of ``optimizer.state_dict()["state"]`` as ``state.<param>.<name>``,
  the non-tensor values and ``param_groups`` as JSON in the header metadata;
- ``scheduler.json``: the scheduler's ``state_dict()`` (plain numbers);
- ``rng_state.safetensors``: the torch CPU (and CUDA) generator states as uint8 tensors, Python's
  ``random`` state as JSON metadata.

transformers' pickle files (``optimizer.pt``, ``scheduler.pt``, ``rng_state.pth``) are still read, but only
through ``torch.load(weights_only=True)``: a file that needs anything beyond tensors and plain containers is
refused with :class:`UnsafeCheckpointError` naming it. A file the OS will not let us read (permission, I/O)
is an :class:`~xf_core.errors.XfOSError` naming it, not a claim that the file is corrupt.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

from xf_core import os_error
from xf_train.errors import CheckpointNotFoundError, UnsafeCheckpointError

__all__ = [
    "check_training_state",
    "load_optimizer_state",
    "load_rng_state",
    "load_scheduler_state",
    "save_training_state",
]

OPTIMIZER_NAME = "optimizer.safetensors"
SCHEDULER_NAME = "scheduler.json"
RNG_NAME = "rng_state.safetensors"
# transformers' names: read (weights-only), never written.
LEGACY = {OPTIMIZER_NAME: "optimizer.pt", SCHEDULER_NAME: "scheduler.pt", RNG_NAME: "rng_state.pth"}


def save_training_state(
    folder: Path, optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LRScheduler
) -> None:
    """Write the three state files of a checkpoint into ``folder``."""
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for param_id, values in state["state"].items():
        for name, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{param_id}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(param_id), {})[name] = value
    meta = {"param_groups": json.dumps(state["param_groups"]), "scalars": json.dumps(scalars)}
    save_file(tensors, str(folder / OPTIMIZER_NAME), metadata=meta)
    (folder / SCHEDULER_NAME).write_text(json.dumps(scheduler.state_dict(), indent=1) + "\n")

    rng = {"cpu": torch.random.get_rng_state()}
    if torch.cuda.is_available():
        rng |= {f"cuda.{i}": s for i, s in enumerate(torch.cuda.random.get_rng_state_all())}
    save_file(rng, str(folder / RNG_NAME), metadata={"python": json.dumps(random.getstate())})


def check_training_state(folder: Path) -> None:
    """Raise :class:`CheckpointNotFoundError` unless ``folder`` has optimizer and scheduler state."""
    _pick(folder, OPTIMIZER_NAME, required=True)
    _pick(folder, SCHEDULER_NAME, required=True)


def load_optimizer_state(folder: Path, optimizer: torch.optim.Optimizer) -> None:
    path = _pick(folder, OPTIMIZER_NAME, required=True)
    assert path is not None
    if path.name != OPTIMIZER_NAME:
        optimizer.load_state_dict(_legacy_load(path))
        return
    tensors, meta = _read_safetensors(path)
    try:
        groups = json.loads(meta["param_groups"])
        scalars = json.loads(meta["scalars"])
        state: dict[int, dict[str, Any]] = {int(k): dict(v) for k, v in scalars.items()}
        for key, value in tensors.items():
            _, param_id, name = key.split(".", 2)
            state.setdefault(int(param_id), {})[name] = value
        optimizer.load_state_dict({"state": state, "param_groups": groups})
    except (KeyError, ValueError, TypeError) as e:
        raise UnsafeCheckpointError(
            f"{path} is not an optimizer state xf can read ({type(e).__name__}: {e}); delete the checkpoint "
            "folder or resume from another one.",
            path=str(path),
        ) from e


def load_scheduler_state(folder: Path, scheduler: torch.optim.lr_scheduler.LRScheduler) -> None:
    path = _pick(folder, SCHEDULER_NAME, required=True)
    assert path is not None
    if path.name != SCHEDULER_NAME:
        scheduler.load_state_dict(_legacy_load(path))
        return
    try:
        text = path.read_text()
    except OSError as e:
        raise os_error(e, path, "reading the scheduler state") from e
    try:
        scheduler.load_state_dict(json.loads(text))
    except (ValueError, TypeError, KeyError) as e:
        raise UnsafeCheckpointError(
            f"{path} is not a scheduler state ({type(e).__name__}: {e}); delete the checkpoint folder or resume "
            "from another one.",
            path=str(path),
        ) from e


def load_rng_state(folder: Path) -> None:
    """Restore Python's and torch's generators; a checkpoint without RNG state leaves them as they are."""
    path = _pick(folder, RNG_NAME, required=False)
    if path is None:
        return
    if path.name != RNG_NAME:
        legacy = _legacy_load(path)
        python, cpu = legacy.get("python"), legacy.get("cpu")
        cuda = list(legacy.get("cuda", []))
    else:
        tensors, meta = _read_safetensors(path)
        cpu = tensors.get("cpu")
        cuda = [tensors[k] for k in sorted((k for k in tensors if k.startswith("cuda.")), key=_index)]
        try:
            python = json.loads(meta["python"])
        except (KeyError, ValueError) as e:
            raise UnsafeCheckpointError(
                f"{path} has no readable Python RNG state; delete it to resume without restoring the RNG.",
                path=str(path),
            ) from e
    try:
        if python is not None:
            version, internal, gauss = python
            random.setstate((version, tuple(internal), gauss))
        if cpu is not None:
            torch.random.set_rng_state(cpu)
        if cuda and torch.cuda.is_available():
            torch.cuda.random.set_rng_state_all(cuda)
    except (ValueError, TypeError, RuntimeError) as e:
        raise UnsafeCheckpointError(
            f"{path} holds an invalid RNG state ({e}); delete it to resume without restoring the RNG.",
            path=str(path),
        ) from e


def _index(key: str) -> int:
    return int(key.split(".", 1)[1])


def _pick(folder: Path, name: str, *, required: bool) -> Path | None:
    """``folder/name``, else transformers' legacy file of the same state, else None (or an error)."""
    for candidate in (name, LEGACY[name]):
        if (folder / candidate).is_file():
            return folder / candidate
    if required:
        raise CheckpointNotFoundError(
            f"{folder} has no {name} (nor {LEGACY[name]}); was it saved with save_only_model=True? It cannot "
            "resume training: load the weights with from_pretrained and start a new run instead.",
            path=str(folder),
            filename=name,
        )
    return None


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
        return load_file(str(path)), meta
    except OSError as e:
        if e.errno is not None:  # the OS refused the read (permission, I/O): the file may well be fine
            raise os_error(e, path, "reading the checkpoint file") from e
        raise _corrupt(path, e) from e
    except (SafetensorError, ValueError) as e:
        raise _corrupt(path, e) from e


def _corrupt(path: Path, e: Exception) -> UnsafeCheckpointError:
    return UnsafeCheckpointError(
        f"{path} is not a readable safetensors file ({e}); it is corrupt or truncated. Delete the "
        "checkpoint folder or resume from an earlier one.",
        path=str(path),
    )


def _legacy_load(path: Path) -> Any:
    """A transformers pickle file, read with ``weights_only=True``: tensors and plain containers only."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except OSError as e:
        if e.errno is not None:  # the OS refused the read (permission, I/O): not a question of safety
            raise os_error(e, path, "reading the checkpoint file") from e
        raise _unsafe(path, e) from e
    except Exception as e:  # the weights-only unpickler raises UnpicklingError, RuntimeError, EOFError...
        raise _unsafe(path, e) from e


def _unsafe(path: Path, e: Exception) -> UnsafeCheckpointError:
    return UnsafeCheckpointError(
        f"{path} cannot be read safely: it needs more than tensors and plain containers to unpickle "
        f"({type(e).__name__}), so it may run code. xf never unpickles code. If you trust and made this "
        f"file yourself, convert it once in a separate script; otherwise delete {path.name} or resume "
        "from another checkpoint.",
        path=str(path),
    )
