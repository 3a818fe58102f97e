"""The Pipeline base: preprocess -> _forward -> postprocess, with batching, un-batching and lazy iteration.

A task subclass writes four small methods:

* ``_sanitize_parameters(**kwargs) -> (preprocess, forward, postprocess)`` keyword dicts. Keyword arguments
  given at construction are defaults; the same keywords given at call time override them.
* ``preprocess(item, **pre)`` returns one dict of model inputs (tensors shaped ``(1, T, ...)``) plus any
  plain-Python metadata, or, for ``chunked`` tasks (long inputs, zero-shot labels), a list of such dicts.
  ``preprocess_batch(items, **pre)`` does it for several items; the tasks override it to tokenize all of
  them in one tokenizer call (the Rust backend encodes a batch in parallel), and the pipeline always goes
  through it, a batch of items at a time.
* ``_forward(batch, **fwd)`` runs the model on a padded batch and returns a dict of batched tensors
  (and lists of metadata). It runs under ``torch.inference_mode``.
* ``postprocess(output, **post)`` turns one input's output (a chunk list for chunked tasks) into plain
  Python types that serialize to JSON.

A list given with ``batch_size > 1`` is tokenized in one call and batched by input length (results come
back in input order), which cuts padding; a generator is processed in order, lazily, a batch of items at a
time.

The base pads each key with its own value (``input_ids`` with the tokenizer's pad id, ``attention_mask``
with 0, ``special_tokens_mask`` with 1, ...), and when un-batching trims every per-token tensor back to its
input's own length, so results do not depend on ``batch_size``.
"""

from __future__ import annotations

import inspect
from collections import deque
from collections.abc import Iterable, Iterator
from itertools import islice
from typing import Any, ClassVar

import torch
from torch.nn.utils.rnn import pad_sequence

from xf_core import HubOptions
from xf_pipeline.errors import PipelineParameterError

__all__ = ["Pipeline", "collate", "resolve_device", "unbatch"]

_PAD_ONE = frozenset({"special_tokens_mask", "p_mask"})
_PAD_SEQUENCE_HAS_SIDE = "padding_side" in inspect.signature(pad_sequence).parameters


def resolve_device(device: int | str | torch.device | None, model: Any = None) -> torch.device:
    """``device`` as a torch.device: an int is a CUDA ordinal (-1 means CPU); None means the model's device."""
    if device is None:
        if model is not None:
            try:
                return next(model.parameters()).device
            except (AttributeError, StopIteration):
                pass
        return torch.device("cpu")
    if isinstance(device, torch.device):
        return device
    if isinstance(device, int):
        return torch.device("cpu") if device < 0 else torch.device("cuda", device)
    return torch.device(device)


def _pad(rows: list[torch.Tensor], fill: int, side: str) -> torch.Tensor:
    """``rows`` (each ``(T_i, ...)``) stacked into one ``(N, max T_i, ...)`` tensor in one native call,
    padded with ``fill`` on ``side``."""
    if all(row.shape[0] == rows[0].shape[0] for row in rows):
        return torch.stack(rows)
    if side != "left":
        return pad_sequence(rows, batch_first=True, padding_value=fill)
    if _PAD_SEQUENCE_HAS_SIDE:
        return pad_sequence(rows, batch_first=True, padding_value=fill, padding_side="left")
    # torch < 2.6: pad the reversed rows on the right, then reverse back.
    return pad_sequence([row.flip(0) for row in rows], batch_first=True, padding_value=fill).flip(1)


def collate(
    chunks: list[dict[str, Any]], *, pad_token_id: int, padding_side: str = "right"
) -> tuple[dict[str, Any], list[int], set[str]]:
    """Stack model-input dicts into one batch, padding each 2+-dim tensor along dim 1 with its key's value
    (one native ``pad_sequence`` call per key, not a Python loop over the items).

    Returns the batch, each chunk's own length (of its padded keys) and the names of the padded keys.
    """
    keys = list(chunks[0])
    for chunk in chunks[1:]:
        if list(chunk) != keys:
            raise ValueError(f"cannot batch inputs with different keys: {keys} vs {list(chunk)}")
    batch: dict[str, Any] = {}
    lengths: list[int] = [0] * len(chunks)
    padded: set[str] = set()
    for key in keys:
        values = [chunk[key] for chunk in chunks]
        if not isinstance(values[0], torch.Tensor):
            batch[key] = values
            continue
        if values[0].dim() < 2:
            batch[key] = torch.cat([v.reshape(1, *v.shape[1:]) if v.dim() else v.reshape(1) for v in values])
            continue
        lengths = [v.shape[1] for v in values]
        padded.add(key)
        if key == "input_ids":
            fill = pad_token_id
        elif key in _PAD_ONE:
            fill = 1
        else:
            fill = 0
        batch[key] = _pad([v[0] for v in values], fill, padding_side)
    return batch, lengths, padded


