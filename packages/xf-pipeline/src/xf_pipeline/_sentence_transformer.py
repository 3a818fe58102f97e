"""The embedding API sentence-transformers users know: ``SentenceTransformer(model).encode(texts)``,
``similarity(a, b)`` and ``semantic_search(queries, corpus, top_k)``.

It is a thin object over the ``feature-extraction`` pipeline: the same tokenizing (the model's
``max_seq_length``, ``do_lower_case``, prompts), the same batching and model call, the same pooling and
normalization (read from the model's sentence-transformers files). ``encode`` sorts the texts by length so
each batch holds texts of similar length (little padding), pools each padded batch at once and returns the
vectors in input order; a progress bar shows for long inputs (``XF_DISABLE_PROGRESS=1`` silences it).

``backend="onnx"`` runs the transformer through onnxruntime instead of torch (an ONNX file exported by
``xf export onnx``, or exported on first use into the model's cache); tokenizing and pooling stay the same.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal

import torch

from xf_core.errors import XfValueError
from xf_core.logging import progress_bar
from xf_pipeline._feature_extraction import _MODEL_KEYS, FeatureExtractionPipeline, similarity_matrix

if TYPE_CHECKING:
    import numpy as np

__all__ = ["SentenceTransformer", "semantic_search"]

_PROGRESS_FROM = 256  # show_progress_bar=None: a bar from this many texts on


def semantic_search(
    query_embeddings: torch.Tensor | np.ndarray,
    corpus_embeddings: torch.Tensor | np.ndarray,
    *,
    top_k: int = 10,
    score_function: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    query_chunk_size: int = 100,
) -> list[list[dict[str, int | float]]]:
    """For each query, the ``top_k`` corpus entries by score, best first, as sentence-transformers'
    ``util.semantic_search``: ``[[{"corpus_id": int, "score": float}, ...], ...]``. ``score_function``
    maps ``(Q, H)`` x ``(C, H)`` to ``(Q, C)`` scores (default: cosine similarity)."""
    queries = torch.as_tensor(query_embeddings)
    corpus = torch.as_tensor(corpus_embeddings)
    if queries.dim() == 1:
        queries = queries.unsqueeze(0)
    if corpus.dim() != 2 or queries.dim() != 2 or queries.shape[-1] != corpus.shape[-1]:
        raise XfValueError(
            f"semantic_search needs (Q, H) queries and (C, H) corpus embeddings of the same width; got "
            f"{tuple(queries.shape)} and {tuple(corpus.shape)}."
        )
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise XfValueError(f"top_k must be an int >= 1 (results per query), got {top_k!r}.")
    score = score_function or similarity_matrix
    corpus = corpus.to(queries.device)
    hits: list[list[dict[str, int | float]]] = []
    k = min(top_k, corpus.shape[0])
    for start in range(0, queries.shape[0], query_chunk_size):
        scores = score(queries[start : start + query_chunk_size], corpus)  # (q, C)
        values, indices = scores.topk(k, dim=1)
        for row_values, row_indices in zip(values.tolist(), indices.tolist()):
            hits.append([{"corpus_id": i, "score": v} for v, i in zip(row_values, row_indices)])
    return hits


class SentenceTransformer:
    """A sentence-embedding model from a local directory or Hub repo id (default: all-MiniLM-L6-v2, offline
    with the ``embedded-model`` extra), embedding as sentence-transformers does with the model's own files.

    ``device`` defaults to the first CUDA device when there is one, else the CPU. ``backend="onnx"`` runs
    the model with onnxruntime (``pip install 'xf-pipeline[onnx]'``). The Hub keywords (``revision``,
    ``token``, ``cache_dir``, ``local_files_only``) serve model, tokenizer and sentence-transformers files.
    """

    def __init__(
        self,
        model_name_or_path: str | os.PathLike[str] | None = None,
        *,
        device: str | torch.device | int | None = None,
        backend: Literal["torch", "onnx"] = "torch",
        dtype: str | torch.dtype | None = None,
        revision: str | None = None,
        token: str | bool | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        local_files_only: bool = False,
    ) -> None:
        from xf_pipeline._factory import pipeline

        if backend not in ("torch", "onnx"):
            raise XfValueError(f"backend must be 'torch' or 'onnx', got {backend!r}.")
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        model_kwargs: dict[str, Any] = {"local_files_only": local_files_only}
        if cache_dir is not None:
            model_kwargs["cache_dir"] = cache_dir
        pipe = pipeline(
            "feature-extraction",
            model_name_or_path,
            device=device,
            dtype=dtype,
            revision=revision,
            token=token,
            model_kwargs=model_kwargs,
        )
        assert isinstance(pipe, FeatureExtractionPipeline)
        self.pipeline: FeatureExtractionPipeline = pipe
        config = pipe.sentence_config
        config.check_supported()
        self.backend = backend
        self._onnx: Any = None
        if backend == "onnx":
            from xf_pipeline._onnx import OnnxEncoder

            self._onnx = OnnxEncoder.for_model(pipe.model, pipe.tokenizer, cache_dir=cache_dir)
        else:  # an encoder for inference: q/k/v as one matmul (the state dict and modules stay as they are)
            fuse = getattr(pipe.model, "fuse_projections", None)
            if fuse is not None:
                fuse()
        self.max_seq_length: int | None = pipe.max_seq_length()
        self.prompts: dict[str, str] = dict(config.prompts)
        self.default_prompt_name: str | None = config.default_prompt_name
        self.similarity_fn_name: str = config.similarity_fn_name

    # -- what sentence-transformers exposes ---------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return self.pipeline.device

    @property
    def tokenizer(self) -> Any:
        return self.pipeline.tokenizer

    @property
    def model(self) -> Any:
        return self.pipeline.model

    def get_sentence_embedding_dimension(self) -> int:
        """The width of the vectors ``encode`` returns."""
        hidden = int(self.pipeline.model.config.hidden_size)
        return hidden * len(self.pipeline.sentence_config.pooling)

    def encode(
        self,
        sentences: str | Sequence[str],
        *,
        prompt_name: str | None = None,
        prompt: str | None = None,
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        convert_to_numpy: bool = True,
        convert_to_tensor: bool = False,
        convert_to: Literal["numpy", "torch", "list"] | None = None,
        normalize_embeddings: bool = False,
    ) -> Any:
        """Embed ``sentences``: a ``(N, D)`` float32 array for a list (``(D,)`` for one string).

        ``convert_to="torch"`` (or ``convert_to_tensor=True``) gives a tensor, ``"list"`` (or
        ``convert_to_numpy=False``) a list of tensors. ``prompt`` (or the model's prompt named
        ``prompt_name``, else its ``default_prompt_name``) is prepended to every text.
        ``normalize_embeddings=True`` scales vectors to unit length (models with a Normalize module always
        are). A bar shows progress from 256 texts on, unless ``show_progress_bar=False`` or
        ``XF_DISABLE_PROGRESS=1``.
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise XfValueError(f"batch_size must be an int >= 1, got {batch_size!r}.")
        single = isinstance(sentences, str)
        texts = [sentences] if single else list(sentences)
        kind = convert_to or ("torch" if convert_to_tensor else "numpy" if convert_to_numpy else "list")
        if kind not in ("numpy", "torch", "list"):
            raise XfValueError(f"convert_to must be 'numpy', 'torch' or 'list', got {convert_to!r}.")
        vectors = self._embed_all(texts, self._prompt(prompt_name, prompt), batch_size, show_progress_bar)
        vectors = torch.nn.functional.normalize(vectors, dim=-1) if normalize_embeddings else vectors
        if single:
            vectors = vectors[0]
        if kind == "torch":
            return vectors
        if kind == "list":
            return list(vectors) if not single else vectors
        return vectors.cpu().numpy()

    def similarity(self, a: Any, b: Any) -> torch.Tensor:
        """``(N, M)`` scores of embeddings ``a`` against ``b`` with the model's ``similarity_fn_name``."""
        return similarity_matrix(_matrix(a), _matrix(b), self.similarity_fn_name)

    def semantic_search(
        self, queries: str | Sequence[str], corpus: Sequence[str], *, top_k: int = 10, batch_size: int = 32
    ) -> list[list[dict[str, int | float]]]:
        """Embed ``queries`` and ``corpus`` and return, per query, the ``top_k`` corpus entries by the
        model's similarity, best first: ``[[{"corpus_id": int, "score": float}, ...], ...]``."""
        query_vectors = self.encode(queries, batch_size=batch_size, convert_to="torch")
        corpus_vectors = self.encode(list(corpus), batch_size=batch_size, convert_to="torch")
        return semantic_search(query_vectors, corpus_vectors, top_k=top_k, score_function=self.similarity)

    # -- machinery ----------------------------------------------------------------------------------
    def _prompt(self, prompt_name: str | None, prompt: str | None) -> str | None:
        if prompt is not None:
            return prompt
        name = prompt_name or self.default_prompt_name
        if name is None:
            return None
        if name not in self.prompts:
            raise XfValueError(
                f"prompt_name={name!r} is not one of the model's prompts ({', '.join(self.prompts) or 'none'}); "
                "its config_sentence_transformers.json lists them."
            )
        return self.prompts[name]

    def _embed_all(
        self, texts: list[str], prompt: str | None, batch_size: int, show_progress_bar: bool | None
    ) -> torch.Tensor:
        pipe = self.pipeline
        modes = pipe.pooling_modes("auto")
        normalize = pipe.sentence_config.normalize
        if not texts:
            return torch.empty((0, self.get_sentence_embedding_dimension()))
        encoded, prompt_length = pipe.tokenize(texts, True, self.max_seq_length, pooled=True, prompt=prompt)
        keys = [key for key in _MODEL_KEYS if key in encoded]
        ids = encoded["input_ids"]
        order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))  # longest first
        batches = token_budget_batches([len(ids[i]) for i in order], batch_size)
        show = len(texts) >= _PROGRESS_FROM if show_progress_bar is None else show_progress_bar
        fills = {"input_ids": pipe.pad_token_id}
        left = pipe.padding_side == "left"
        parts: list[torch.Tensor] = []
        for start, stop in progress_bar(
            batches, desc="Batches", unit="batch", disable=None if show else True
        ):
            picked = order[start:stop]
            batch = {key: _pad([encoded[key][i] for i in picked], fills.get(key, 0), left) for key in keys}
            with torch.inference_mode():
                if self._onnx is not None:
                    hidden = self._onnx(pipe.model_inputs(batch))
                    mask = batch["attention_mask"]
                else:
                    batch = {k: v.to(pipe.device) for k, v in batch.items()}
                    output = pipe._forward(batch)
                    hidden, mask = output["hidden"], output["attention_mask"]
                parts.append(
                    pipe.embed(hidden, mask, modes, normalize=normalize, prompt_length=prompt_length)
                )
        vectors = torch.cat(parts)  # in `order`
        inverse = torch.empty(len(order), dtype=torch.long)
        inverse[torch.tensor(order)] = torch.arange(len(order))
        return vectors[inverse.to(vectors.device)]

    def __repr__(self) -> str:
        config = self.pipeline.sentence_config
        return (
            f"SentenceTransformer(model={config.source or type(self.model).__name__!r}, "
            f"pooling={'+'.join(config.pooling)}, normalize={config.normalize}, "
            f"max_seq_length={self.max_seq_length}, backend={self.backend!r}, device={self.device})"
        )


