"""``text2text-generation``, ``summarization`` and ``translation`` (``translation_xx_to_yy``): an encoder-decoder
model (T5, BART) generates a text from a text, with transformers v4's pipelines' outputs (removed from v5).

Each input gives ``[{"<name>_text": ...}]``, one record per returned sequence (``generated``, ``summary`` or
``translation``); a list of strings whose results all have one record gives one record per string, as in v4.
``return_tensors=True`` gives ``<name>_token_ids`` instead (a list of ids). The model config's
``task_specific_params`` for the task (``"summarization"``, ``"translation_en_to_de"``, ...) supply the input
``prefix`` and generation defaults (t5-small: ``"summarize: "``, 4 beams, ...), as v4 applied them; keywords
given to the pipeline override them and go to ``model.generate``.
"""

from __future__ import annotations

import enum
from typing import Any

from xf_core.logging import get_logger
from xf_pipeline._common import split_rows
from xf_pipeline.base import Pipeline
from xf_pipeline.errors import PipelineInputError, PipelineParameterError

__all__ = ["ReturnType", "SummarizationPipeline", "Text2TextGenerationPipeline", "TranslationPipeline"]

logger = get_logger(__name__)


class ReturnType(enum.Enum):
    TENSORS = 0
    TEXT = 1


class Text2TextGenerationPipeline(Pipeline):
    """Generate a text from a text with a seq2seq model: ``[{"generated_text": ...}]`` per input."""

    task = "text2text-generation"
    return_name = "generated"

    def __init__(self, model: Any, tokenizer: Any = None, **kwargs: Any) -> None:
        self._languages: tuple[str | None, str | None] = (kwargs.get("src_lang"), kwargs.get("tgt_lang"))
        super().__init__(model, tokenizer, **kwargs)

    # -- task_specific_params ------------------------------------------------------------------------
    def _task_key(self, src_lang: str | None = None, tgt_lang: str | None = None) -> str:
        return self.task

    def _task_params(self, key: str) -> dict[str, Any]:
        params = getattr(self.model.config, "task_specific_params", None) or {}
        found = params.get(key) if isinstance(params, dict) else None
        return dict(found) if isinstance(found, dict) else {}

    def _prefix(self, key: str) -> str:
        prefix = self._task_params(key).get("prefix")
        if prefix is None:
            prefix = getattr(self.model.config, "prefix", None)
        return prefix if isinstance(prefix, str) else ""

    # -- the four steps ------------------------------------------------------------------------------
    def _sanitize_parameters(
        self,
        return_tensors: bool | None = None,
        return_text: bool | None = None,
        return_type: ReturnType | None = None,
        clean_up_tokenization_spaces: bool | None = None,
        truncation: bool | str | None = None,
        stop_sequence: str | None = None,
        src_lang: str | None = None,
        tgt_lang: str | None = None,
        **generate_kwargs: Any,
    ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        pre: dict[str, Any] = {}
        post: dict[str, Any] = {}
        if truncation is not None:
            pre["truncation"] = truncation
        if src_lang is not None:
            pre["src_lang"] = src_lang
        if tgt_lang is not None:
            pre["tgt_lang"] = tgt_lang
        if return_tensors is not None and return_type is None:
            return_type = ReturnType.TENSORS if return_tensors else ReturnType.TEXT
        elif return_text is not None and return_type is None:
            return_type = ReturnType.TEXT if return_text else ReturnType.TENSORS
        if return_type is not None:
            if not isinstance(return_type, ReturnType):
                raise PipelineParameterError(
                    f"{self.task}: return_type={return_type!r} is not a ReturnType; pass return_tensors=True "
                    "or return_text=True instead.",
                    task=self.task,
                    parameter="return_type",
                )
            post["return_type"] = return_type
        if clean_up_tokenization_spaces is not None:
            post["clean_up_tokenization_spaces"] = bool(clean_up_tokenization_spaces)
        if stop_sequence is not None:
            ids = self.tokenizer(stop_sequence, add_special_tokens=False)["input_ids"]
            if not ids:
                raise PipelineParameterError(
                    f"{self.task}: stop_sequence={stop_sequence!r} encodes to no token; pass a non-empty text.",
                    task=self.task,
                    parameter="stop_sequence",
                )
            if len(ids) > 1:
                logger.warning(
                    "stop_sequence %r is several tokens; generation stops at its first one.", stop_sequence
                )
            generate_kwargs["eos_token_id"] = ids[0]
        return pre, generate_kwargs, post

    def preprocess(self, item: Any, **params: Any) -> dict[str, Any]:
        return self.preprocess_batch([item], **params)[0]

    def preprocess_batch(
        self,
        items: list[Any],
        truncation: bool | str = False,
        src_lang: str | None = None,
        tgt_lang: str | None = None,
    ) -> list[dict[str, Any]]:
        for item in items:
            if not isinstance(item, str):
                raise PipelineInputError(
                    f"{self.task} takes a text (or a list of texts), got {type(item).__name__}.",
                    task=self.task,
                )
        key = self._task_key(src_lang or self._languages[0], tgt_lang or self._languages[1])
        prefix = self._prefix(key)
        encoded = self.tokenizer([prefix + item for item in items], truncation=truncation)
        rows = split_rows(encoded, ("input_ids", "attention_mask"))
        for row in rows:
            row["task_key"] = key
        return rows

    def check_inputs(self, input_length: int, min_length: int | None, max_length: int | None) -> None:
        """Warn about lengths that look wrong for the task (v4's checks); text2text checks nothing."""

    def _forward(self, batch: dict[str, Any], **generate_kwargs: Any) -> dict[str, Any]:
        input_ids = batch["input_ids"]
        rows, length = input_ids.shape
        params = {k: v for k, v in self._task_params(batch["task_key"][0]).items() if k != "prefix"}
        params.update(generate_kwargs)
        self.check_inputs(length, params.get("min_length"), params.get("max_length"))
        output = self.model.generate(input_ids=input_ids, attention_mask=batch["attention_mask"], **params)
        output = getattr(output, "sequences", output)
        return {"output_ids": output.reshape(rows, output.shape[0] // rows, *output.shape[1:])}

    def postprocess(
        self,
        output: dict[str, Any],
        return_type: ReturnType = ReturnType.TEXT,
        clean_up_tokenization_spaces: bool = False,
    ) -> list[dict[str, Any]]:
        records = []
        for ids in output["output_ids"][0].tolist():
            if return_type == ReturnType.TENSORS:
                records.append({f"{self.return_name}_token_ids": ids})
            else:
                text = self.tokenizer.decode(
                    ids, skip_special_tokens=True, clean_up_tokenization_spaces=clean_up_tokenization_spaces
                )
                records.append({f"{self.return_name}_text": text})
        return records

    def __call__(self, inputs: Any, **kwargs: Any) -> Any:
        result = super().__call__(inputs, **kwargs)
        if (
            isinstance(inputs, list)
            and all(isinstance(item, str) for item in inputs)
            and all(len(records) == 1 for records in result)
        ):
            return [records[0] for records in result]
        return result


class SummarizationPipeline(Text2TextGenerationPipeline):
    """Summarize texts: ``[{"summary_text": ...}]`` per input."""

    task = "summarization"
    return_name = "summary"

    def check_inputs(self, input_length: int, min_length: int | None, max_length: int | None) -> None:
        if min_length is not None and max_length is not None and max_length < min_length:
            logger.warning("min_length=%d is larger than max_length=%d.", min_length, max_length)
        if max_length is not None and input_length < max_length:
            logger.warning(
                "max_length is %d but the input has only %d tokens; consider a smaller max_length, e.g. "
                "summarizer('...', max_length=%d).",
                max_length,
                input_length,
                input_length // 2,
            )


class TranslationPipeline(Text2TextGenerationPipeline):
    """Translate texts: ``[{"translation_text": ...}]`` per input. The languages come from the task name
    (``translation_en_to_fr``) or ``src_lang``/``tgt_lang``, and pick the config's task-specific prefix."""

    task = "translation"
    return_name = "translation"

    def _task_key(self, src_lang: str | None = None, tgt_lang: str | None = None) -> str:
        if src_lang and tgt_lang:
            return f"translation_{src_lang}_to_{tgt_lang}"
        return self.task

    def check_inputs(self, input_length: int, min_length: int | None, max_length: int | None) -> None:
        if max_length is not None and input_length > 0.9 * max_length:
            logger.warning(
                "the input has %d tokens, more than 0.9 * max_length=%d; consider a larger max_length, e.g. "
                "translator('...', max_length=400).",
                input_length,
                max_length,
            )
