"""``feature-extraction`` (token or pooled embeddings) and ``sentence-similarity`` (cosine scores)."""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from xf_pipeline._common import check_choice, max_input_length, output_field, split_rows
from xf_pipeline._math import POOLINGS, pool
from xf_pipeline._sentence_config import SentenceConfig, read_sentence_config
from xf_pipeline.base import Pipeline
from xf_pipeline.errors import PipelineInputError

__all__ = ["FeatureExtractionPipeline", "SentenceSimilarityPipeline", "similarity_matrix"]

_POOLING = (*POOLINGS, "auto")
_MODEL_KEYS = ("input_ids", "attention_mask", "token_type_ids")


def similarity_matrix(a: torch.Tensor, b: torch.Tensor, function: str = "cosine") -> torch.Tensor:
    """``(N, H)`` x ``(M, H)`` -> ``(N, M)`` scores, as sentence-transformers' ``similarity``: ``cosine``,
    ``dot``, or the negated ``euclidean`` / ``manhattan`` distance (higher is always more similar)."""
    a, b = a.float(), b.float()
    if function == "cosine":
        return torch.nn.functional.normalize(a, dim=-1) @ torch.nn.functional.normalize(b, dim=-1).T
    if function == "dot":
        return a @ b.T
    if function == "euclidean":
        return -torch.cdist(a, b, p=2.0)
    if function == "manhattan":
        return -torch.cdist(a, b, p=1.0)
    raise ValueError(f"similarity function must be cosine, dot, euclidean or manhattan, got {function!r}")


class _EmbeddingPipeline(Pipeline):
    """Shared by the embedding tasks and :class:`xf_pipeline.SentenceTransformer`: tokenizing as the model's
    sentence-transformers files say (length limit, lower-casing, prompts), and pooling as they say."""

    per_token_outputs: ClassVar[frozenset[str]] = frozenset({"hidden"})

    def __init__(
        self,
        model: Any,
        tokenizer: Any = None,
        *,
        sentence_config: SentenceConfig | None = None,
        **kwargs: Any,
    ) -> None:
        if sentence_config is None:
            sentence_config = read_sentence_config(getattr(model, "name_or_path", None))
        self.sentence_config: SentenceConfig = sentence_config
        super().__init__(model, tokenizer, **kwargs)

    def max_seq_length(self) -> int | None:
        """The model's sentence-embedding length limit: ``max_seq_length`` of sentence_bert_config.json, else
        the tokenizer's or the config's limit."""
        return self.sentence_config.max_seq_length or max_input_length(
            self.tokenizer, getattr(self.model, "config", None)
        )

    def prompt_length(self, prompt: str) -> int:
        """How many leading tokens ``prompt`` takes, as sentence-transformers counts it (without the trailing
        special token the tokenizer adds)."""
        ids = self.tokenizer([prompt])["input_ids"][0]
        special = set(getattr(self.tokenizer, "all_special_ids", None) or ())
        return len(ids) - 1 if ids and ids[-1] in special else len(ids)

    def _encode(
        self,
        texts: list[Any],
        truncation: bool,
        max_length: int | None,
        *,
        pooled: bool = False,
        prompt: str | None = None,
    ) -> list[dict[str, Any]]:
        """The model inputs of each text, from one tokenizer call. ``pooled`` inputs follow the model's
        sentence-transformers settings (``max_seq_length``, ``do_lower_case``); ``prompt`` is prepended, and
        when the model's pooling excludes it, each row carries its ``prompt_length``."""
        encoded, prompt_length = self.tokenize(texts, truncation, max_length, pooled=pooled, prompt=prompt)
        rows = split_rows(encoded, _MODEL_KEYS)
        if prompt_length is not None:
            for row in rows:
                row["prompt_length"] = prompt_length
        return rows

    def tokenize(
        self,
        texts: list[Any],
        truncation: bool,
        max_length: int | None,
        *,
        pooled: bool = False,
        prompt: str | None = None,
    ) -> tuple[Any, int | None]:
        """One tokenizer call for all ``texts`` (unpadded lists of ids per key), as :meth:`_encode` prepares
        them, and the prompt's token count when the model's pooling leaves the prompt out (else None)."""
        for text in texts:
            if not isinstance(text, str):
                raise PipelineInputError(
                    f"{self.task} takes text, got {type(text).__name__}.", task=self.task
                )
        settings = self.sentence_config
        if truncation and max_length is None:
            if pooled:
                max_length = self.max_seq_length()
            else:
                max_length = max_input_length(self.tokenizer, getattr(self.model, "config", None))
        if prompt:
            texts = [prompt + text for text in texts]
        if pooled and settings.do_lower_case:
            texts = [text.lower() for text in texts]
        encoded = self.tokenizer(texts, truncation=bool(truncation and max_length), max_length=max_length)
        excluded = bool(prompt) and pooled and not settings.include_prompt
        return encoded, self.prompt_length(prompt) if excluded and prompt else None

    def _forward(self, batch: dict[str, Any]) -> dict[str, Any]:
        output = self.model(**self.model_inputs(batch))
        hidden = output_field(output, "last_hidden_state", "logits")
        mask = batch.get("attention_mask")
        result = {
            "hidden": hidden,
            "attention_mask": torch.ones_like(batch["input_ids"]) if mask is None else mask,
        }
        if "prompt_length" in batch:
            result["prompt_length"] = batch["prompt_length"]
        return result

    def pooling_modes(self, pooling: str) -> tuple[str, ...]:
        """``auto`` -> the model's own pooling modes (1_Pooling/config.json); any other mode as given."""
        if pooling == "auto":
            self.sentence_config.check_supported()
            return self.sentence_config.pooling
        return (pooling,)

    def embed(
        self,
        hidden: torch.Tensor,
        attention_mask: torch.Tensor,
        modes: tuple[str, ...],
        *,
        normalize: bool,
        prompt_length: torch.Tensor | list[int] | int | None = None,
    ) -> torch.Tensor:
        """Pooled ``(..., T, H)`` states -> ``(..., D)`` vectors (several modes concatenated, in order), in
        float32; ``prompt_length`` leading unpadded tokens are left out of the pooling."""
        hidden = hidden.float()
        vectors = [pool(hidden, attention_mask, mode, prompt_length=prompt_length) for mode in modes]
        vector = torch.cat(vectors, dim=-1)
        return torch.nn.functional.normalize(vector, dim=-1) if normalize else vector

    def _embed(self, output: dict[str, Any], modes: tuple[str, ...], normalize: bool) -> torch.Tensor:
        return self.embed(
            output["hidden"][0],
            output["attention_mask"][0],
            modes,
            normalize=normalize,
            prompt_length=output.get("prompt_length"),
        )


