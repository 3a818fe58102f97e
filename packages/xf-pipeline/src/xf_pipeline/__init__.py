"""The `pipeline()` factory, its tasks, and the `xf pipeline` command.

``import xf_pipeline`` is cheap: torch, the tokenizer and the model code load when first used.
"""

from collections.abc import Callable
from typing import Any

from xf_core.lazy import lazy_exports
from xf_pipeline._registry import ALIASES, TASKS
from xf_pipeline.errors import (
    NoDefaultModelError,
    PipelineInputError,
    PipelineParameterError,
    UnknownTaskError,
)

__version__ = "0.2.0"

__all__ = [
    "ALIASES",
    "TASKS",
    "FeatureExtractionPipeline",
    "FillMaskPipeline",
    "ImageClassificationPipeline",
    "ImageFeatureExtractionPipeline",
    "NoDefaultModelError",
    "Pipeline",
    "PipelineInputError",
    "PipelineParameterError",
    "QuestionAnsweringPipeline",
    "SentenceSimilarityPipeline",
    "TextClassificationPipeline",
    "TextGenerationPipeline",
    "TokenClassificationPipeline",
    "UnknownTaskError",
    "ZeroShotClassificationPipeline",
    "ZeroShotImageClassificationPipeline",
    "__version__",
    "pipeline",
]

__getattr__: Callable[[str], Any]
__dir__: Callable[[], list[str]]
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "pipeline": "xf_pipeline._factory",
        "Pipeline": "xf_pipeline.base",
        "FeatureExtractionPipeline": "xf_pipeline._feature_extraction",
        "SentenceSimilarityPipeline": "xf_pipeline._feature_extraction",
        "TextClassificationPipeline": "xf_pipeline._text_classification",
        "TokenClassificationPipeline": "xf_pipeline._token_classification",
        "FillMaskPipeline": "xf_pipeline._fill_mask",
        "QuestionAnsweringPipeline": "xf_pipeline._question_answering",
        "ZeroShotClassificationPipeline": "xf_pipeline._zero_shot",
        "TextGenerationPipeline": "xf_pipeline._text_generation",
        "ImageClassificationPipeline": "xf_pipeline._image_classification",
        "ImageFeatureExtractionPipeline": "xf_pipeline._image_feature_extraction",
        "ZeroShotImageClassificationPipeline": "xf_pipeline._zero_shot_image",
    },
)
