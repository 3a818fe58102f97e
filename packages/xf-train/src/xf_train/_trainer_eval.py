"""The Trainer's evaluation and prediction: the eval DataLoader, the evaluation loop (mean loss weighted by
batch size, logits and labels gathered on the host every ``eval_accumulation_steps`` batches and padded across
batches with -100), ``compute_metrics`` and the best-metric bookkeeping."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

import torch
from torch import nn

from xf_train._data import ColumnCollate, EpochBatchSampler, Stream, is_map_style, make_loader
from xf_train.errors import TrainingArgumentsError

if TYPE_CHECKING:
    import contextlib

    from xf_train._callbacks import CallbackHandler, TrainerControl, TrainerState
    from xf_train._training_args import TrainingArguments

__all__ = ["EvalPrediction", "PredictionOutput"]


class EvalPrediction(NamedTuple):
    """What ``compute_metrics`` receives: all eval logits and labels, padded across batches with -100."""

    predictions: torch.Tensor
    label_ids: torch.Tensor | None


class PredictionOutput(NamedTuple):
    """What :meth:`Trainer.predict` returns (transformers' names)."""

    predictions: torch.Tensor | None
    label_ids: torch.Tensor | None
    metrics: dict[str, float]


class TrainerEvalMixin:
    """``evaluate``, ``predict`` and the eval DataLoader of :class:`~xf_train.Trainer`."""

    args: TrainingArguments
    model: nn.Module
    state: TrainerState
    control: TrainerControl
    callback_handler: CallbackHandler
    eval_dataset: Any
    data_collator: Callable[[list[dict[str, Any]]], dict[str, torch.Tensor]]
    compute_metrics: Callable[[EvalPrediction], dict[str, float]] | None
    preprocess_logits_for_metrics: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor] | None

    if TYPE_CHECKING:  # provided by Trainer

        def _keep_columns(self) -> frozenset[str] | None: ...

        def _to_device(self, batch: dict[str, Any]) -> dict[str, Any]: ...

        def _autocast(self) -> contextlib.AbstractContextManager[Any]: ...

        def _call(self, event: str, **kwargs: Any) -> None: ...

        def log(self, logs: dict[str, float]) -> None: ...

    def get_eval_dataloader(self, dataset: Any) -> torch.utils.data.DataLoader[Any]:
        a = self.args
        sampler = None
        if is_map_style(dataset):
            sampler = EpochBatchSampler(
                len(dataset), a.per_device_eval_batch_size, drop_last=False, shuffle=False, seed=a.seed
            )
        elif not isinstance(dataset, torch.utils.data.IterableDataset):
            dataset = Stream(dataset)
        collate = ColumnCollate(self.data_collator, self._keep_columns())
        return make_loader(
            dataset, batch_size=a.per_device_eval_batch_size, collate=collate, args=a, batch_sampler=sampler
        )

    def evaluate(self, eval_dataset: Any = None, metric_key_prefix: str = "eval") -> dict[str, float]:
        """Mean loss over the eval set (each batch weighted by its size) as ``eval_loss``, plus
        ``compute_metrics`` (prefixed ``eval_``); logged and passed to ``on_evaluate``."""
        dataset = eval_dataset if eval_dataset is not None else self.eval_dataset
        if dataset is None:
            raise TrainingArgumentsError("Trainer.evaluate() needs an eval_dataset.", key="eval_dataset")
        output = self._evaluation_loop(dataset, metric_key_prefix, what="evaluate")
        self.log(output.metrics)
        self._call("on_evaluate", metrics=output.metrics)
        self.control.should_evaluate = False
        return output.metrics

    def predict(self, test_dataset: Any, metric_key_prefix: str = "test") -> PredictionOutput:
        """Predictions (logits, or what ``preprocess_logits_for_metrics`` makes of them) and labels of every
        row, padded across batches with -100, and the metrics (``test_loss``, ``compute_metrics``)."""
        output = self._evaluation_loop(test_dataset, metric_key_prefix, what="predict")
        self._call("on_predict", metrics=output.metrics)
        return output

    @torch.no_grad()
    def _evaluation_loop(self, dataset: Any, prefix: str, *, what: str) -> PredictionOutput:
        a = self.args
        if is_map_style(dataset) and len(dataset) == 0:
            raise TrainingArgumentsError(
                f"Trainer.{what}() got an empty eval_dataset (0 rows); pass at least one example.",
                key="eval_dataset",
            )
        loader = self.get_eval_dataloader(dataset)
        self.callback_handler.references["eval_dataloader"] = loader
        self.model.eval()
        keep_outputs = not a.prediction_loss_only and (what == "predict" or self.compute_metrics is not None)
        losses: list[torch.Tensor] = []
        host_logits: list[torch.Tensor] = []
        host_labels: list[torch.Tensor] = []
        logits, labels = [], []  # on the device until eval_accumulation_steps batches have gathered
        for index, batch in enumerate(loader):
            batch = self._to_device(batch)
            with self._autocast():
                outputs = self.model(**batch)
            n = next(iter(v for v in batch.values() if isinstance(v, torch.Tensor))).shape[0]
            loss = _field(outputs, "loss")
            if loss is not None:
                losses.append(loss.detach().float().repeat(n).cpu())
            if keep_outputs:
                label = batch.get("labels")
                out = _field(outputs, "logits").detach()
                preprocess = self.preprocess_logits_for_metrics
                if preprocess is not None:
                    out = preprocess(out, label)
                logits.append(out.float() if out.is_floating_point() else out)
                if label is not None:
                    labels.append(label)
            self._call("on_prediction_step")
            if a.eval_accumulation_steps is not None and (index + 1) % a.eval_accumulation_steps == 0:
                host_logits += [t.cpu() for t in logits]
                host_labels += [t.cpu() for t in labels]
                logits, labels = [], []
        host_logits += [t.cpu() for t in logits]
        host_labels += [t.cpu() for t in labels]
        predictions = _concat(host_logits) if host_logits else None
        label_ids = _concat(host_labels) if host_labels else None
        metrics: dict[str, float] = {}
        if losses:
            metrics[f"{prefix}_loss"] = torch.cat(losses).mean().item()
        if self.compute_metrics is not None and predictions is not None:
            computed = self.compute_metrics(EvalPrediction(predictions, label_ids))
            metrics.update(
                {k if k.startswith(f"{prefix}_") else f"{prefix}_{k}": v for k, v in computed.items()}
            )
        return PredictionOutput(predictions, label_ids, metrics)

    def _determine_best_metric(self, metrics: dict[str, float]) -> bool:
        name = self.args.metric_for_best_model
        if name is None:
            return False
        key = name if name.startswith("eval_") else f"eval_{name}"
        if key not in metrics:
            raise TrainingArgumentsError(
                f"TrainingArguments.metric_for_best_model={name!r}: the evaluation gave no {key!r} (it gave "
                f"{sorted(metrics)}); pick one of those or return it from compute_metrics.",
                key="metric_for_best_model",
            )
        value, best = metrics[key], self.state.best_metric
        if best is None or (value > best if self.args.greater_is_better else value < best):
            self.state.best_metric, self.state.best_global_step = value, self.state.global_step
            return True
        return False


def _field(outputs: Any, name: str) -> Any:
    """``outputs.name`` of a model output (dataclass or dict); None when absent."""
    return outputs.get(name) if isinstance(outputs, dict) else getattr(outputs, name, None)


def _concat(parts: list[torch.Tensor]) -> torch.Tensor:
    """Concatenate along the batch; rows of other lengths are padded with -100 on the right."""
    if parts[0].dim() < 2:
        return torch.cat(parts)
    width = max(p.shape[1] for p in parts)
    padded = [
        torch.nn.functional.pad(p, (0, 0) * (p.dim() - 2) + (0, width - p.shape[1]), value=-100)
        for p in parts
    ]
    return torch.cat(padded)
