"""The Trainer's ``torch.utils.data.DataLoader``s: map-style datasets (a list of dicts, a ``datasets.Dataset``,
any ``__getitem__``/``__len__``) and iterable ones (a ``torch.utils.data.IterableDataset``, a generator-backed
``datasets.IterableDataset``, anything iterable without ``__len__``).

For map-style data the order of epoch ``e`` is a permutation drawn from ``data_seed + e`` (or sequential), and
:class:`EpochBatchSampler` can start an epoch after its first ``k`` batches, so a resumed run reads exactly
the batches an uninterrupted one would, without collating the skipped ones. Under data parallelism
(``world_size > 1``) each process takes every ``world_size``-th example of that order, the order padded
by repetition to a multiple of ``world_size`` (as ``DistributedSampler``). The loader's own generator is
reseeded per epoch, so creating an iterator never draws from the global torch RNG (a resumed run's dropout
and masking stay those of the uninterrupted run).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, IterableDataset, Sampler

__all__ = ["ColumnCollate", "EpochBatchSampler", "Stream", "is_map_style", "make_loader"]


def is_map_style(dataset: Any) -> bool:
    """Whether ``dataset`` can be indexed and has a length (else it is read as a stream)."""
    if isinstance(dataset, IterableDataset):
        return False
    return hasattr(dataset, "__getitem__") and hasattr(dataset, "__len__")


class Stream(IterableDataset):
    """Any iterable (a generator, a ``datasets.IterableDataset``) as a torch ``IterableDataset``; each epoch
    iterates it again."""

    def __init__(self, source: Any) -> None:
        self.source = source

    def __iter__(self) -> Iterator[Any]:
        return iter(self.source)


class ColumnCollate:
    """Keep only ``keep`` (when given) of each row, then collate; picklable, so workers can run it."""

    def __init__(self, collator: Callable[[list[dict[str, Any]]], Any], keep: frozenset[str] | None) -> None:
        self.collator, self.keep = collator, keep

    def __call__(self, rows: list[dict[str, Any]]) -> Any:
        if self.keep is not None:
            rows = [{k: v for k, v in row.items() if k in self.keep} for row in rows]
        return self.collator(rows)


class EpochBatchSampler(Sampler[list[int]]):
    """Index batches of one epoch; :meth:`set_epoch` picks the epoch and how many leading batches to skip."""

    def __init__(
        self,
        num_rows: int,
        batch_size: int,
        *,
        drop_last: bool,
        shuffle: bool,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.num_rows, self.batch_size, self.drop_last = num_rows, batch_size, drop_last
        self.shuffle, self.seed, self.rank, self.world_size = shuffle, seed, rank, world_size
        self.epoch, self.skip = 0, 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.epoch, self.skip = epoch, skip

    def _rows(self) -> list[int]:
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.num_rows, generator=generator).tolist()
        else:
            order = list(range(self.num_rows))
        if self.world_size > 1:
            total = math.ceil(self.num_rows / self.world_size) * self.world_size
            order = (order * math.ceil(total / max(1, len(order))))[:total]
            order = order[self.rank :: self.world_size]
        return order

    def __len__(self) -> int:
        rows = math.ceil(self.num_rows / self.world_size)
        return rows // self.batch_size if self.drop_last else math.ceil(rows / self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        rows = self._rows()
        for index in range(self.skip, len(self)):
            yield rows[index * self.batch_size : (index + 1) * self.batch_size]


def make_loader(
    dataset: Any,
    *,
    batch_size: int,
    collate: ColumnCollate,
    args: Any,
    batch_sampler: EpochBatchSampler | None,
) -> DataLoader:
    """A DataLoader with the TrainingArguments' workers, pinning (only where there is a GPU) and prefetch."""
    workers = args.dataloader_num_workers
    kwargs: dict[str, Any] = {
        "collate_fn": collate,
        "num_workers": workers,
        "pin_memory": args.dataloader_pin_memory and torch.cuda.is_available() and not args.use_cpu,
        "generator": torch.Generator().manual_seed(args.seed),
    }
    if workers > 0:
        kwargs["persistent_workers"] = args.dataloader_persistent_workers
        if args.dataloader_prefetch_factor is not None:
            kwargs["prefetch_factor"] = args.dataloader_prefetch_factor
    if batch_sampler is not None:
        return DataLoader(dataset, batch_sampler=batch_sampler, **kwargs)
    return DataLoader(dataset, batch_size=batch_size, drop_last=args.dataloader_drop_last, **kwargs)
