"""``save_pretrained``: config.json, generation_config.json and safetensors weights (sharded with an index
above ``max_shard_size``), tied duplicates dropped, stale shards removed, every file written under a temporary
name and renamed into place."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from xf_core.errors import XfValueError
from xf_core.logging import get_logger
from xf_load._checkpoint import (
    DTYPE_CODES,
    SAFE_WEIGHTS_INDEX_NAME,
    SAFE_WEIGHTS_NAME,
    WEIGHTS_INDEX_NAME,
    WEIGHTS_NAME,
    variant_name,
)
from xf_load.configuration_utils import dtype_to_str

__all__ = ["parse_size", "save_model", "save_safetensors"]

logger = get_logger(__name__)
_UNITS = {
    "B": 1,
    "KB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "TB": 10**12,
    "KIB": 2**10,
    "MIB": 2**20,
    "GIB": 2**30,
}


def parse_size(size: int | str) -> int:
    """``"5GB"`` -> 5_000_000_000, ``"2GiB"`` -> 2 * 2**30; an int is bytes."""
    if isinstance(size, int):
        return size
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]I?B|B)?\s*", size.upper())
    if match is None:
        raise XfValueError(
            f"max_shard_size={size!r} is not a size; write e.g. '5GB', '500MB' or a number of bytes."
        )
    return int(float(match.group(1)) * _UNITS[match.group(2) or "B"])


def save_safetensors(tensors: dict[str, torch.Tensor], path: str | os.PathLike[str]) -> None:
    """Write ``tensors`` as one safetensors file with ``{"format": "pt"}`` metadata (to ``path`` directly)."""
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    ordered = sorted(tensors)
    for name in ordered:
        t = tensors[name]
        if t.dtype not in DTYPE_CODES:
            raise XfValueError(f"tensor {name!r} has dtype {t.dtype}, which safetensors cannot store.")
        nbytes = t.numel() * t.element_size()
        header[name] = {
            "dtype": DTYPE_CODES[t.dtype],
            "shape": list(t.shape),
            "data_offsets": [offset, offset + nbytes],
        }
        offset += nbytes
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as f:
        f.write(len(raw).to_bytes(8, "little"))
        f.write(raw)
        for name in ordered:
            t = tensors[name].detach()
            if t.numel():
                t = t.to("cpu").contiguous()
                f.write(memoryview(t.reshape(-1).view(torch.uint8).numpy()))


def _state_dict_to_save(
    model: nn.Module, state_dict: dict[str, torch.Tensor] | None
) -> dict[str, torch.Tensor]:
    state = dict(model.state_dict() if state_dict is None else state_dict)
    for target in model._tie_pairs():
        state.pop(target, None)
    seen: dict[tuple[int, int, tuple[int, ...]], str] = {}
    for name in list(state):  # other shared tensors: keep the first name only
        t = state[name]
        if t.device.type == "meta":
            raise XfValueError(
                f"{name} is still on the meta device (offloaded or never loaded); load the model without disk "
                "offload before saving it."
            )
        key = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape))
        if t.numel() and key in seen:
            logger.info("not saving %s: it shares memory with %s", name, seen[key])
            del state[name]
        else:
            seen[key] = name
    return state


def _shards(state: dict[str, torch.Tensor], max_bytes: int) -> list[dict[str, torch.Tensor]]:
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for name, t in state.items():
        nbytes = t.numel() * t.element_size()
        if shards[-1] and size + nbytes > max_bytes:
            shards.append({})
            size = 0
        shards[-1][name] = t
        size += nbytes
    return shards


def _write_atomic(directory: Path, name: str, write) -> None:
    tmp = directory / f".tmp-{name}"
    try:
        write(tmp)
        os.replace(tmp, directory / name)
    finally:
        if tmp.exists():
            tmp.unlink()


def save_model(
    model: nn.Module,
    save_directory: str | os.PathLike[str],
    *,
    max_shard_size: int | str,
    safe_serialization: bool,
    variant: str | None,
    state_dict: dict[str, torch.Tensor] | None,
) -> Path:
    directory = Path(save_directory)
    if directory.is_file():
        raise XfValueError(f"{directory} is a file; save_pretrained needs a directory.")
    quantizer = model.hf_quantizer
    if quantizer is not None and not quantizer.is_serializable:
        raise XfValueError(
            f"this model is quantized with {quantizer.quant_method!r}, which cannot be saved; save the model before "
            "quantizing it."
        )
    directory.mkdir(parents=True, exist_ok=True)
    config = model.config
    config.architectures = [type(model).__name__]
    config.dtype = dtype_to_str(model.dtype)
    config.save_pretrained(directory)
    generation_config = getattr(model, "generation_config", None)
    if generation_config is not None and hasattr(generation_config, "save_pretrained"):
        generation_config.save_pretrained(directory)

    state = _state_dict_to_save(model, state_dict)
    single = variant_name(SAFE_WEIGHTS_NAME if safe_serialization else WEIGHTS_NAME, variant)
    index_name = variant_name(SAFE_WEIGHTS_INDEX_NAME if safe_serialization else WEIGHTS_INDEX_NAME, variant)
    shards = _shards(state, parse_size(max_shard_size))
    stem, _, ext = single.rpartition(".")
    names = (
        [single]
        if len(shards) == 1
        else [f"{stem}-{i:05d}-of-{len(shards):05d}.{ext}" for i in range(1, len(shards) + 1)]
    )

    def writer(shard: dict[str, torch.Tensor]):
        if safe_serialization:
            return lambda path: save_safetensors(shard, path)
        return lambda path: torch.save({k: v.detach().cpu().contiguous() for k, v in shard.items()}, path)

    for shard, name in zip(shards, names):
        _write_atomic(directory, name, writer(shard))
    if len(shards) > 1:
        index = {
            "metadata": {"total_size": sum(t.numel() * t.element_size() for t in state.values())},
            "weight_map": {k: name for shard, name in zip(shards, names) for k in sorted(shard)},
        }
        text = json.dumps(index, indent=2, sort_keys=True) + "\n"
        _write_atomic(directory, index_name, lambda path: Path(path).write_text(text, encoding="utf-8"))
    _remove_stale(
        directory, single, index_name, keep=set(names) | ({index_name} if len(shards) > 1 else set())
    )
    return directory


def _remove_stale(directory: Path, single: str, index_name: str, keep: set[str]) -> None:
    """Delete weight files of an earlier save with the same name pattern that this save did not write."""
    stem, _, ext = single.rpartition(".")
    pattern = re.compile(rf"^{re.escape(stem)}(-\d{{5}}-of-\d{{5}})?\.{re.escape(ext)}$")
    for path in directory.iterdir():
        if path.name in keep:
            continue
        if pattern.match(path.name) or path.name == index_name:
            logger.info("removing %s left by an earlier save", path)
            path.unlink()
