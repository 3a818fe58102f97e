"""``AutoTokenizer``: the transformers entry point, one class for every tokenizer xf loads."""

from __future__ import annotations

import os
from typing import Any

from xf_tokenize._tokenizer import PreTrainedTokenizerFast

__all__ = ["AutoTokenizer"]


class AutoTokenizer:
    """``AutoTokenizer.from_pretrained(path_or_repo_id)`` gives a :class:`PreTrainedTokenizerFast`."""

    def __init__(self) -> None:
        raise TypeError(
            "AutoTokenizer is not instantiated; call AutoTokenizer.from_pretrained(path_or_repo_id)"
        )

    @staticmethod
    def from_pretrained(path_or_repo_id: str | os.PathLike[str], **kwargs: Any) -> PreTrainedTokenizerFast:
        """Load the tokenizer in a directory or Hub repo.

        Reads ``tokenizer.json`` (or converts ``vocab.txt`` / ``vocab.json`` + ``merges.txt`` /
        ``tokenizer.model``), ``tokenizer_config.json``, ``special_tokens_map.json``, ``added_tokens.json``
        and the chat template. Takes the keywords of :meth:`PreTrainedTokenizerFast.from_pretrained`: the
        Hub keywords ``revision``, ``subfolder``, ``cache_dir``, ``local_files_only``, ``token`` (or one
        ``hub=HubOptions(...)`` holding them, as ``pipeline()`` passes it; keywords given win), and
        overrides of ``tokenizer_config.json`` keys (``pad_token=...``, ``model_max_length=...``,
        ``padding_side=...``, ``do_lower_case=...``).
        """
        return PreTrainedTokenizerFast.from_pretrained(path_or_repo_id, **kwargs)
