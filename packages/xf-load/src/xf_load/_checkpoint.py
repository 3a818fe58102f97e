"""Checkpoint files: find them (single, sharded, variant, subfolder), read their headers, read tensors.

Two ways to take a tensor out of a safetensors file:

- **mapped** (``Checkpoint(mmap=True)``, what ``from_pretrained`` does unless ``disable_mmap=True``): the
  file is memory-mapped once, private and copy-on-write, and its header is validated from the mapped bytes
  themselves. A tensor whose stored dtype is the one wanted, on the CPU, is a view of the mapping: no copy,
  nothing read until it is used, the page cache shared between processes. Writing into such a tensor
  changes the process's private copy of that page, never the file.
- **read**: plain ``readinto`` straight into the tensor that will become the parameter (one copy from the
  page cache), then cast or moved. Used for casts and device moves, where a copy is made anyway.

What happens to a mapped model when its file changes on disk (Linux and macOS semantics of a private
mapping): a file *deleted* or *replaced by rename* (``save_pretrained`` over the same directory, a Hub cache
update) leaves the model intact, since the mapping keeps the old file's data alive until the model is
released. A file *rewritten in place* or *truncated* is undefined: untouched pages may show the new bytes,
and a page past the new end raises SIGBUS. Load with ``disable_mmap=True`` to own the weights outright.

Headers are validated against the file size first, so a truncated or corrupt file names itself and the key.
"""

from __future__ import annotations

import json
import mmap
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from xf_core import HubOptions, is_local_path, resolve_file
from xf_load.errors import CheckpointError, CheckpointNotFoundError

__all__ = [
    "SAFE_WEIGHTS_INDEX_NAME",
    "SAFE_WEIGHTS_NAME",
    "WEIGHTS_INDEX_NAME",
    "WEIGHTS_NAME",
    "Checkpoint",
    "SafetensorsFile",
    "TensorInfo",
    "find_checkpoint",
    "variant_name",
]

SAFE_WEIGHTS_NAME = "model.safetensors"
SAFE_WEIGHTS_INDEX_NAME = "model.safetensors.index.json"
WEIGHTS_NAME = "pytorch_model.bin"
WEIGHTS_INDEX_NAME = "pytorch_model.bin.index.json"

_MAX_HEADER = 100 * 1024 * 1024
SAFETENSORS_DTYPES: dict[str, torch.dtype] = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
    "F8_E4M3": torch.float8_e4m3fn,
    "F8_E5M2": torch.float8_e5m2,
}
DTYPE_CODES = {v: k for k, v in SAFETENSORS_DTYPES.items()}


@dataclass(frozen=True)
class TensorInfo:
    dtype: torch.dtype
    shape: tuple[int, ...]
    begin: int  # absolute byte offsets in the file
    end: int


