"""Processors: a tokenizer and an image processor called together, with transformers' files on disk.

``AutoProcessor.from_pretrained(path)`` reads, in transformers' order:

* ``processor_config.json`` (what transformers v5 writes): ``processor_class`` and the image processor's
  settings under ``"image_processor"``;
* else ``preprocessor_config.json`` (what Hub repos such as ``openai/clip-vit-base-patch32`` hold) for the
  image processor, and ``processor_class`` from it, from ``tokenizer_config.json`` or, failing both, from the
  ``model_type`` in ``config.json``;
* the tokenizer files, through :class:`~xf_tokenize.AutoTokenizer`.

A directory with an image processor and no processor class gives the image processor alone; one with only
tokenizer files gives the tokenizer (as transformers does). :meth:`CLIPProcessor.save_pretrained` writes what
transformers writes: the tokenizer files (``processor_class`` added to ``tokenizer_config.json``) and then
``processor_config.json``, the file that names the processor, last.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any, ClassVar

from xf_core import HubOptions, os_error, resolve_file
from xf_core.errors import XfConfigError, XfFileNotFoundError
from xf_tokenize._batch import BatchEncoding
from xf_tokenize._tokenizer import PreTrainedTokenizerFast
from xf_tokenize.image_processing import (
    PREPROCESSOR_CONFIG,
    BaseImageProcessor,
    image_processor_from_dict,
    read_json_object,
)

__all__ = ["PROCESSORS", "AutoProcessor", "CLIPProcessor"]

PROCESSOR_CONFIG = "processor_config.json"
# The processor class of a model type, when no file names one (transformers' PROCESSOR_MAPPING, for xf's models).
_MODEL_TYPE_PROCESSORS = {"clip": "CLIPProcessor"}


class CLIPProcessor:
    """``processor(text=..., images=...)``: the tokenizer's ``input_ids``/``attention_mask`` and the image
    processor's ``pixel_values`` in one :class:`BatchEncoding`; either side may be left out."""

    processor_class: ClassVar[str] = "CLIPProcessor"

    def __init__(
        self,
        image_processor: BaseImageProcessor | None = None,
        tokenizer: PreTrainedTokenizerFast | None = None,
    ) -> None:
        if image_processor is None or tokenizer is None:
            missing = "image_processor" if image_processor is None else "tokenizer"
            raise XfConfigError(
                f"{type(self).__name__} needs both an image processor and a tokenizer; {missing} is missing. "
                "Load both with AutoProcessor.from_pretrained(path) from a directory that has them.",
                key=missing,
            )
        self.image_processor = image_processor
        self.tokenizer = tokenizer

    @property
    def model_input_names(self) -> list[str]:
        names = [*self.tokenizer.model_input_names, *self.image_processor.model_input_names]
        return list(dict.fromkeys(names))

    def __call__(
        self,
        text: str | list[str] | None = None,
        images: Any = None,
        *,
        return_tensors: str | None = None,
        **text_kwargs: Any,
    ) -> BatchEncoding:
        """Tokenize ``text`` (keywords such as ``padding=True`` go to the tokenizer) and process ``images``."""
        if text is None and images is None:
            raise ValueError("pass text, images or both to the processor.")
        data: dict[str, Any] = {}
        if text is not None:
            data.update(self.tokenizer(text, return_tensors=return_tensors, **text_kwargs))
        if images is not None:
            data.update(self.image_processor(images, return_tensors=return_tensors))
        return BatchEncoding(data)

    def decode(self, *args: Any, **kwargs: Any) -> str:
        return self.tokenizer.decode(*args, **kwargs)

    def batch_decode(self, *args: Any, **kwargs: Any) -> list[str]:
        return self.tokenizer.batch_decode(*args, **kwargs)

    # ---- files --------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The content of ``processor_config.json``."""
        return {"image_processor": self.image_processor.to_dict(), "processor_class": self.processor_class}

    def save_pretrained(self, save_directory: str | os.PathLike[str]) -> list[str]:
        """Write the tokenizer files and ``processor_config.json`` (written beside, renamed into place last);
        return the paths written. The directory loads back with xf's and transformers' AutoProcessor."""
        directory = Path(save_directory)
        self.tokenizer.init_kwargs["processor_class"] = self.processor_class  # as transformers writes it
        written = [str(p) for p in self.tokenizer.save_pretrained(directory)]
        path, tmp = directory / PROCESSOR_CONFIG, directory / f".{PROCESSOR_CONFIG}.tmp"
        try:
            tmp.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n", encoding="utf-8")
            os.replace(tmp, path)
        except OSError as e:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise os_error(e, directory, "saving the processor to") from e
        return [*written, str(path)]

    @classmethod
    def from_pretrained(cls, path_or_repo_id: str | os.PathLike[str], **kwargs: Any) -> CLIPProcessor:
        processor = AutoProcessor.from_pretrained(path_or_repo_id, **kwargs)
        if not isinstance(processor, cls):
            raise XfConfigError(
                f"{path_or_repo_id} holds a {type(processor).__name__}, not a {cls.__name__}: it needs both an "
                "image processor config and tokenizer files.",
            )
        return processor

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(image_processor={self.image_processor!r}, tokenizer={self.tokenizer!r})"
        )


