"""AutoTokenizer and the tokenization workflow on the Rust `tokenizers` library; no torch needed.

``from xf_tokenize import AutoTokenizer`` gives the same ids, masks and offsets as transformers on the same
files. Submodules load on first use, so ``import xf_tokenize`` stays cheap.
"""

from collections.abc import Callable
from typing import Any

from xf_core.lazy import lazy_exports

__version__ = "0.2.0"

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
