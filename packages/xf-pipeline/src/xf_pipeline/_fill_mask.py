"""``fill-mask``: the likeliest tokens for each mask token of a text."""

from __future__ import annotations

from typing import Any, ClassVar

from xf_core.logging import get_logger
from xf_pipeline._common import max_input_length, output_field, split_rows
from xf_pipeline._math import top_k_tokens
from xf_pipeline.base import Pipeline
from xf_pipeline.errors import PipelineInputError, PipelineParameterError

__all__ = ["FillMaskPipeline"]

logger = get_logger(__name__)


class FillMaskPipeline(Pipeline):
    """Fill the mask token(s) of a text. Each candidate is ``{"score", "token", "token_str", "sequence"}``.
    One mask gives a list of ``top_k`` candidates (default 5); several masks give one such list per mask.
    ``targets`` restricts candidates to the given words (a word not in the vocabulary is replaced by its
    first token, with a warning)."""

    task = "fill-mask"
    per_token_outputs: ClassVar[frozenset[str]] = frozenset({"logits"})

    def _sanitize_parameters(
        self, top_k: int | None = None, targets: str | list[str] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        if getattr(self.tokenizer, "mask_token_id", None) is None:
            raise PipelineParameterError(
                f"{self.task}: the tokenizer has no mask token; use a masked-language model's tokenizer.",
                task=self.task,
                parameter="tokenizer",
            )
        post: dict[str, Any] = {}
        if top_k is not None:
            if int(top_k) < 1:
                raise PipelineParameterError(
                    f"{self.task}: top_k must be >= 1, got {top_k}.", task=self.task, parameter="top_k"
                )
            post["top_k"] = int(top_k)
        if targets is not None:
            post["target_ids"] = self._target_ids([targets] if isinstance(targets, str) else list(targets))
        return {}, {}, post

    def _target_ids(self, targets: list[str]) -> list[int]:
        vocab = self.tokenizer.get_vocab()
        ids: list[int] = []
        for target in targets:
            token_id = vocab.get(target)
            if token_id is None:
                pieces = self.tokenizer(target, add_special_tokens=False)["input_ids"]
                if not pieces:
                    logger.warning("fill-mask target %r has no tokens in the vocabulary; ignoring it", target)
                    continue
                token_id = pieces[0]
                logger.warning(
                    "fill-mask target %r is not in the vocabulary; using its first token %r",
                    target,
                    self.tokenizer.convert_ids_to_tokens(token_id),
                )
            ids.append(int(token_id))
        ids = sorted(set(ids))
        if not ids:
            raise PipelineParameterError(
                f"{self.task}: none of the targets {targets} is usable; pass words from the vocabulary.",
                task=self.task,
                parameter="targets",
            )
        return ids

    def preprocess(self, text: str) -> dict[str, Any]:
        return self.preprocess_batch([text])[0]

    def preprocess_batch(self, texts: list[Any]) -> list[dict[str, Any]]:
        for text in texts:
            if not isinstance(text, str):
                raise PipelineInputError(
                    f"{self.task} takes text, got {type(text).__name__}.", task=self.task
                )
        max_length = max_input_length(self.tokenizer, self.model.config)
        encoded = self.tokenizer(texts, truncation=max_length is not None, max_length=max_length)
        rows = split_rows(encoded, list(encoded))
        for text, row in zip(texts, rows):
            if not (row["input_ids"] == self.tokenizer.mask_token_id).any():
                raise PipelineInputError(
                    f"{self.task}: no mask token {self.tokenizer.mask_token!r} in {text!r}; put one where a word "
                    "is missing.",
                    task=self.task,
                )
        return rows

    def _forward(self, batch: dict[str, Any]) -> dict[str, Any]:
        logits = output_field(self.model(**self.model_inputs(batch)), "logits")
        return {"logits": logits, "input_ids": batch["input_ids"]}

    def postprocess(
        self, output: dict[str, Any], top_k: int = 5, target_ids: list[int] | None = None
    ) -> list[dict[str, Any]] | list[list[dict[str, Any]]]:
        input_ids = output["input_ids"][0]
        positions = (input_ids == self.tokenizer.mask_token_id).nonzero().flatten()
        candidates = top_k_tokens(output["logits"][0, positions], top_k=top_k, target_ids=target_ids)
        single = len(positions) == 1
        pad = getattr(self.tokenizer, "pad_token_id", None)
        result = []
        for position, row in zip(positions.tolist(), candidates):
            entries = []
            for score, token in row:
                tokens = input_ids.tolist()
                tokens[position] = token
                tokens = [t for t in tokens if t != pad]
                entries.append(
                    {
                        "score": score,
                        "token": token,
                        "token_str": self.tokenizer.decode([token]),
                        # with several masks the others stay visible, so special tokens are kept
                        "sequence": self.tokenizer.decode(tokens, skip_special_tokens=single),
                    }
                )
            result.append(entries)
        return result[0] if single else result