def token_budget_batches(lengths: Sequence[int], batch_size: int) -> list[tuple[int, int]]:
    """``(start, stop)`` runs of texts sorted longest first, each padded to its first text's length and
    holding at most ``batch_size`` x the longest text's tokens: the first batch has ``batch_size`` texts
    (the peak memory ``batch_size`` asks for), later ones of shorter texts hold more, so the model runs
    fewer, larger batches of the same padded size."""
    if not lengths:
        return []
    budget = batch_size * max(lengths[0], 1)
    runs: list[tuple[int, int]] = []
    start = 0
    while start < len(lengths):
        stop = min(len(lengths), start + max(batch_size, budget // max(lengths[start], 1)))
        runs.append((start, stop))
        start = stop
    return runs


def _pad(rows: list[list[int]], fill: int, left: bool) -> torch.Tensor:
    """Lists of ids -> one ``(B, T)`` int64 tensor, padded with ``fill`` on the tokenizer's side."""
    width = max(len(row) for row in rows)
    if left:
        return torch.tensor([[fill] * (width - len(row)) + row for row in rows], dtype=torch.long)
    return torch.tensor([row + [fill] * (width - len(row)) for row in rows], dtype=torch.long)


def _matrix(value: Any) -> torch.Tensor:
    tensor = torch.as_tensor(value) if not isinstance(value, list) or not value else _stack(value)
    return tensor.unsqueeze(0) if tensor.dim() == 1 else tensor


def _stack(values: list[Any]) -> torch.Tensor:
    if isinstance(values[0], torch.Tensor):
        return torch.stack(values)
    return torch.as_tensor(values)