class SafetensorsFile:
    """One safetensors file: its validated header, and tensors viewed or read on demand.

    ``mmap=True`` maps the file (private, copy-on-write) and validates the header from the mapping, so what
    was checked is what the views see. ``bytes_read`` counts the bytes of tensor data taken from the file,
    viewed or read.
    """

    def __init__(self, path: str | os.PathLike[str], *, mmap: bool = False) -> None:
        self.path = Path(path)
        self._file = None
        self._map: torch.Tensor | None = None  # the whole file as uint8, viewing the private mapping
        self.bytes_read = 0
        if mmap:
            self._map = _map_file(self.path)
        if self._map is not None:
            data = self._map.numpy()
            self.tensors, self.metadata = _parse_header(
                self.path, len(data), lambda at, n: data[at : at + n].tobytes()
            )
        else:
            self.tensors, self.metadata = _read_header(self.path)

    def __enter__(self) -> SafetensorsFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the file; the mapping lives on for as long as a tensor views it."""
        if self._file is not None:
            self._file.close()
            self._file = None
        self._map = None

    def keys(self) -> list[str]:
        return list(self.tensors)

    def read(
        self,
        key: str,
        *,
        dtype: torch.dtype | None = None,
        device: torch.device | str = "cpu",
        slices: tuple[slice, ...] | None = None,
    ) -> torch.Tensor:
        """The tensor ``key`` (only its part ``slices``, one slice per dim, when given), converted to ``dtype``
        (floating tensors only) and placed on ``device``.

        Mapped, a CPU tensor in its stored dtype is a view of the file; with ``slices`` only the slice is
        copied, whatever the dtype or device. Otherwise the bytes are read with ``readinto`` (for a slice,
        only the rows of its first dimension).
        """
        info = self.tensors[key]
        cast = dtype is not None and info.dtype.is_floating_point and info.dtype != dtype
        on_cpu = torch.device(device).type == "cpu"
        if slices is not None:
            _check_slices(self.path, key, info.shape, slices)
        view = self._view(key) if self._map is not None else None
        if view is not None and (slices is not None or (on_cpu and not cast)):
            out = view if slices is None else view[slices]
            self.bytes_read += out.numel() * out.element_size()
            if not out.is_contiguous():
                out = out.contiguous()  # a strided slice: copy just its elements
        else:
            out = self._read(key, info, slices)
        if cast:
            out = out.to(dtype)
        return out if on_cpu else out.to(device)

    def _view(self, key: str) -> torch.Tensor | None:
        """``key`` as a view of the mapping; None when its offset does not fit its dtype's alignment."""
        assert self._map is not None
        info = self.tensors[key]
        if info.begin % info.dtype.itemsize:
            return None
        return self._map[info.begin : info.end].view(info.dtype).view(info.shape)

    def _read(self, key: str, info: TensorInfo, slices: tuple[slice, ...] | None) -> torch.Tensor:
        shape, begin, end = info.shape, info.begin, info.end
        if slices and shape and slices[0].step in (None, 1):  # read only the rows of the first dim's slice
            start, stop, _ = slices[0].indices(shape[0])
            stop = max(start, stop)
            row = (end - begin) // shape[0] if shape[0] else 0
            shape, begin, end = (stop - start, *shape[1:]), begin + start * row, begin + stop * row
            slices = (slice(None), *slices[1:])
        out = torch.empty(shape, dtype=info.dtype)
        nbytes = end - begin
        try:
            if self._file is None:
                self._file = open(self.path, "rb", buffering=0)  # noqa: SIM115 (kept open across reads)
            if nbytes:
                self._file.seek(begin)
                self._read_into(memoryview(out.view(-1).view(torch.uint8).numpy()), nbytes, key)
        except OSError as e:
            if isinstance(e, CheckpointError):
                raise
            raise unreadable(self.path, e, key=key) from e
        self.bytes_read += nbytes
        return out if slices is None else out[slices].contiguous()

    def _read_into(self, view: memoryview, nbytes: int, key: str) -> None:
        assert self._file is not None
        got = 0
        while got < nbytes:
            n = self._file.readinto(view[got:])
            if not n:
                raise CheckpointError(
                    f"{self.path} ended while reading tensor {key!r}; the file is truncated, re-download it.",
                    file=str(self.path),
                    key=key,
                )
            got += n


def _check_slices(path: Path, key: str, shape: tuple[int, ...], slices: tuple[slice, ...]) -> None:
    """A tensor-parallel hook's ``local_slice``: one slice per dimension."""
    if (
        not isinstance(slices, tuple)
        or len(slices) != len(shape)
        or not all(isinstance(s, slice) for s in slices)
    ):
        raise CheckpointError(
            f"the tensor-parallel hook asked for part {slices!r} of {key!r} in {path}, which has shape "
            f"{list(shape)}; local_slice must return one slice per dimension (or None for the whole tensor).",
            file=str(path),
            key=key,
        )


def _map_file(path: Path) -> torch.Tensor | None:
    """The whole file as a uint8 tensor over a private (copy-on-write) memory mapping; None for a file too
    short to have a header (it is then read, and named as corrupt)."""
    try:
        with open(path, "rb") as f:
            if os.fstat(f.fileno()).st_size < 8:
                return None
            mapping = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
    except FileNotFoundError as e:
        raise CheckpointNotFoundError(f"no such file: {path}", path=str(path), filename=path.name) from e
    except OSError as e:
        raise unreadable(path, e) from e
    return torch.frombuffer(mapping, dtype=torch.uint8)  # the tensor keeps the mapping alive


