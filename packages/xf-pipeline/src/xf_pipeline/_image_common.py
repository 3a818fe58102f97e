"""What the image tasks share: their inputs (paths, PIL images, arrays, tensors), their processor, and a
preprocessing step that decodes and resizes the images of a batch in parallel threads (Pillow and numpy
release the GIL for the heavy parts), where transformers preprocesses one image at a time.

Pillow is imported by xf-tokenize's image processing when an image is first read, never by
``import xf_pipeline``.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import torch

from xf_core import HubOptions
from xf_pipeline.base import Pipeline
from xf_pipeline.errors import PipelineInputError, PipelineParameterError

__all__ = ["ImagePipeline", "is_image"]

_URL_PREFIXES = ("http://", "https://")


def is_image(value: Any) -> bool:
    """One image: a path, a PIL image, or an array/tensor (HWC or CHW); a list of them is a batch."""
    if isinstance(value, (str, os.PathLike, torch.Tensor)):
        return True
    kind = type(value)
    return kind.__module__.startswith("PIL.") or (kind.__module__ == "numpy" and kind.__name__ == "ndarray")


def _offline() -> bool:
    from xf_core.constants import hf_hub_offline

    return hf_hub_offline()


class ImagePipeline(Pipeline):
    """Base of the image tasks: ``processor`` (the second argument, where text tasks take the tokenizer) is an
    image processor or a processor holding one (``processor.image_processor``) and a tokenizer."""

    def __init__(
        self,
        model: Any,
        processor: Any = None,
        *,
        device: int | str | torch.device | None = None,
        batch_size: int = 1,
        **kwargs: Any,
    ) -> None:
        self.image_processor: Any = getattr(processor, "image_processor", processor)
        if self.image_processor is None or not callable(
            getattr(self.image_processor, "preprocess_one", None)
        ):
            raise PipelineParameterError(
                f"{self.task} needs an image processor (AutoImageProcessor.from_pretrained(path)) or a processor "
                f"holding one; got {type(processor).__name__}.",
                task=self.task,
                parameter="image_processor",
            )
        super().__init__(model, processor, device=device, batch_size=batch_size, **kwargs)
        self.tokenizer: Any = getattr(processor, "tokenizer", None)

    @classmethod
    def load_preprocessor(cls, path: str, *, hub: HubOptions) -> Any:
        """The processor in ``path``: ``processor_config.json``, or ``preprocessor_config.json`` (and the
        tokenizer files where the task needs text)."""
        from xf_tokenize import AutoProcessor

        return AutoProcessor.from_pretrained(path, hub=hub)

    def _is_single(self, inputs: Any) -> bool:
        return is_image(inputs) or isinstance(inputs, dict)

    def _check_image(self, image: Any, index: int) -> Any:
        if isinstance(image, (str, os.PathLike)) and str(image).startswith(_URL_PREFIXES):
            why = "xf is offline (HF_HUB_OFFLINE=1)" if _offline() else "xf does not download images"
            raise PipelineInputError(
                f"{self.task}: input {index} is a URL ({image}) and {why}; download the image and pass the path "
                "of the file.",
                task=self.task,
            )
        if not is_image(image):
            raise PipelineInputError(
                f"{self.task} takes an image (a file path, a PIL image, an array or a tensor), got "
                f"{type(image).__name__} for input {index}.",
                task=self.task,
            )
        return image

    def pixel_values(self, images: list[Any]) -> list[torch.Tensor]:
        """One ``(1, C, H, W)`` float tensor per image; several images are read and processed in threads."""
        from xf_tokenize.image_processing import load_rgb_image

        images = [self._check_image(image, i) for i, image in enumerate(images)]

        def process(image: Any, index: int) -> Any:  # paths and PIL images become RGB as in transformers
            return self.image_processor.preprocess_one(load_rgb_image(image, index), index)

        if len(images) < 2:
            arrays = [process(image, i) for i, image in enumerate(images)]
        else:
            workers = min(len(images), os.cpu_count() or 1)
            with ThreadPoolExecutor(workers, thread_name_prefix="xf-images") as pool:
                arrays = list(pool.map(process, images, range(len(images))))
        return [torch.from_numpy(array)[None] for array in arrays]

    def preprocess(self, item: Any) -> dict[str, Any]:
        return self.preprocess_batch([item])[0]

    def preprocess_batch(self, items: list[Any]) -> list[dict[str, Any]]:
        """``{"pixel_values": (1, C, H, W)}`` per image (a task taking more than images overrides this)."""
        for i, item in enumerate(items):
            if isinstance(item, dict):
                raise PipelineInputError(
                    f"{self.task} takes images, not a dict (input {i}); pass the path or the image itself.",
                    task=self.task,
                )
        return [{"pixel_values": pixels} for pixels in self.pixel_values(items)]

    def model_dtype(self) -> torch.dtype:
        return getattr(self.model, "dtype", torch.float32)