def unbatch(
    output: dict[str, Any],
    lengths: list[int],
    *,
    per_token: Iterable[str],
    padding_side: str = "right",
) -> list[dict[str, Any]]:
    """Split a batched output into one dict per row, on the CPU; ``per_token`` tensors lose their padding."""
    per_token = set(per_token)
    rows: list[dict[str, Any]] = []
    for i, length in enumerate(lengths):
        row: dict[str, Any] = {}
        for key, value in output.items():
            if isinstance(value, torch.Tensor):
                value = value[i : i + 1]
                if key in per_token and value.dim() >= 2:
                    width = value.shape[1]
                    value = value[:, width - length :] if padding_side == "left" else value[:, :length]
                row[key] = value.cpu()
            elif isinstance(value, list):
                row[key] = value[i]
            else:
                row[key] = value
        rows.append(row)
    return rows


def _length(chunk: dict[str, Any]) -> int:
    ids = chunk.get("input_ids")
    return int(ids.shape[-1]) if isinstance(ids, torch.Tensor) else 0


class Pipeline:
    """Base of every task pipeline. Call it on one input (one result), a list (a list of results) or any
    other iterable, such as a generator (a lazy iterator of results, reading at most one batch ahead)."""

    task: ClassVar[str] = ""
    chunked: ClassVar[bool] = False
    per_token_outputs: ClassVar[frozenset[str]] = frozenset()

    def __init__(
        self,
        model: Any,
        tokenizer: Any = None,
        *,
        device: int | str | torch.device | None = None,
        batch_size: int = 1,
        **kwargs: Any,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.device: torch.device = resolve_device(device, model)
        if device is not None and getattr(model, "hf_device_map", None) is None:
            self.model.to(self.device)
        self.model.eval()
        self.batch_size: int = self._checked_batch_size(batch_size)
        self._defaults = self._checked_sanitize(kwargs)

    # -- to override -------------------------------------------------------------------------------
    @classmethod
    def load_preprocessor(cls, path: str, *, hub: HubOptions) -> Any:
        """What ``pipeline()`` loads from ``path`` to turn inputs into model inputs: the tokenizer (image
        tasks load their image processor or processor)."""
        from xf_tokenize import AutoTokenizer

        return AutoTokenizer.from_pretrained(
            path,
            revision=hub.revision,
            subfolder=hub.subfolder,
            cache_dir=hub.cache_dir,
            local_files_only=hub.local_files_only,
            token=hub.token,
        )

    def _sanitize_parameters(self, **kwargs: Any) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        raise NotImplementedError

    def preprocess(self, item: Any, **params: Any) -> dict[str, Any] | list[dict[str, Any]]:
        raise NotImplementedError

    def preprocess_batch(self, items: list[Any], **params: Any) -> list[Any]:
        """What :meth:`preprocess` gives for each of ``items``, in order. This default calls it per item;
        a task that tokenizes overrides it to tokenize all the items in one call."""
        return [self.preprocess(item, **params) for item in items]

    def _forward(self, batch: dict[str, Any], **params: Any) -> dict[str, Any]:
        raise NotImplementedError

    def postprocess(self, output: Any, **params: Any) -> Any:
        raise NotImplementedError

    def _is_single(self, inputs: Any) -> bool:
        """True when ``inputs`` is one input (not a list or stream of them)."""
        return isinstance(inputs, (str, dict))

    # -- machinery ---------------------------------------------------------------------------------
    @property
    def padding_side(self) -> str:
        return getattr(self.tokenizer, "padding_side", None) or "right"

    @property
    def pad_token_id(self) -> int:
        for name in ("pad_token_id", "eos_token_id"):
            value = getattr(self.tokenizer, name, None)
            if isinstance(value, int):
                return value
        return 0

    def _checked_batch_size(self, batch_size: Any) -> int:
        """``batch_size`` if it is an int >= 1, else a :class:`PipelineParameterError` naming it."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise PipelineParameterError(
                f"batch_size must be an int >= 1 (the number of inputs run through the model at once), got "
                f"{batch_size!r}; pass batch_size=1 or more.",
                task=self.task,
                parameter="batch_size",
            )
        return batch_size

    def _checked_sanitize(
        self, kwargs: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        accepted = inspect.signature(self._sanitize_parameters).parameters
        takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values())
        if not takes_any:
            for name in kwargs:
                if name not in accepted:
                    raise PipelineParameterError(
                        f"{self.task} does not take a parameter {name!r}; it takes: "
                        f"{', '.join(sorted(accepted)) or 'no parameters'} (and batch_size).",
                        task=self.task,
                        parameter=name,
                    )
        return self._sanitize_parameters(**kwargs)

    def __call__(self, inputs: Any, *, batch_size: int | None = None, **kwargs: Any) -> Any:
        """Run the pipeline; keyword arguments override the construction-time defaults for this call only
        (each call works on its own copies, so threads sharing a pipeline never see each other's settings).
        An empty list gives ``[]``, as transformers."""
        pre, fwd, post = ({**d} for d in self._defaults)
        if kwargs:
            call_pre, call_fwd, call_post = self._checked_sanitize(kwargs)
            pre.update(call_pre)
            fwd.update(call_fwd)
            post.update(call_post)
        size = self.batch_size if batch_size is None else self._checked_batch_size(batch_size)
        if self._is_single(inputs):
            return next(self._run(iter([inputs]), pre, fwd, post, 1))
        if isinstance(inputs, (list, tuple)):
            if size > 1 and not self.chunked:
                return self._run_by_length(inputs, pre, fwd, post, size)
            return list(self._run(iter(inputs), pre, fwd, post, size))
        if isinstance(inputs, Iterable):
            return self._run(iter(inputs), pre, fwd, post, size)
        return next(self._run(iter([inputs]), pre, fwd, post, 1))

    def _run(
        self,
        items: Iterator[Any],
        pre: dict[str, Any],
        fwd: dict[str, Any],
        post: dict[str, Any],
        batch_size: int,
    ) -> Iterator[Any]:
        # Each input gets a slot [chunks left to run, chunk outputs]; slots leave in input order.
        slots: deque[list[Any]] = deque()
        waiting: deque[tuple[list[Any], dict[str, Any]]] = deque()  # (slot, chunk) not yet run
        exhausted = False
        while True:
            if not exhausted and len(waiting) < batch_size:
                wanted = batch_size - len(waiting)
                pulled = list(islice(items, wanted))
                exhausted = len(pulled) < wanted
                for chunks in self.preprocess_batch(pulled, **pre) if pulled else []:
                    chunks = chunks if self.chunked else [chunks]
                    slot: list[Any] = [len(chunks), []]
                    slots.append(slot)
                    waiting.extend((slot, chunk) for chunk in chunks)
            if waiting:
                take = [waiting.popleft() for _ in range(min(batch_size, len(waiting)))]
                outputs = self._forward_batch([chunk for _, chunk in take], fwd)
                for (slot, _), out in zip(take, outputs):
                    slot[0] -= 1
                    slot[1].append(out)
            while slots and slots[0][0] == 0:
                done = slots.popleft()[1]
                yield self.postprocess(done if self.chunked else done[0], **post)
            if exhausted and not waiting and not slots:
                return

    def _run_by_length(
        self,
        items: list[Any] | tuple[Any, ...],
        pre: dict[str, Any],
        fwd: dict[str, Any],
        post: dict[str, Any],
        batch_size: int,
    ) -> list[Any]:
        """A whole list at once: tokenize it in one call, batch inputs of similar length together (less
        padding, faster), and return the results in input order. Outputs are trimmed per input, so this
        changes no result."""
        chunks = self.preprocess_batch(list(items), **pre) if items else []
        order = sorted(range(len(chunks)), key=lambda i: _length(chunks[i]))
        results: list[Any] = [None] * len(chunks)
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            for i, out in zip(rows, self._forward_batch([chunks[i] for i in rows], fwd)):
                results[i] = self.postprocess(out, **post)
        return results

    def _forward_batch(self, chunks: list[dict[str, Any]], fwd: dict[str, Any]) -> list[dict[str, Any]]:
        side = self.padding_side
        batch, lengths, padded = collate(chunks, pad_token_id=self.pad_token_id, padding_side=side)
        batch = {k: v.to(self.device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
        with torch.inference_mode():
            output = self._forward(batch, **fwd)
        return unbatch(output, lengths, per_token=padded | self.per_token_outputs, padding_side=side)

    def model_inputs(self, batch: dict[str, Any]) -> dict[str, Any]:
        """The tensors of ``batch`` the model's forward takes (drops metadata such as offsets)."""
        names = getattr(self.tokenizer, "model_input_names", None) or [
            "input_ids",
            "attention_mask",
            "token_type_ids",
        ]
        return {k: batch[k] for k in names if k in batch and isinstance(batch[k], torch.Tensor)}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(task={self.task!r}, model={type(self.model).__name__}, device={self.device})"
