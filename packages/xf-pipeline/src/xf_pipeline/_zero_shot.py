"""``zero-shot-classification``: score any labels by asking an NLI model whether the text entails
"This example is {label}."."""

from __future__ import annotations

import inspect
from typing import Any

import torch

from xf_core.logging import get_logger
from xf_pipeline._common import max_input_length, output_field, split_rows
from xf_pipeline._math import zero_shot_scores
from xf_pipeline.base import Pipeline
from xf_pipeline.errors import PipelineInputError, PipelineParameterError

__all__ = ["ZeroShotClassificationPipeline"]

logger = get_logger(__name__)


def _parse_labels(labels: str | list[str]) -> list[str]:
    if isinstance(labels, str):
        return [label.strip() for label in labels.split(",") if label.strip()]
    return list(labels)


class ZeroShotClassificationPipeline(Pipeline):
    """Classify a text into ``candidate_labels`` (a list, or one comma-separated string) that the model
    never saw. Each (text, ``hypothesis_template.format(label)``) pair goes through the NLI model; the
    result is ``{"sequence", "labels", "scores"}`` with labels best first. Scores sum to 1 unless
    ``multi_label=True``, where each label is judged on its own (entailment vs contradiction)."""

    task = "zero-shot-classification"
    chunked = True

    def __init__(self, model: Any, tokenizer: Any = None, **kwargs: Any) -> None:
        super().__init__(model, tokenizer, **kwargs)
        if self.entailment_id == -1:
            logger.warning(
                "the config's label2id has no label starting with 'entail'; using the last label as "
                "entailment. Use an NLI model, or set label2id in its config.json."
            )

    @property
    def entailment_id(self) -> int:
        for label, index in (getattr(self.model.config, "label2id", None) or {}).items():
            if label.lower().startswith("entail"):
                return int(index)
        return -1

    def _sanitize_parameters(
        self,
        candidate_labels: str | list[str] | None = None,
        hypothesis_template: str | None = None,
        multi_label: bool | None = None,
    ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        pre: dict[str, Any] = {}
        post: dict[str, Any] = {}
        if candidate_labels is not None:
            pre["candidate_labels"] = _parse_labels(candidate_labels)
        if hypothesis_template is not None:
            if hypothesis_template.format("x") == hypothesis_template:
                raise PipelineParameterError(
                    f"{self.task}: hypothesis_template {hypothesis_template!r} has no '{{}}' for the label; "
                    "write it like 'This example is {}.'.",
                    task=self.task,
                    parameter="hypothesis_template",
                )
            pre["hypothesis_template"] = hypothesis_template
        if multi_label is not None:
            post["multi_label"] = bool(multi_label)
        return pre, {}, post

    def __call__(self, inputs: Any, candidate_labels: Any = None, **kwargs: Any) -> Any:
        if candidate_labels is not None:
            kwargs["candidate_labels"] = candidate_labels
        return super().__call__(inputs, **kwargs)

    def preprocess(
        self,
        text: str,
        candidate_labels: list[str] | None = None,
        hypothesis_template: str = "This example is {}.",
    ) -> list[dict[str, Any]]:
        return self.preprocess_batch([text], candidate_labels, hypothesis_template)[0]

    def preprocess_batch(
        self,
        texts: list[Any],
        candidate_labels: list[str] | None = None,
        hypothesis_template: str = "This example is {}.",
    ) -> list[list[dict[str, Any]]]:
        """Every (text, hypothesis) pair of every text in one tokenizer call; one chunk per pair."""
        for text in texts:
            if not isinstance(text, str):
                raise PipelineInputError(
                    f"{self.task} takes text, got {type(text).__name__}.", task=self.task
                )
        if not candidate_labels:
            raise PipelineInputError(
                f"{self.task} needs candidate_labels, e.g. candidate_labels=['sports', 'politics'].",
                task=self.task,
            )
        max_length = max_input_length(self.tokenizer, self.model.config)
        hypotheses = [hypothesis_template.format(label) for label in candidate_labels]
        encoded = self.tokenizer(
            [text for text in texts for _ in candidate_labels],
            text_pair=hypotheses * len(texts),
            truncation="only_first" if max_length else False,
            max_length=max_length,
        )
        rows = iter(split_rows(encoded, list(encoded)))
        return [
            [{**next(rows), "candidate_label": label, "sequence": text} for label in candidate_labels]
            for text in texts
        ]

    def _forward(self, batch: dict[str, Any]) -> dict[str, Any]:
        inputs = self.model_inputs(batch)
        if "use_cache" in inspect.signature(self.model.forward).parameters:
            inputs["use_cache"] = False  # a classifier gains nothing from a KV cache
        logits = output_field(self.model(**inputs), "logits")
        return {"logits": logits, "candidate_label": batch["candidate_label"], "sequence": batch["sequence"]}

    def postprocess(self, outputs: list[dict[str, Any]], multi_label: bool = False) -> dict[str, Any]:
        labels = [out["candidate_label"] for out in outputs]
        logits = torch.cat([out["logits"] for out in outputs])
        scores = zero_shot_scores(logits, entailment_id=self.entailment_id, multi_label=multi_label)
        order = sorted(range(len(labels)), key=lambda i: scores[i], reverse=True)
        return {
            "sequence": outputs[0]["sequence"],
            "labels": [labels[i] for i in order],
            "scores": [scores[i] for i in order],
        }
