"""``save_pretrained``: ``tokenizer.json``, ``tokenizer_config.json`` and ``chat_template.jinja``.

What is written loads back identically with xf and with transformers. Each file is written beside its
final name and renamed into place, so a reader never sees a half-written file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from tokenizers import AddedToken, Tokenizer

from xf_tokenize._special import SpecialTokens

__all__ = ["save_tokenizer"]


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
    if directory.is_file():
        raise FileExistsError(f"{directory} is a file; pass a directory to save the tokenizer in")
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    tokenizer_file = directory / "tokenizer.json"
    copy = Tokenizer.from_str(backend.to_str())  # without the per-call padding/truncation of the original
    copy.no_truncation()
    copy.no_padding()
    _replace(tokenizer_file, lambda tmp: copy.save(str(tmp)))
    written.append(str(tokenizer_file))

    config = dict(init_kwargs)
    special.write_to(config)
    added: dict[int, AddedToken] = dict(sorted(backend.get_added_tokens_decoder().items()))
    config["added_tokens_decoder"] = {str(i): {**t.__getstate__()} for i, t in added.items()}
    config.update(settings)
    config.pop("chat_template", None)
    if isinstance(chat_template, str):
        path = directory / "chat_template.jinja"
        _replace(path, lambda tmp: tmp.write_text(chat_template, encoding="utf-8"))
        written.append(str(path))
    elif isinstance(chat_template, dict):
        config["chat_template"] = [{"name": k, "template": v} for k, v in chat_template.items()]
    config_file = directory / "tokenizer_config.json"
    text = json.dumps(config, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    _replace(config_file, lambda tmp: tmp.write_text(text, "utf-8"))
    written.insert(0, str(config_file))
    return tuple(written)


def _replace(path: Path, write: Callable[[Path], object]) -> None:
    """Write ``path`` through ``write(temporary_path)`` beside it, then rename it into place."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