class FeatureExtractionPipeline(_EmbeddingPipeline):
    """Hidden states of the model's last layer. ``pooling="none"`` (default) gives one vector per token,
    nested as transformers does (``[[[...], ...]]``); a pooling mode (``mean``, ``cls``, ``max``,
    ``weightedmean``, ``lasttoken``, ``mean_sqrt_len_tokens``) gives one vector per input, and ``"auto"`` the
    model's own pooling (its ``1_Pooling/config.json``; mean without one). Pooled inputs follow the model's
    sentence-transformers files: truncated at ``max_seq_length``, lower-cased when ``do_lower_case``, and
    unit-length when the model has a Normalize module (``normalize=`` overrides). Other inputs are truncated
    at the model's own limit."""

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
            pre["pooled"] = post["pooling"] != "none"
        if normalize is not None:
            post["normalize"] = bool(normalize)
        if return_tensors is not None:
            post["return_tensors"] = bool(return_tensors)
        if truncation is not None:
            pre["truncation"] = bool(truncation)
        if max_length is not None:
            pre["max_length"] = int(max_length)
        return pre, {}, post

    def preprocess(
        self, text: str, truncation: bool = True, max_length: int | None = None, pooled: bool = False
    ) -> dict[str, Any]:
        return self._encode([text], truncation, max_length, pooled=pooled)[0]

    def preprocess_batch(
        self, texts: list[Any], truncation: bool = True, max_length: int | None = None, pooled: bool = False
    ) -> list[dict[str, Any]]:
        return self._encode(texts, truncation, max_length, pooled=pooled)

    def postprocess(
        self,
        output: dict[str, Any],
        pooling: str = "none",
        normalize: bool | None = None,
        return_tensors: bool = False,
    ) -> Any:
        if normalize is None:
            normalize = pooling != "none" and self.sentence_config.normalize
        vector = self._embed(output, self.pooling_modes(pooling), normalize)
        if pooling == "none":
            vector = vector.unsqueeze(0)  # (1, T, H), as transformers returns it
        return vector if return_tensors else vector.tolist()


class SentenceSimilarityPipeline(_EmbeddingPipeline):
    """Similarity of a source sentence to each candidate, as sentence-transformers scores them: embeddings
    pooled as the model's files say (mean without them), compared with the model's similarity function
    (``similarity_fn_name``, cosine by default).

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
        texts = [text for group in groups for text in group]
        encoded = iter(self._encode(texts, truncation, max_length, pooled=True))
        return [[next(encoded) for _ in group] for group in groups]

    def postprocess(self, outputs: list[dict[str, Any]], pooling: str = "auto") -> list[float]:
        modes = self.pooling_modes(pooling)
        normalize = self.sentence_config.normalize
        vectors = torch.stack([self._embed(out, modes, normalize) for out in outputs])
        return similarity_matrix(vectors[:1], vectors[1:], self.sentence_config.similarity_fn_name)[
            0
        ].tolist()
