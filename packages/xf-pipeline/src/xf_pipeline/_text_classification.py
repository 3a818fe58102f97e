"""``text-classification`` (alias ``sentiment-analysis``): labels and scores of a text or a text pair."""

from __future__ import annotations

from typing import Any

from xf_pipeline._common import check_choice, id2label, max_input_length, output_field, split_rows
from xf_pipeline._math import CLASSIFICATION_FUNCTIONS, apply_function
from xf_pipeline.base import Pipeline
from xf_pipeline.errors import PipelineInputError

__all__ = ["TextClassificationPipeline"]

_UNSET: Any = object()


class TextClassificationPipeline(Pipeline):
    """Classify a text, or a pair given as ``{"text": ..., "text_pair": ...}``.

    Without ``top_k`` a text gives ``[{"label", "score"}]`` for its best label (as transformers does);
    ``top_k=n`` gives the n best, ``top_k=None`` all labels, best first. ``function_to_apply`` is
    ``softmax``, ``sigmoid`` or ``none``; by default it follows the config (regression: none; one label or
    multi-label: sigmoid; else softmax)."""

    task = "text-classification"

    def _sanitize_parameters(
        self,
        top_k: int | None = _UNSET,
        function_to_apply: str | None = None,
        truncation: bool | None = None,
        max_length: int | None = None,
    ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        pre: dict[str, Any] = {}
        post: dict[str, Any] = {}
        if top_k is not _UNSET:
            post["top_k"] = top_k
            post["legacy"] = False
        if function_to_apply is not None:
            post["function_to_apply"] = check_choice(
                self.task, "function_to_apply", function_to_apply, CLASSIFICATION_FUNCTIONS
            )
        if truncation is not None:
            pre["truncation"] = bool(truncation)
        if max_length is not None:
            pre["max_length"] = int(max_length)
        return pre, {}, post

    def __call__(self, inputs: Any, **kwargs: Any) -> Any:
        result = super().__call__(inputs, **kwargs)
        legacy = "top_k" not in kwargs and self._defaults[2].get("legacy", True)
        return [result] if isinstance(inputs, str) and legacy else result

    def _text_and_pair(self, item: Any) -> tuple[str, str | None]:
        if isinstance(item, dict):
            if "text" not in item:
                raise PipelineInputError(
                    f"{self.task}: a text pair is {{'text': ..., 'text_pair': ...}}; got keys {sorted(item)}.",
                    task=self.task,
                )
            return item["text"], item.get("text_pair")
        if isinstance(item, str):
            return item, None
        raise PipelineInputError(
            f"{self.task} takes a string or {{'text': ..., 'text_pair': ...}}, got {type(item).__name__}.",
            task=self.task,
        )

    def preprocess(
        self, item: str | dict[str, str], truncation: bool = True, max_length: int | None = None
    ) -> dict[str, Any]:
        return self.preprocess_batch([item], truncation, max_length)[0]

    def preprocess_batch(
        self, items: list[Any], truncation: bool = True, max_length: int | None = None
    ) -> list[dict[str, Any]]:
        """Texts alone in one tokenizer call, text pairs in another."""
        texts = [self._text_and_pair(item) for item in items]
        if truncation and max_length is None:
            max_length = max_input_length(self.tokenizer, self.model.config)
        options = {"truncation": bool(truncation and max_length), "max_length": max_length}
        inputs: list[Any] = [None] * len(items)
        alone = [i for i, (_, pair) in enumerate(texts) if not pair]
        paired = [i for i, (_, pair) in enumerate(texts) if pair]
        for group, pairs in ((alone, None), (paired, [texts[i][1] for i in paired])):
            if group:
                encoded = self.tokenizer([texts[i][0] for i in group], text_pair=pairs, **options)
                for i, row in zip(group, split_rows(encoded, list(encoded))):
                    inputs[i] = row
        return inputs

    def _forward(self, batch: dict[str, Any]) -> dict[str, Any]:
        return {"logits": output_field(self.model(**self.model_inputs(batch)), "logits")}

    def _default_function(self) -> str:
        config = self.model.config
        problem = getattr(config, "problem_type", None)
        num_labels = len(getattr(config, "id2label", None) or {}) or getattr(config, "num_labels", 2)
        if problem == "regression":
            return "none"
        if problem == "multi_label_classification" or num_labels == 1:
            return "sigmoid"
        return "softmax"

    def postprocess(
        self,
        output: dict[str, Any],
        top_k: int | None = 1,
        function_to_apply: str | None = None,
        legacy: bool = True,
    ) -> Any:
        scores = apply_function(output["logits"][0], function_to_apply or self._default_function())
        if top_k == 1 and legacy:
            best = int(scores.argmax())
            return {"label": id2label(self.model.config, best), "score": float(scores[best])}
        ranked = [
            {"label": id2label(self.model.config, i), "score": s} for i, s in enumerate(scores.tolist())
        ]
        if legacy:
            return ranked
        ranked.sort(key=lambda r: r["score"], reverse=True)
        return ranked if top_k is None else ranked[:top_k]
