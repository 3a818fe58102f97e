"""``save_pretrained``: ``tokenizer.json``, ``tokenizer_config.json`` and ``chat_template.jinja``.

What is written loads back identically with xf and with transformers. The set is written all-or-nothing
(:func:`xf_core.atomic_directory`): staged beside the directory and swapped in once complete, so a save killed
half-way or stopped by a full disk leaves the previous tokenizer files as they were. Files the tokenizer does
not own (a model's weights and ``config.json``) are carried over into the new directory.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tokenizers import AddedToken, Tokenizer

from xf_core import atomic_directory
from xf_tokenize._special import SpecialTokens

__all__ = ["save_tokenizer"]

# The files a tokenizer save owns: replaced by each save, never carried over from the previous one (a
# chat_template.jinja left from an earlier save would give a tokenizer saved without a template one).
OWNED_FILES = frozenset({"tokenizer.json", "tokenizer_config.json", "chat_template.jinja"})


def save_tokenizer(
    save_directory: str | os.PathLike[str],
    *,
    backend: Tokenizer,
    special: SpecialTokens,
    settings: Mapping[str, Any],
    init_kwargs: Mapping[str, Any],
    chat_template: str | dict[str, str] | None,
) -> tuple[str, ...]:
    """Write the tokenizer files into ``save_directory``; returns their paths, the config first.

    ``settings`` are the config keys the tokenizer interprets (``model_max_length``, sides, ...);
    ``init_kwargs`` the keys it keeps as they were read.
    """
    directory = Path(save_directory)
    copy = Tokenizer.from_str(backend.to_str())  # without the per-call padding/truncation of the original
    copy.no_truncation()
    copy.no_padding()
    config = dict(init_kwargs)
    special.write_to(config)
    added: dict[int, AddedToken] = dict(sorted(backend.get_added_tokens_decoder().items()))
    config["added_tokens_decoder"] = {str(i): {**t.__getstate__()} for i, t in added.items()}
    config.update(settings)
    config.pop("chat_template", None)
    if isinstance(chat_template, dict):
        config["chat_template"] = [{"name": k, "template": v} for k, v in chat_template.items()]
    text = json.dumps(config, indent=2, sort_keys=True, ensure_ascii=False) + "\n"

    written = [str(directory / "tokenizer_config.json"), str(directory / "tokenizer.json")]
    with atomic_directory(
        directory, keep=lambda name: name not in OWNED_FILES, action="saving the tokenizer to"
    ) as stage:
        copy.save(str(stage / "tokenizer.json"))
        if isinstance(chat_template, str):
            (stage / "chat_template.jinja").write_text(chat_template, encoding="utf-8")
            written.append(str(directory / "chat_template.jinja"))
        (stage / "tokenizer_config.json").write_text(text, encoding="utf-8")
    return tuple(written)
