"""``save_pretrained``: config.json, generation_config.json and safetensors weights (sharded with an index
above ``max_shard_size``), tied duplicates dropped, written as one set: staged beside the target directory and
swapped in whole, so a killed or failed save leaves the previous one loadable."""

from __future__ import annotations

import errno
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from xf_core import atomic_directory
from xf_core.errors import XfOSError, XfValueError
from xf_core.logging import get_logger
from xf_load._checkpoint import (
    DTYPE_CODES,
    SAFE_WEIGHTS_INDEX_NAME,
    SAFE_WEIGHTS_NAME,
    WEIGHTS_INDEX_NAME,
    WEIGHTS_NAME,
    variant_name,
)
from xf_load.configuration_utils import CONFIG_NAME, dtype_to_str
from xf_load.generation._config import GENERATION_CONFIG_NAME

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
    """Write ``tensors`` as one safetensors file with ``{"format": "pt"}`` metadata: beside ``path``, then renamed
    over it, so a model that memory-maps the previous file (and may be what is being saved) keeps its data."""
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
    partial = Path(path).with_name(f".{Path(path).name}.{os.getpid()}.partial")
    try:
        with open(partial, "wb") as f:
            f.write(len(raw).to_bytes(8, "little"))
            f.write(raw)
            for name in ordered:
                t = tensors[name].detach()
                if t.numel():
                    t = t.to("cpu").contiguous()
                    f.write(memoryview(t.reshape(-1).view(torch.uint8).numpy()))
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


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


def save_model(
    model: nn.Module,
    save_directory: str | os.PathLike[str],
    *,
    max_shard_size: int | str,
    safe_serialization: bool,
    variant: str | None,
    state_dict: dict[str, torch.Tensor] | None,
) -> Path:
    """Write the whole save (config, generation config, weights, index) into a staging directory beside
    ``save_directory`` and swap it in at the end (:func:`xf_core.atomic_directory`): a save stopped at any
    moment leaves the previous one intact. Files of the previous save that a model save does not own (a
    tokenizer, a README) are carried over; its config and weights of the same variant are replaced."""
    directory = _check_target(Path(save_directory))
    quantizer = model.hf_quantizer
    if quantizer is not None and not quantizer.is_serializable:
        raise XfValueError(
            f"this model is quantized with {quantizer.quant_method!r}, which cannot be saved; save the model before "
            "quantizing it."
        )
    config = model.config
    config.architectures = [type(model).__name__]
    config.dtype = dtype_to_str(model.dtype)
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
    owned = _owned_by_a_model_save(variant)
    cwd = os.getcwd()
    with atomic_directory(
        directory, keep=lambda name: not owned(name), action="saving the model to"
    ) as stage:
        config.save_pretrained(stage)
        generation_config = getattr(model, "generation_config", None)
        if generation_config is not None and hasattr(generation_config, "save_pretrained"):
            generation_config.save_pretrained(stage)
        for shard, name in zip(shards, names):
            if safe_serialization:
                save_safetensors(shard, stage / name)
            else:
                torch.save({k: v.detach().cpu().contiguous() for k, v in shard.items()}, stage / name)
        if len(shards) > 1:
            index = {
                "metadata": {"total_size": sum(t.numel() * t.element_size() for t in state.values())},
                "weight_map": {k: name for shard, name in zip(shards, names) for k in sorted(shard)},
            }
            text = json.dumps(index, indent=2, sort_keys=True) + "\n"
            (stage / index_name).write_text(text, encoding="utf-8")
    if Path(cwd).is_relative_to(
        directory.absolute()
    ):  # the process stood in the directory that was swapped out
        os.chdir(cwd)  # the same path, now the new save
    return directory


def _check_target(directory: Path) -> Path:
    """``directory`` as an absolute path without ``..`` (so the staging directory beside it is not inside it)
    and a symlink resolved to what it points at, or a typed error naming the file that stands where it or
    one of its parents should be a directory."""
    directory = directory.resolve() if directory.is_symlink() else Path(os.path.abspath(directory))
    for path in (directory, *directory.parents):
        if path.exists() and not path.is_dir():
            where = "is a file" if path == directory else f"is a file, so {directory} cannot be created"
            raise XfOSError(
                f"saving the model to {directory} failed: {path} {where}; remove it or pick another directory.",
                path=str(directory),
                errno_=errno.EEXIST if path == directory else errno.ENOTDIR,
            )
        if path.exists():
            break
    return directory


def _owned_by_a_model_save(variant: str | None) -> Callable[[str], bool]:
    """Which names in a save directory a model save of ``variant`` writes: config.json,
    generation_config.json, and every weight file (single or shard, safetensors or pickle) and index of that
    variant. Earlier files of these names are dropped by the next save; everything else is kept."""
    weights = []
    for single, index in ((SAFE_WEIGHTS_NAME, SAFE_WEIGHTS_INDEX_NAME), (WEIGHTS_NAME, WEIGHTS_INDEX_NAME)):
        stem, _, ext = variant_name(single, variant).rpartition(".")
        weights.append(re.compile(rf"{re.escape(stem)}(-\d{{5}}-of-\d{{5}})?\.{re.escape(ext)}"))
        weights.append(re.compile(re.escape(variant_name(index, variant))))
    fixed = {CONFIG_NAME, GENERATION_CONFIG_NAME}

    def owned(name: str) -> bool:
        return name in fixed or any(p.fullmatch(name) for p in weights)

    return owned
