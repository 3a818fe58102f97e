"""``feature-extraction`` (token or pooled embeddings) and ``sentence-similarity`` (cosine scores)."""

from __future__ import annotations

from typing import Any

import torch

from xf_pipeline._common import check_choice, max_input_length, output_field, split_rows
from xf_pipeline._math import pool
from xf_pipeline.base import Pipeline
from xf_pipeline.errors import PipelineInputError

__all__ = ["FeatureExtractionPipeline", "SentenceSimilarityPipeline"]

_POOLING = ("none", "mean", "cls")


class _EmbeddingPipeline(Pipeline):
    per_token_outputs = frozenset({"hidden"})

    def _encode(self, texts: list[Any], truncation: bool, max_length: int | None) -> list[dict[str, Any]]:
        """The model inputs of each text, from one tokenizer call."""
        for text in texts:
            if not isinstance(text, str):
                raise PipelineInputError(
                    f"{self.task} takes text, got {type(text).__name__}.", task=self.task
                )
        if truncation and max_length is None:
            max_length = max_input_length(self.tokenizer, getattr(self.model, "config", None))
        encoded = self.tokenizer(texts, truncation=bool(truncation and max_length), max_length=max_length)
        return split_rows(encoded, ("input_ids", "attention_mask", "token_type_ids"))

    def _forward(self, batch: dict[str, Any]) -> dict[str, Any]:
        output = self.model(**self.model_inputs(batch))
        hidden = output_field(output, "last_hidden_state", "logits")
        mask = batch.get("attention_mask")
        return {
            "hidden": hidden,
            "attention_mask": torch.ones_like(batch["input_ids"]) if mask is None else mask,
        }

    def _embed(self, output: dict[str, Any], pooling: str, normalize: bool) -> torch.Tensor:
        vector = pool(output["hidden"][0].float(), output["attention_mask"][0], pooling)
        return torch.nn.functional.normalize(vector, dim=-1) if normalize else vector


class FeatureExtractionPipeline(_EmbeddingPipeline):
    """Hidden states of the model's last layer. ``pooling="none"`` (default) gives one vector per token,
    nested as transformers does (``[[[...], ...]]``); ``"mean"`` or ``"cls"`` give one vector per input.
    ``normalize=True`` scales vectors to unit length. Inputs longer than the model takes are truncated."""

    task = "feature-extraction"

    def _sanitize_parameters(
        self,
        pooling: str | None = None,
        normalize: bool | None = None,
        truncation: bool | None = None,
        max_length: int | None = None,
        return_tensors: bool | None = None,
    ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        pre: dict[str, Any] = {}
        post: dict[str, Any] = {}
        if pooling is not None:
            post["pooling"] = check_choice(self.task, "pooling", pooling, _POOLING)
        if normalize is not None:
            post["normalize"] = bool(normalize)
        if return_tensors is not None:
            post["return_tensors"] = bool(return_tensors)
        if truncation is not None:
            pre["truncation"] = bool(truncation)
        if max_length is not None:
            pre["max_length"] = int(max_length)
        return pre, {}, post

    def preprocess(self, text: str, truncation: bool = True, max_length: int | None = None) -> dict[str, Any]:
        return self._encode([text], truncation, max_length)[0]

    def preprocess_batch(
        self, texts: list[Any], truncation: bool = True, max_length: int | None = None
    ) -> list[dict[str, Any]]:
        return self._encode(texts, truncation, max_length)

    def postprocess(
        self,
        output: dict[str, Any],
        pooling: str = "none",
        normalize: bool = False,
        return_tensors: bool = False,
    ) -> Any:
        vector = self._embed(output, pooling, normalize)
        if pooling == "none":
            vector = vector.unsqueeze(0)  # (1, T, H), as transformers returns it
        return vector if return_tensors else vector.tolist()


class SentenceSimilarityPipeline(_EmbeddingPipeline):
    """Cosine similarity of a source sentence to each candidate, on mean-pooled normalized embeddings.

    Input: ``{"source_sentence": str, "sentences": [str, ...]}``, or the source as a string with
    ``sentences=[...]``. Output: one float per candidate, in order."""

    task = "sentence-similarity"
    chunked = True

    def _sanitize_parameters(
        self,
        sentences: list[str] | None = None,
        pooling: str | None = None,
        truncation: bool | None = None,
        max_length: int | None = None,
    ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        pre: dict[str, Any] = {}
        post: dict[str, Any] = {}
        if sentences is not None:
            pre["sentences"] = [sentences] if isinstance(sentences, str) else list(sentences)
        if pooling is not None:
            post["pooling"] = check_choice(self.task, "pooling", pooling, _POOLING[1:])
        if truncation is not None:
            pre["truncation"] = bool(truncation)
        if max_length is not None:
            pre["max_length"] = int(max_length)
        return pre, {}, post

    def _sentences(self, item: str | dict[str, Any], sentences: list[str] | None) -> list[str]:
        """The source sentence, then the candidates."""
        if isinstance(item, dict):
            if "source_sentence" not in item or "sentences" not in item:
                raise PipelineInputError(
                    f"{self.task} takes {{'source_sentence': str, 'sentences': [str, ...]}}; got keys "
                    f"{sorted(item)}.",
                    task=self.task,
                )
            source, candidates = item["source_sentence"], item["sentences"]
        else:
            source, candidates = item, sentences
        if not candidates:
            raise PipelineInputError(
                f"{self.task} needs candidate sentences to compare {source!r} with; pass "
                "{'source_sentence': ..., 'sentences': [...]} or sentences=[...].",
                task=self.task,
            )
        return [source, *([candidates] if isinstance(candidates, str) else candidates)]

    def preprocess(
        self,
        item: str | dict[str, Any],
        sentences: list[str] | None = None,
        truncation: bool = True,
        max_length: int | None = None,
    ) -> list[dict[str, Any]]:
        return self.preprocess_batch([item], sentences, truncation, max_length)[0]

    def preprocess_batch(
        self,
        items: list[str | dict[str, Any]],
        sentences: list[str] | None = None,
        truncation: bool = True,
        max_length: int | None = None,
    ) -> list[list[dict[str, Any]]]:
        groups = [self._sentences(item, sentences) for item in items]
        encoded = iter(self._encode([text for group in groups for text in group], truncation, max_length))
        return [[next(encoded) for _ in group] for group in groups]

    def postprocess(self, outputs: list[dict[str, Any]], pooling: str = "mean") -> list[float]:
        vectors = torch.stack([self._embed(out, pooling, True) for out in outputs])
        return (vectors[1:] @ vectors[0]).tolist()
