"""Distributed checkpoints with ``torch.distributed.checkpoint`` (DCP), loadable at any world size.

``save_checkpoint(dir, model, optimizer, scheduler=..., data=..., step=...)`` writes

* the model's and optimizer's sharded state through DCP (each rank writes its own shards; the FQNs are the
  unwrapped model's, so a checkpoint saved under FSDP/TP/DDP loads into a plain model and back, at 1, 2 or 4
  ranks: DCP reshards on load);
* ``state.json``: every other keyword (objects with ``state_dict()`` are stored as that dict; plain values
  as they are). JSON, so loading never unpickles anything;
* ``manifest.json`` last: the size and SHA-256 of every file. DCP itself loads a flipped byte silently;
  :func:`verify_checkpoint` (run by :func:`load_checkpoint`) names the corrupted, truncated or missing file.

The save goes to ``<dir>.partial`` and is renamed into place only when complete, so a rank killed mid-save
leaves the previous checkpoint at ``dir`` (or in a sibling directory) as it was.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch.distributed as dist
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)
from torch.distributed.checkpoint.state_dict_loader import load as dcp_load
from torch.distributed.checkpoint.state_dict_saver import save as dcp_save

from xf_parallel.errors import CheckpointCorruptedError, CheckpointNotFoundError

__all__ = ["MANIFEST", "export_pretrained", "load_checkpoint", "save_checkpoint", "verify_checkpoint"]

MANIFEST = "manifest.json"
STATE = "state.json"
_CHUNK = 1 << 20


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def _rank() -> int:
    return dist.get_rank() if _distributed() else 0


def _barrier() -> None:
    if _distributed():
        dist.barrier()


@contextlib.contextmanager
def _single_process_quiet() -> Iterator[None]:
    """DCP warns that it assumes one process when there is no process group: that is the intent here."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message="torch.distributed is disabled, unavailable or uninitialized"
        )
        yield


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def _stored(value: Any, key: str) -> Any:
    if hasattr(value, "state_dict") and callable(value.state_dict):
        value = value.state_dict()
    try:
        json.dumps(value)
    except TypeError as e:
        raise TypeError(
            f"save_checkpoint(..., {key}=...) must be JSON-serialisable or have a JSON-serialisable state_dict() "
            f"({e}); store tensors in the model or optimizer, or convert them to lists."
        ) from None
    return value


def save_checkpoint(
    path: str | os.PathLike[str], model: nn.Module, optimizer: Any = None, **state: Any
) -> Path:
    """Save ``model`` (+ ``optimizer``) shards and ``state`` (scheduler, data position, step, ...) to ``path``.

    Collective: every rank calls it. Returns ``path``.
    """
    path = Path(path)
    staging = path.with_name(path.name + ".partial")
    stored = {key: _stored(value, key) for key, value in state.items()}
    if _rank() == 0:
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
    _barrier()
    model = _unwrap(model)
    to_save: dict[str, Any] = {"model": get_model_state_dict(model)}
    if optimizer is not None:
        to_save["optimizer"] = get_optimizer_state_dict(model, optimizer)
    with _single_process_quiet():
        dcp_save(to_save, checkpoint_id=staging)
    if _rank() == 0:
        (staging / STATE).write_text(json.dumps(stored, indent=2, sort_keys=True))
        manifest = {"files": {p.name: _describe(p) for p in sorted(staging.iterdir())}}
        _write_synced(staging / MANIFEST, json.dumps(manifest, indent=2))
        _swap_into_place(staging, path)
    _barrier()
    return path


def _describe(path: Path) -> dict[str, Any]:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return {"size": path.stat().st_size, "sha256": digest.hexdigest()}


