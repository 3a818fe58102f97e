"""``image-feature-extraction``: the last hidden states of a vision model (or its pooled output)."""

from __future__ import annotations

from typing import Any

from xf_pipeline._image_common import ImagePipeline
from xf_pipeline.errors import PipelineParameterError

__all__ = ["ImageFeatureExtractionPipeline"]


class ImageFeatureExtractionPipeline(ImagePipeline):
    """Features of an image: the last hidden states nested as transformers gives them (``[[[...], ...]]``,
    one vector per patch plus the class token); ``pool=True`` gives the pooled output (``[[...]]``);
    ``return_tensors=True`` gives tensors instead of lists. A CLIP model gives its vision tower's features."""

    task = "image-feature-extraction"

    def _sanitize_parameters(
        self, pool: bool | None = None, return_tensors: bool | None = None
    ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        post: dict[str, Any] = {}
        if pool is not None:
            post["pool"] = bool(pool)
        if return_tensors is not None:
            post["return_tensors"] = bool(return_tensors)
        return {}, {}, post

    def _forward(self, batch: dict[str, Any]) -> dict[str, Any]:
        vision = getattr(self.model, "vision_model", self.model)  # CLIP: the vision tower
        out = vision(pixel_values=batch["pixel_values"].to(self.model_dtype()))
        result = {"features": out.last_hidden_state}
        if out.pooler_output is not None:
            result["pooled"] = out.pooler_output
        return result

    def postprocess(self, output: dict[str, Any], pool: bool = False, return_tensors: bool = False) -> Any:
        if pool and "pooled" not in output:
            raise PipelineParameterError(
                f"{self.task}: pool=True but {type(self.model).__name__} has no pooled output (no pooler layer); "
                "leave pool unset for the hidden states.",
                task=self.task,
                parameter="pool",
            )
        features = output["pooled" if pool else "features"]
        return features if return_tensors else features.tolist()
