"""The `pipeline()` factory, its tasks, and the `xf pipeline` command.

``import xf_pipeline`` is cheap: torch, the tokenizer and the model code load when first used.
"""

from collections.abc import Callable
from importlib import metadata as _metadata
from typing import TYPE_CHECKING, Any

from xf_core.lazy import lazy_exports
from xf_pipeline._registry import ALIASES, TASKS
from xf_pipeline.errors import (
    NoDefaultModelError,
    PipelineInputError,
    PipelineParameterError,
    UnknownTaskError,
    UnsupportedSentenceModuleError,
)

__version__ = _metadata.version("xf-pipeline")

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
    "SentenceConfig",
    "SentenceSimilarityPipeline",
    "SentenceTransformer",
    "SummarizationPipeline",
    "Text2TextGenerationPipeline",
    "TextClassificationPipeline",
    "TextGenerationPipeline",
    "TokenClassificationPipeline",
    "TranslationPipeline",
    "UnknownTaskError",
    "UnsupportedSentenceModuleError",
    "ZeroShotClassificationPipeline",
    "ZeroShotImageClassificationPipeline",
    "__version__",
    "pipeline",
    "read_sentence_config",
    "semantic_search",
]

if TYPE_CHECKING:  # the lazily exported names, as type checkers and IDEs should see them
    from xf_pipeline._factory import pipeline
    from xf_pipeline._feature_extraction import FeatureExtractionPipeline, SentenceSimilarityPipeline
    from xf_pipeline._fill_mask import FillMaskPipeline
    from xf_pipeline._image_classification import ImageClassificationPipeline
    from xf_pipeline._image_feature_extraction import ImageFeatureExtractionPipeline
    from xf_pipeline._question_answering import QuestionAnsweringPipeline
    from xf_pipeline._sentence_config import SentenceConfig, read_sentence_config
    from xf_pipeline._sentence_transformer import SentenceTransformer, semantic_search
    from xf_pipeline._text2text import SummarizationPipeline, Text2TextGenerationPipeline, TranslationPipeline
    from xf_pipeline._text_classification import TextClassificationPipeline
    from xf_pipeline._text_generation import TextGenerationPipeline
    from xf_pipeline._token_classification import TokenClassificationPipeline
    from xf_pipeline._zero_shot import ZeroShotClassificationPipeline
    from xf_pipeline._zero_shot_image import ZeroShotImageClassificationPipeline
    from xf_pipeline.base import Pipeline

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
        "SentenceTransformer": "xf_pipeline._sentence_transformer",
        "semantic_search": "xf_pipeline._sentence_transformer",
        "SentenceConfig": "xf_pipeline._sentence_config",
        "read_sentence_config": "xf_pipeline._sentence_config",
        "SummarizationPipeline": "xf_pipeline._text2text",
        "Text2TextGenerationPipeline": "xf_pipeline._text2text",
        "TranslationPipeline": "xf_pipeline._text2text",
        "ImageClassificationPipeline": "xf_pipeline._image_classification",
        "ImageFeatureExtractionPipeline": "xf_pipeline._image_feature_extraction",
        "ZeroShotImageClassificationPipeline": "xf_pipeline._zero_shot_image",
    },
)