def _write_synced(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


def _swap_into_place(staging: Path, path: Path) -> None:
    """``staging`` becomes ``path``; a previous ``path`` stays at ``path.old`` until the rename is done."""
    old = path.with_name(path.name + ".old")
    if path.exists():
        shutil.rmtree(old, ignore_errors=True)
        path.rename(old)
    staging.rename(path)
    shutil.rmtree(old, ignore_errors=True)


def _resolve(path: Path) -> Path:
    if (path / MANIFEST).is_file():
        return path
    old = path.with_name(path.name + ".old")
    if not path.exists() and (old / MANIFEST).is_file():  # killed between the two renames of a save
        return old
    partial = path.with_name(path.name + ".partial")
    hint = f" ({partial} is a save that did not finish)" if partial.exists() else ""
    raise CheckpointNotFoundError(
        f"{path} holds no complete distributed checkpoint: {MANIFEST} is missing{hint}. A save writes it last; "
        "load an earlier checkpoint, or save again.",
        path=path,
    )


def verify_checkpoint(path: str | os.PathLike[str]) -> Path:
    """Check every file of the checkpoint at ``path`` against its manifest; returns the directory.

    Raises :class:`CheckpointCorruptedError` naming a missing, truncated or changed file, and
    :class:`CheckpointNotFoundError` for a directory without a manifest. Under a process group the ranks split
    the hashing and all of them raise the same error.
    """
    root = _resolve(Path(path))
    manifest = json.loads((root / MANIFEST).read_text())["files"]
    names = sorted(manifest)
    world = dist.get_world_size() if _distributed() else 1
    problems = [p for name in names[_rank() :: world] if (p := _problem(root, name, manifest[name]))]
    if _distributed():
        gathered: list[list[tuple[str, str]]] = [[] for _ in range(world)]
        dist.all_gather_object(gathered, problems)
        problems = sorted(p for ps in gathered for p in ps)
    if problems:
        name, why = problems[0]
        raise CheckpointCorruptedError(
            f"{root / name} {why}; the checkpoint at {root} is damaged. Load an earlier checkpoint, or copy this "
            "file again from where it was saved.",
            file=root / name,
        )
    return root


def _problem(root: Path, name: str, expected: dict[str, Any]) -> tuple[str, str] | None:
    file = root / name
    if not file.is_file():
        return name, "is missing"
    size = file.stat().st_size
    if size != expected["size"]:
        return name, f"is truncated or overwritten: {size} bytes, but the manifest says {expected['size']}"
    if _describe(file)["sha256"] != expected["sha256"]:
        return name, "does not match its SHA-256 checksum in the manifest (corrupted bytes)"
    return None


def load_checkpoint(
    path: str | os.PathLike[str], model: nn.Module, optimizer: Any = None, **stateful: Any
) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` into ``model`` (+ ``optimizer``), at any world size
    (a plain process without a process group included); returns the other saved state. Objects passed as
    keywords (``scheduler=sched``) get their saved state through ``load_state_dict``.

    The files are verified against the manifest first (:func:`verify_checkpoint`).
    """
    root = verify_checkpoint(path)
    model = _unwrap(model)
    to_load: dict[str, Any] = {"model": get_model_state_dict(model)}
    if optimizer is not None:
        to_load["optimizer"] = get_optimizer_state_dict(model, optimizer)
    with _single_process_quiet():
        dcp_load(to_load, checkpoint_id=root)
    set_model_state_dict(model, to_load["model"])
    if optimizer is not None:
        set_optimizer_state_dict(model, optimizer, to_load["optimizer"])
    state = json.loads((root / STATE).read_text())
    for key, target in stateful.items():
        if key not in state:
            raise KeyError(
                f"{root / STATE} has no {key!r}; it holds {', '.join(sorted(state)) or 'nothing'}."
            )
        target.load_state_dict(state[key])
    return state


def export_pretrained(
    model: nn.Module, save_directory: str | os.PathLike[str], **save_kwargs: Any
) -> Path | None:
    """Gather the full (unsharded) weights and write them from rank 0 as a normal ``save_pretrained``
    directory (config.json + safetensors), loadable by ``from_pretrained`` without xf-parallel.

    Collective; returns the directory on rank 0 and None on the others.
    """
    model = _unwrap(model)
    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    state = get_model_state_dict(model, options=options)
    out = None
    if _rank() == 0:
        out = Path(model.save_pretrained(save_directory, state_dict=state, **save_kwargs))  # type: ignore[operator]
    _barrier()
    return out