PROCESSORS: dict[str, type[CLIPProcessor]] = {"CLIPProcessor": CLIPProcessor}


class AutoProcessor:
    """``AutoProcessor.from_pretrained(path_or_repo_id)``: a processor, or the image processor or tokenizer
    alone when that is all the directory holds (see the module docstring for the files read)."""

    def __init__(self) -> None:
        raise TypeError(
            "AutoProcessor is not instantiated; call AutoProcessor.from_pretrained(path_or_repo_id)"
        )

    @staticmethod
    def from_pretrained(
        path_or_repo_id: str | os.PathLike[str], /, *, hub: HubOptions | None = None, **kwargs: Any
    ) -> CLIPProcessor | BaseImageProcessor | PreTrainedTokenizerFast:
        """The Hub keywords (``revision``, ``subfolder``, ...) go on top of ``hub``; other keywords override
        the tokenizer's settings (``model_max_length=...``)."""
        hub = HubOptions.pop_from(kwargs, base=hub)
        image_processor: BaseImageProcessor | None = None
        processor_class: str | None = None
        named_in: Path | None = None

        processor_file = resolve_file(path_or_repo_id, PROCESSOR_CONFIG, hub=hub, missing_ok=True)
        if processor_file is not None:
            config = read_json_object(processor_file)
            processor_class, named_in = config.get("processor_class"), processor_file
            if isinstance(config.get("image_processor"), dict):
                image_processor = image_processor_from_dict(config["image_processor"], file=processor_file)
        if image_processor is None:
            preprocessor_file = resolve_file(path_or_repo_id, PREPROCESSOR_CONFIG, hub=hub, missing_ok=True)
            if preprocessor_file is not None:
                config = read_json_object(preprocessor_file)
                image_processor = image_processor_from_dict(config, file=preprocessor_file)
                if processor_class is None and "processor_class" in config:
                    processor_class, named_in = config["processor_class"], preprocessor_file

        tokenizer_config = resolve_file(path_or_repo_id, "tokenizer_config.json", hub=hub, missing_ok=True)
        tokenizer = _tokenizer_or_none(path_or_repo_id, hub, kwargs)
        if processor_class is None and tokenizer_config is not None:
            processor_class = read_json_object(tokenizer_config).get("processor_class")
            named_in = tokenizer_config
        if processor_class is None and image_processor is not None and tokenizer is not None:
            model_config = resolve_file(path_or_repo_id, "config.json", hub=hub, missing_ok=True)
            if model_config is not None:
                processor_class = _MODEL_TYPE_PROCESSORS.get(
                    str(read_json_object(model_config).get("model_type"))
                )
                named_in = model_config

        if processor_class is not None:
            if processor_class not in PROCESSORS:
                raise XfConfigError(
                    f"{named_in} names processor_class {processor_class!r}, which xf does not have; known: "
                    f"{', '.join(sorted(PROCESSORS))}. Load the tokenizer (AutoTokenizer) or the image processor "
                    "(AutoImageProcessor) on its own instead.",
                    key="processor_class",
                    file=str(named_in),
                )
            return PROCESSORS[processor_class](image_processor=image_processor, tokenizer=tokenizer)
        if image_processor is not None:
            return image_processor
        if tokenizer is not None:
            return tokenizer
        raise XfFileNotFoundError(
            f"{path_or_repo_id} has no processor files: looked for {PROCESSOR_CONFIG}, {PREPROCESSOR_CONFIG} and "
            "tokenizer files. Pass the directory (or repo) that holds them, or save a processor there with "
            "processor.save_pretrained(...).",
            path=str(path_or_repo_id),
            filename=PROCESSOR_CONFIG,
        )


def _tokenizer_or_none(
    path_or_repo_id: str | os.PathLike[str], hub: HubOptions, overrides: dict[str, Any]
) -> PreTrainedTokenizerFast | None:
    from xf_tokenize.errors import NoTokenizerFilesError

    try:
        return PreTrainedTokenizerFast.from_pretrained(path_or_repo_id, hub=hub, **overrides)
    except NoTokenizerFilesError:
        return None
