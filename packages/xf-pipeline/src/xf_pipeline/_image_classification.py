"""``image-classification``: the best labels of an image, as transformers' pipeline gives them."""

from __future__ import annotations

from typing import Any

from xf_pipeline._common import check_choice, id2label, output_field
from xf_pipeline._image_common import ImagePipeline
from xf_pipeline._math import CLASSIFICATION_FUNCTIONS, apply_function
from xf_pipeline.errors import PipelineParameterError

__all__ = ["ImageClassificationPipeline"]


class ImageClassificationPipeline(ImagePipeline):
    """Classify an image (a path, PIL image, array or tensor): ``[{"label", "score"}, ...]``, the ``top_k``
    (default 5, at most the number of labels) best first. ``function_to_apply`` is ``softmax``, ``sigmoid``
    or ``none``; by default it follows the config (regression: none; one label or multi-label: sigmoid; else
    softmax). A list of images gives a list of such lists."""

    task = "image-classification"

    def _sanitize_parameters(
        self, top_k: int | None = None, function_to_apply: str | None = None
    ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        post: dict[str, Any] = {}
        if top_k is not None:
            if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
                raise PipelineParameterError(
                    f"{self.task}: top_k must be an int >= 1, got {top_k!r}.",
                    task=self.task,
                    parameter="top_k",
                )
            post["top_k"] = top_k
        if function_to_apply is not None:
            post["function_to_apply"] = check_choice(
                self.task, "function_to_apply", function_to_apply, CLASSIFICATION_FUNCTIONS
            )
        return {}, {}, post

    def _forward(self, batch: dict[str, Any]) -> dict[str, Any]:
        pixels = batch["pixel_values"].to(self.model_dtype())
        return {"logits": output_field(self.model(pixel_values=pixels), "logits")}

    def _default_function(self) -> str:
        config = self.model.config
        problem = getattr(config, "problem_type", None)
        if problem == "regression":
            return "none"
        if problem == "multi_label_classification" or config.num_labels == 1:
            return "sigmoid"
        return "softmax"

    def postprocess(
        self, output: dict[str, Any], top_k: int = 5, function_to_apply: str | None = None
    ) -> list[dict[str, Any]]:
        scores = apply_function(output["logits"][0], function_to_apply or self._default_function())
        ranked = [
            {"label": id2label(self.model.config, i), "score": s} for i, s in enumerate(scores.tolist())
        ]
        ranked.sort(key=lambda r: r["score"], reverse=True)
        return ranked[:top_k]
