"""``AutoTokenizer``: the transformers entry point, one class for every tokenizer xf loads."""

from __future__ import annotations

import os
from typing import Any

from xf_core import HubOptions
from xf_tokenize._loading import hub_options
from xf_tokenize._tokenizer import PreTrainedTokenizerFast

__all__ = ["AutoTokenizer"]


class AutoTokenizer:
    """``AutoTokenizer.from_pretrained(path_or_repo_id)`` gives a :class:`PreTrainedTokenizerFast`."""

    def __init__(self) -> None:
        raise TypeError(
            "AutoTokenizer is not instantiated; call AutoTokenizer.from_pretrained(path_or_repo_id)"
        )

    @staticmethod
    def from_pretrained(
        path_or_repo_id: str | os.PathLike[str],
        *,
        revision: str | None = None,
        subfolder: str | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        local_files_only: bool | None = None,
        token: str | bool | None = None,
        hub: HubOptions | None = None,
        **overrides: Any,
    ) -> PreTrainedTokenizerFast:
        """Load the tokenizer in a directory or Hub repo.

        Reads ``tokenizer.json`` (or converts ``vocab.txt`` / ``vocab.json`` + ``merges.txt`` /
        ``tokenizer.model``), ``tokenizer_config.json``, ``special_tokens_map.json``, ``added_tokens.json``
        and the chat template. ``overrides`` replace keys of ``tokenizer_config.json`` (``pad_token=...``,
        ``model_max_length=...``, ``padding_side=...``, ``do_lower_case=...``). The Hub keywords (or one
        ``hub=HubOptions(...)`` holding them, as ``pipeline()`` passes it; keywords given win) say which
        revision, subfolder and cache to read from.
        """
        return PreTrainedTokenizerFast.from_pretrained(
            path_or_repo_id,
            hub=hub_options(
                hub,
                revision=revision,
                subfolder=subfolder,
                cache_dir=cache_dir,
                local_files_only=local_files_only,
                token=token,
            ),
            **overrides,
        )
