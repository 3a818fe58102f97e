"""``token-classification`` (alias ``ner``): a label per token, or entities grouped from them.

Long texts are split into overlapping windows (``stride`` tokens of overlap) and entities found in
several windows are merged, so nothing past the model's length limit is lost.
"""

from __future__ import annotations

from typing import Any, ClassVar

from xf_pipeline._common import check_choice, id2label, max_input_length, output_field, split_rows
from xf_pipeline._math import AGGREGATION_STRATEGIES, aggregate, merge_overlapping_entities
from xf_pipeline.base import Pipeline
from xf_pipeline.errors import PipelineInputError, PipelineParameterError

__all__ = ["TokenClassificationPipeline"]


class TokenClassificationPipeline(Pipeline):
    """Label each token of a text. ``aggregation_strategy``: ``none`` (default; one dict per token with
    ``entity``, ``score``, ``index``, ``word``, ``start``, ``end``), ``simple`` (adjacent tokens of the same
    tag grouped into ``entity_group`` dicts), ``first``/``average``/``max`` (tokens of a word first agree on
    one label). ``ignore_labels`` (default ``["O"]``) are dropped. ``stride`` > 0 handles texts longer than
    the model by overlapping windows (needs an aggregation strategy other than ``none``)."""

    task = "token-classification"
    chunked = True
    per_token_outputs: ClassVar[frozenset[str]] = frozenset({"logits"})

    def _sanitize_parameters(
        self,
        aggregation_strategy: str | None = None,
        ignore_labels: list[str] | None = None,
        stride: int | None = None,
        max_length: int | None = None,
    ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        pre: dict[str, Any] = {}
        post: dict[str, Any] = {}
        strategy = None
        if aggregation_strategy is not None:
            strategy = check_choice(
                self.task, "aggregation_strategy", aggregation_strategy, AGGREGATION_STRATEGIES
            )
            post["aggregation_strategy"] = strategy
        if ignore_labels is not None:
            post["ignore_labels"] = [ignore_labels] if isinstance(ignore_labels, str) else list(ignore_labels)
        if max_length is not None:
            pre["max_length"] = int(max_length)
        if stride is not None:
            limit = max_length or max_input_length(self.tokenizer, self.model.config) or 0
            if limit and stride >= limit:
                raise PipelineParameterError(
                    f"{self.task}: stride={stride} must be smaller than the window length {limit}.",
                    task=self.task,
                    parameter="stride",
                )
            if strategy in (None, "none") and self._defaults_strategy() == "none":
                raise PipelineParameterError(
                    f"{self.task}: stride={stride} merges entities across windows, which needs "
                    "aggregation_strategy simple, first, average or max, not 'none'.",
                    task=self.task,
                    parameter="stride",
                )
            pre["stride"] = int(stride)
        return pre, {}, post

    def _defaults_strategy(self) -> str:
        defaults = getattr(self, "_defaults", None)
        return defaults[2].get("aggregation_strategy", "none") if defaults else "none"

    def preprocess(
        self, text: str, stride: int | None = None, max_length: int | None = None
    ) -> list[dict[str, Any]]:
        return self.preprocess_batch([text], stride, max_length)[0]

    def preprocess_batch(
        self, texts: list[Any], stride: int | None = None, max_length: int | None = None
    ) -> list[list[dict[str, Any]]]:
        """All texts in one tokenizer call; with ``stride`` each text's overlapping windows are its chunks."""
        for text in texts:
            if not isinstance(text, str):
                raise PipelineInputError(
                    f"{self.task} takes text, got {type(text).__name__}.", task=self.task
                )
        if max_length is None:
            max_length = max_input_length(self.tokenizer, self.model.config)
        options: dict[str, Any] = {}
        if stride is not None:
            options = {"return_overflowing_tokens": True, "stride": stride}
        encoded = self.tokenizer(
            texts,
            truncation=max_length is not None,
            max_length=max_length,
            return_special_tokens_mask=True,
            return_offsets_mapping=True,
            **options,
        )
        owners = encoded.get("overflow_to_sample_mapping") or range(len(texts))
        chunks: list[list[dict[str, Any]]] = [[] for _ in texts]
        for owner, row in zip(
            owners, split_rows(encoded, [k for k in encoded if k != "overflow_to_sample_mapping"])
        ):
            chunks[owner].append({**row, "sentence": texts[owner]})
        return chunks

    def _forward(self, batch: dict[str, Any]) -> dict[str, Any]:
        logits = output_field(self.model(**self.model_inputs(batch)), "logits")
        return {**{k: v for k, v in batch.items()}, "logits": logits}

    def _word_aware(self) -> bool:
        backend = getattr(self.tokenizer, "backend_tokenizer", None) or getattr(
            self.tokenizer, "_tokenizer", None
        )
        return bool(getattr(getattr(backend, "model", None), "continuing_subword_prefix", None))

    def _pre_entities(self, out: dict[str, Any], sentence: str) -> list[dict[str, Any]]:
        scores = out["logits"][0].float().softmax(-1)
        ids = out["input_ids"][0].tolist()
        tokens = self.tokenizer.convert_ids_to_tokens(ids)
        offsets = out["offset_mapping"][0].tolist()
        special = out["special_tokens_mask"][0].tolist()
        word_aware = self._word_aware()
        unk = getattr(self.tokenizer, "unk_token_id", None)
        pre = []
        for idx, (token, (start, end)) in enumerate(zip(tokens, offsets)):
            if special[idx]:
                continue
            ref = sentence[start:end]
            if word_aware:
                is_subword = len(token) != len(ref)
            else:  # a heuristic for tokenizers without word boundaries
                is_subword = start > 0 and " " not in sentence[start - 1 : start + 1]
            if ids[idx] == unk:
                token, is_subword = ref, False
            pre.append(
                {
                    "word": token,
                    "scores": scores[idx],
                    "start": start,
                    "end": end,
                    "index": idx,
                    "is_subword": is_subword,
                }
            )
        return pre

    def postprocess(
        self,
        outputs: list[dict[str, Any]],
        aggregation_strategy: str = "none",
        ignore_labels: list[str] | None = None,
    ) -> list[dict[str, Any]]:
        ignore = {"O"} if ignore_labels is None else set(ignore_labels)
        config = self.model.config
        entities = []
        for out in outputs:
            found = aggregate(
                self._pre_entities(out, out["sentence"]),
                aggregation_strategy,
                id2label=lambda i: id2label(config, i),
                join_tokens=self.tokenizer.convert_tokens_to_string,
            )
            entities.extend(e for e in found if e.get("entity", e.get("entity_group")) not in ignore)
        if len(outputs) > 1:
            entities = merge_overlapping_entities(entities)
        return entities
