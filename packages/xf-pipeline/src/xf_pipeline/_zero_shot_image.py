"""``zero-shot-image-classification``: score an image against labels given at call time (CLIP)."""

from __future__ import annotations

from typing import Any

import torch

from xf_pipeline._image_common import ImagePipeline
from xf_pipeline.errors import PipelineInputError, PipelineParameterError

__all__ = ["ZeroShotImageClassificationPipeline"]

_TEMPLATE = "This is a photo of {}."


class ZeroShotImageClassificationPipeline(ImagePipeline):
    """``pipe(image, candidate_labels=["cat", "dog"])`` -> ``[{"score", "label"}, ...]``, best first; the
    scores are a softmax over the labels of CLIP's image-text logits, each label put into
    ``hypothesis_template`` (default ``"This is a photo of {}."``). An input may also be
    ``{"image": ..., "candidate_labels": [...]}``. The images of a batch go through the vision tower
    together; the texts of each set of labels through the text tower once per batch."""

    task = "zero-shot-image-classification"

    def _sanitize_parameters(
        self, candidate_labels: list[str] | str | None = None, hypothesis_template: str | None = None
    ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        pre: dict[str, Any] = {}
        if candidate_labels is not None:
            pre["candidate_labels"] = self._labels(candidate_labels)
        if hypothesis_template is not None:
            if not isinstance(hypothesis_template, str) or "{}" not in hypothesis_template:
                raise PipelineParameterError(
                    f"{self.task}: hypothesis_template must be a string with a {{}} for the label, got "
                    f"{hypothesis_template!r}.",
                    task=self.task,
                    parameter="hypothesis_template",
                )
            pre["hypothesis_template"] = hypothesis_template
        return pre, {}, {}

    def _labels(self, labels: Any) -> list[str]:
        if isinstance(labels, str):
            labels = [label.strip() for label in labels.split(",") if label.strip()]
        if not isinstance(labels, (list, tuple)) or not labels or not all(isinstance(x, str) for x in labels):
            raise PipelineParameterError(
                f"{self.task}: candidate_labels must be a non-empty list of strings (or one comma-separated "
                f"string), got {labels!r}.",
                task=self.task,
                parameter="candidate_labels",
            )
        return list(labels)

    def preprocess(self, item: Any, **params: Any) -> dict[str, Any]:
        return self.preprocess_batch([item], **params)[0]

    def preprocess_batch(
        self,
        items: list[Any],
        candidate_labels: list[str] | None = None,
        hypothesis_template: str = _TEMPLATE,
    ) -> list[dict[str, Any]]:
        if self.tokenizer is None:
            raise PipelineParameterError(
                f"{self.task} needs a tokenizer for the labels: load a processor (AutoProcessor) from a "
                "directory with tokenizer files, or pass one.",
                task=self.task,
                parameter="tokenizer",
            )
        images, label_sets = [], []
        for i, item in enumerate(items):
            labels = candidate_labels
            if isinstance(item, dict):
                if "image" not in item:
                    raise PipelineInputError(
                        f"{self.task}: a dict input is {{'image': ..., 'candidate_labels': [...]}}; input {i} "
                        f"has keys {sorted(item)}.",
                        task=self.task,
                    )
                labels = self._labels(item["candidate_labels"]) if "candidate_labels" in item else labels
                item = item["image"]
            if labels is None:
                raise PipelineParameterError(
                    f"{self.task} needs candidate_labels (e.g. candidate_labels=['cat', 'dog']; on the command "
                    'line --param candidate_labels=\'["cat", "dog"]\').',
                    task=self.task,
                    parameter="candidate_labels",
                )
            images.append(item)
            label_sets.append(tuple(labels))
        texts = {labels: [hypothesis_template.format(x) for x in labels] for labels in label_sets}
        return [
            {"pixel_values": pixels, "labels": labels, "texts": texts[labels]}
            for pixels, labels in zip(self.pixel_values(images), label_sets, strict=True)
        ]

    def _forward(self, batch: dict[str, Any]) -> dict[str, Any]:
        pixels = batch["pixel_values"].to(self.model_dtype())
        image = self.model.get_image_features(pixel_values=pixels).pooler_output
        image = image / image.norm(p=2, dim=-1, keepdim=True)
        scale = self.model.logit_scale.exp()
        tokenizer = self.tokenizer
        assert tokenizer is not None  # preprocess_batch refused to run without one
        text_of: dict[tuple[str, ...], torch.Tensor] = {}
        logits = []
        for row, (labels, texts) in enumerate(zip(batch["labels"], batch["texts"], strict=True)):
            if labels not in text_of:
                encoded = tokenizer(texts, padding=True, return_tensors="pt")
                inputs = {
                    k: encoded[k].to(self.device) for k in ("input_ids", "attention_mask") if k in encoded
                }
                text = self.model.get_text_features(**inputs).pooler_output
                text_of[labels] = text / text.norm(p=2, dim=-1, keepdim=True)
            logits.append((text_of[labels] @ image[row : row + 1].t() * scale).t()[0])  # (labels,)
        return {"logits": logits, "labels": batch["labels"]}

    def postprocess(self, output: dict[str, Any]) -> list[dict[str, Any]]:
        scores = output["logits"].float().softmax(dim=-1).tolist()
        pairs = sorted(zip(scores, output["labels"], strict=True), key=lambda pair: -pair[0])
        return [{"score": score, "label": label} for score, label in pairs]