def unreadable(path: Path, error: OSError, *, key: str | None = None) -> CheckpointError:
    """A typed error for a weights file the OS would not let us read (permissions, a directory, I/O)."""
    why = (
        "it is a directory, not a file"
        if isinstance(error, IsADirectoryError)
        else error.strerror or str(error)
    )
    reading = f" (reading tensor {key!r})" if key else ""
    return CheckpointError(
        f"{path} cannot be read{reading}: {why}. Check that it is a file you may read (its permissions), or "
        "re-download the checkpoint.",
        file=str(path),
        key=key,
    )


def _read_header(path: Path) -> tuple[dict[str, TensorInfo], dict[str, str]]:
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:

            def read(at: int, n: int) -> bytes:
                f.seek(at)
                return f.read(n)

            return _parse_header(path, size, read)
    except FileNotFoundError as e:
        raise CheckpointNotFoundError(f"no such file: {path}", path=str(path), filename=path.name) from e
    except OSError as e:
        if isinstance(e, CheckpointError):
            raise
        raise unreadable(path, e) from e


def _parse_header(
    path: Path, size: int, read: Callable[[int, int], bytes]
) -> tuple[dict[str, TensorInfo], dict[str, str]]:
    """The tensors and metadata of the file ``path`` of ``size`` bytes, whose bytes ``read(at, n)`` returns."""

    def corrupt(why: str, key: str | None = None) -> CheckpointError:
        return CheckpointError(
            f"{path} is not a valid safetensors file ({why}); it is corrupt or truncated, re-download or re-save it.",
            file=str(path),
            key=key,
        )

    prefix = read(0, 8)
    if len(prefix) < 8:
        raise corrupt(f"{len(prefix)} bytes long")
    (n,) = struct.unpack("<Q", prefix)
    if n > min(size - 8, _MAX_HEADER):
        raise corrupt(f"header length {n} exceeds the file size {size}")
    raw = read(8, n)
    try:
        header = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise corrupt(f"header is not JSON: {e}") from e
    if not isinstance(header, dict):
        raise corrupt("header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    start = 8 + n
    tensors: dict[str, TensorInfo] = {}
    for key, entry in header.items():
        try:
            dtype = SAFETENSORS_DTYPES[entry["dtype"]]
            shape = tuple(int(d) for d in entry["shape"])
            begin, end = (int(x) for x in entry["data_offsets"])
        except (KeyError, TypeError, ValueError) as e:
            raise corrupt(f"bad header entry for {key!r}: {entry!r}", key) from e
        numel = 1
        for d in shape:
            numel *= d
        if end - begin != numel * dtype.itemsize or begin < 0:
            raise corrupt(f"tensor {key!r} has shape {list(shape)} but {end - begin} bytes", key)
        if start + end > size:
            raise corrupt(f"tensor {key!r} ends at byte {start + end} but the file has {size} bytes", key)
        tensors[key] = TensorInfo(dtype, shape, start + begin, start + end)
    return tensors, metadata


@dataclass
class Checkpoint:
    """The weight files of a model: key -> file, plus what the index said."""

    files: list[Path]
    key_to_file: dict[str, Path] = field(default_factory=dict)
    index_path: Path | None = None
    index_metadata: dict[str, Any] = field(default_factory=dict)
    is_safetensors: bool = True
    mmap: bool = False
    _bytes_closed: int = field(default=0, repr=False)
    _open: dict[Path, SafetensorsFile] = field(default_factory=dict, repr=False)
    _pickled: dict[Path, dict[str, torch.Tensor]] = field(default_factory=dict, repr=False)
    _infos: dict[str, TensorInfo] | None = field(default=None, repr=False)

    def infos(self) -> dict[str, TensorInfo]:
        """Every tensor's dtype, shape and offsets (reads the headers only)."""
        if self._infos is None:
            self._infos = self._read_infos()
        return self._infos

    def _tensors_of(self, path: Path) -> dict[str, TensorInfo]:
        if self.is_safetensors:
            return self.reader(path).tensors
        if path not in self._pickled:
            self._pickled[path] = load_pickle_state_dict(path, mmap=self.mmap)
        return {k: TensorInfo(v.dtype, tuple(v.shape), 0, 0) for k, v in self._pickled[path].items()}

    def _read_infos(self) -> dict[str, TensorInfo]:
        out: dict[str, TensorInfo] = {}
        for path in self.files:
            for key, info in self._tensors_of(path).items():
                if key in self.key_to_file and self.key_to_file[key] != path:
                    continue  # the index says this key lives in another shard
                out[key] = info
                self.key_to_file.setdefault(key, path)
        if self.index_path is not None:
            for key, path in self.key_to_file.items():
                if key not in out:
                    raise CheckpointError(
                        f"{self.index_path} maps {key!r} to {path.name}, which has no such tensor; the index and "
                        "the shards do not match, re-download the checkpoint.",
                        file=str(self.index_path),
                        key=key,
                    )
        return out

    def reader(self, path: Path) -> SafetensorsFile:
        if path not in self._open:
            self._open[path] = SafetensorsFile(path, mmap=self.mmap)
        return self._open[path]

    @property
    def bytes_read(self) -> int:
        """Bytes of tensor data taken from the files so far (viewed in the mapping or read)."""
        return self._bytes_closed + sum(r.bytes_read for r in self._open.values())

    def read(
        self,
        key: str,
        *,
        dtype: torch.dtype | None = None,
        device: torch.device | str = "cpu",
        slices: tuple[slice, ...] | None = None,
    ) -> torch.Tensor:
        """The tensor ``key`` (its part ``slices`` when given) as :meth:`SafetensorsFile.read` gives it."""
        path = self.key_to_file[key]
        if self.is_safetensors:
            return self.reader(path).read(key, dtype=dtype, device=device, slices=slices)
        tensor = self._pickled[path][key]
        if slices is not None:
            _check_slices(path, key, tuple(tensor.shape), slices)
            tensor = tensor[slices]
        self._bytes_closed += tensor.numel() * tensor.element_size()
        if dtype is not None and tensor.is_floating_point():
            tensor = tensor.to(dtype)
        return tensor.to(device).contiguous()

    def close(self) -> None:
        """Close the files; tensors that view a mapping keep it (and only it) alive."""
        for reader in self._open.values():
            self._bytes_closed += reader.bytes_read
            reader.close()
        self._open.clear()
        self._pickled.clear()

    def first_float_dtype(self) -> torch.dtype | None:
        for info in self.infos().values():
            if info.dtype.is_floating_point:
                return info.dtype
        return None


def variant_name(name: str, variant: str | None) -> str:
    """transformers' naming: the variant goes before the last extension (``model.fp16.safetensors``,
    ``model.safetensors.index.fp16.json``)."""
    if not variant:
        return name
    stem, _, ext = name.rpartition(".")
    return f"{stem}.{variant}.{ext}"


def find_checkpoint(
    path_or_repo_id: str | os.PathLike[str],
    *,
    hub: HubOptions | None = None,
    variant: str | None = None,
    use_safetensors: bool | None = None,
    mmap: bool = False,
) -> Checkpoint:
    """Find the weights: ``model.safetensors``, else its sharded index; ``pytorch_model.bin`` (and its index)
    only when ``use_safetensors=False`` is passed explicitly (pickle files can run code; they are then read
    with ``torch.load(weights_only=True)``). ``mmap``: map the files and hand out views where no cast or
    device move is needed (see the module docstring)."""
    hub = hub or HubOptions()
    subfolder = hub.subfolder
    candidates = [(SAFE_WEIGHTS_NAME, SAFE_WEIGHTS_INDEX_NAME, True)]
    if use_safetensors is False:
        candidates = [(WEIGHTS_NAME, WEIGHTS_INDEX_NAME, False), *candidates]
    for single, index, safe in candidates:
        path = resolve_file(path_or_repo_id, variant_name(single, variant), missing_ok=True, hub=hub)
        if path is not None:
            return Checkpoint(files=[path], is_safetensors=safe, mmap=mmap)
        _check_not_a_directory(path_or_repo_id, subfolder, variant_name(single, variant))
        index_path = resolve_file(path_or_repo_id, variant_name(index, variant), missing_ok=True, hub=hub)
        if index_path is not None:
            return _sharded(path_or_repo_id, index_path, hub, safe, mmap)
    where = f"{path_or_repo_id}/{subfolder}" if subfolder else str(path_or_repo_id)
    names = [variant_name(n, variant) for n in (SAFE_WEIGHTS_NAME, SAFE_WEIGHTS_INDEX_NAME)]
    hint = ""
    if use_safetensors is not False:
        for legacy in (WEIGHTS_NAME, WEIGHTS_INDEX_NAME):
            if (
                resolve_file(path_or_repo_id, variant_name(legacy, variant), missing_ok=True, hub=hub)
                is not None
            ):
                hint = (
                    f"; it has {variant_name(legacy, variant)}, a pickle file: pass use_safetensors=False to load "
                    "it (read with torch.load(weights_only=True)) or convert it to safetensors"
                )
                break
    raise CheckpointNotFoundError(
        f"{where} has no {' or '.join(names)}{hint}.",
        path=str(path_or_repo_id),
        filename=names[0],
    )


def _check_not_a_directory(path_or_repo_id: str | os.PathLike[str], subfolder: str | None, name: str) -> None:
    """A local weights name that exists but is not a file is an unreadable file, not a missing one."""
    if not is_local_path(path_or_repo_id):
        return
    folder = Path(os.path.expanduser(str(path_or_repo_id)))
    path = folder / subfolder / name if subfolder else folder / name
    if path.exists() and not path.is_file():
        raise unreadable(path, IsADirectoryError(21, "Is a directory", str(path)))


def _sharded(
    path_or_repo_id: str | os.PathLike[str], index_path: Path, hub: HubOptions, safe: bool, mmap: bool
) -> Checkpoint:
    from xf_load.configuration_utils import load_json

    index = load_json(index_path, what="checkpoint index")
    weight_map = index.get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        raise CheckpointError(
            f"{index_path} has no 'weight_map' object; it is not a checkpoint index, re-download it.",
            file=str(index_path),
        )
    local = index_path.parent
    by_name: dict[str, Path] = {}
    for key, name in weight_map.items():
        if name in by_name:
            continue
        if not isinstance(name, str) or Path(name).is_absolute() or ".." in Path(name).parts or "\\" in name:
            raise CheckpointError(
                f"{index_path} maps {key!r} to {name!r}, which is outside the checkpoint directory; shard names "
                "must be plain file names next to the index. Fix or re-download the index.",
                file=str(index_path),
                key=key,
            )
        path = resolve_file(path_or_repo_id, name, missing_ok=True, hub=hub)
        if path is None:
            raise CheckpointNotFoundError(
                f"{index_path.name} lists shard {name} (for {key!r}), which is missing from {local}; re-download "
                "or pass a complete snapshot.",
                path=str(local),
                filename=name,
            )
        by_name[name] = path
    files = list(dict.fromkeys(by_name.values()))
    key_to_file = {key: by_name[name] for key, name in weight_map.items()}
    return Checkpoint(
        files=files,
        key_to_file=key_to_file,
        index_path=index_path,
        index_metadata=index.get("metadata") or {},
        is_safetensors=safe,
        mmap=mmap,
    )


def load_pickle_state_dict(path: Path, *, mmap: bool = True) -> dict[str, torch.Tensor]:
    """A ``pytorch_model.bin`` state dict, read with ``weights_only=True`` (no code runs); memory-mapped unless
    ``mmap=False``."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as e:
        raise CheckpointError(
            f"{path} could not be read as a PyTorch checkpoint with weights_only=True ({e}); convert it to "
            "safetensors or re-download it.",
            file=str(path),
        ) from e
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} does not hold a state dict.", file=str(path))
    return state
