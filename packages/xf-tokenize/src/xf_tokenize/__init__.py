"""AutoTokenizer and the tokenization workflow on the Rust `tokenizers` library; no torch needed.

``from xf_tokenize import AutoTokenizer`` gives the same ids, masks and offsets as transformers on the same
files. Submodules load on first use, so ``import xf_tokenize`` stays cheap.
"""

from collections.abc import Callable
from importlib import metadata as _metadata
from typing import TYPE_CHECKING, Any

from xf_core.lazy import lazy_exports

__version__ = _metadata.version("xf-tokenize")

__all__ = [
    "AddedToken",
    "AutoImageProcessor",
    "AutoProcessor",
    "AutoTokenizer",
    "BatchEncoding",
    "CLIPProcessor",
    "CharSpan",
    "PreTrainedTokenizerFast",
    "TokenSpan",
    "__version__",
]

if TYPE_CHECKING:  # the lazily exported names, as type checkers and IDEs should see them
    from tokenizers import AddedToken

    from ._auto import AutoTokenizer
    from ._batch import BatchEncoding, CharSpan, TokenSpan
    from ._processing import AutoProcessor, CLIPProcessor
    from ._tokenizer import PreTrainedTokenizerFast
    from .image_processing import AutoImageProcessor

__getattr__: Callable[[str], Any]
__dir__: Callable[[], list[str]]
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "AddedToken": "tokenizers",
        "AutoImageProcessor": ".image_processing",
        "AutoProcessor": "._processing",
        "CLIPProcessor": "._processing",
        "AutoTokenizer": "._auto",
        "BatchEncoding": "._batch",
        "CharSpan": "._batch",
        "TokenSpan": "._batch",
        "PreTrainedTokenizerFast": "._tokenizer",
    },
)
