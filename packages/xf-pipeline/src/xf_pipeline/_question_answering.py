"""``question-answering`` (alias ``qa``): extractive answers, as transformers 4 gave them (removed in 5).

The context is split into windows of ``max_seq_len`` tokens overlapping by ``doc_stride``; each window
proposes spans, the best across windows win. Answers are character spans of the original context.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from xf_pipeline._common import output_field
from xf_pipeline._math import select_spans
from xf_pipeline.base import Pipeline
from xf_pipeline.errors import PipelineInputError, PipelineParameterError

__all__ = ["QuestionAnsweringPipeline"]


class QuestionAnsweringPipeline(Pipeline):
    """Answer a question from a context: input ``{"question": ..., "context": ...}`` (or ``question=``,
    ``context=`` keywords). Result ``{"score", "start", "end", "answer"}``, or a list of the ``top_k`` best.
    ``handle_impossible_answer=True`` allows the empty answer when the model prefers it. Options:
    ``max_answer_len`` (15 tokens), ``max_seq_len`` (384), ``doc_stride`` (128), ``align_to_words`` (True:
    answers start and end on word boundaries)."""

    task = "question-answering"
    chunked = True
    per_token_outputs: ClassVar[frozenset[str]] = frozenset({"start_logits", "end_logits"})

    def _sanitize_parameters(
        self,
        top_k: int | None = None,
        handle_impossible_answer: bool | None = None,
        max_answer_len: int | None = None,
        max_seq_len: int | None = None,
        doc_stride: int | None = None,
        align_to_words: bool | None = None,
    ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        pre: dict[str, Any] = {}
        post: dict[str, Any] = {}
        for name, value in (("top_k", top_k), ("max_answer_len", max_answer_len)):
            if value is not None:
                if int(value) < 1:
                    raise PipelineParameterError(
                        f"{self.task}: {name} must be >= 1, got {value}.", task=self.task, parameter=name
                    )
                post[name] = int(value)
        if handle_impossible_answer is not None:
            post["handle_impossible_answer"] = bool(handle_impossible_answer)
        for name, value in (("max_seq_len", max_seq_len), ("doc_stride", doc_stride)):
            if value is not None:
                pre[name] = int(value)
        if align_to_words is not None:
            post["align_to_words"] = bool(align_to_words)
        return pre, {}, post

    def __call__(
        self, inputs: Any = None, *, question: Any = None, context: Any = None, **kwargs: Any
    ) -> Any:
        if inputs is None:
            if question is None or context is None:
                raise PipelineInputError(
                    f"{self.task} needs a question and a context: pipe(question=..., context=...).",
                    task=self.task,
                )
            if isinstance(question, list):
                inputs = [{"question": q, "context": c} for q, c in zip(question, context, strict=True)]
            else:
                inputs = {"question": question, "context": context}
        return super().__call__(inputs, **kwargs)

    def _question_and_context(self, item: Any) -> tuple[str, str]:
        if (
            not isinstance(item, dict)
            or not isinstance(item.get("question"), str)
            or not isinstance(item.get("context"), str)
        ):
            raise PipelineInputError(
                f"{self.task} takes {{'question': str, 'context': str}}, got {item!r:.80}.", task=self.task
            )
        if not item["question"].strip() or not item["context"].strip():
            raise PipelineInputError(
                f"{self.task}: the question and the context must not be empty.", task=self.task
            )
        return item["question"], item["context"]

    def preprocess(
        self,
        item: dict[str, str],
        max_seq_len: int = 384,
        doc_stride: int = 128,
    ) -> list[dict[str, Any]]:
        return self.preprocess_batch([item], max_seq_len, doc_stride)[0]

    def preprocess_batch(
        self,
        items: list[Any],
        max_seq_len: int = 384,
        doc_stride: int = 128,
    ) -> list[list[dict[str, Any]]]:
        """All (question, context) pairs in one tokenizer call; each item's windows are its chunks."""
        pairs = [self._question_and_context(item) for item in items]
        max_seq_len = min(
            max_seq_len, getattr(self.tokenizer, "model_max_length", max_seq_len) or max_seq_len
        )
        doc_stride = min(doc_stride, max_seq_len // 2)
        encoded = self.tokenizer(
            [question for question, _ in pairs],
            text_pair=[context for _, context in pairs],
            truncation="only_second",
            max_length=max_seq_len,
            stride=doc_stride,
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
        )
        cls_id = getattr(self.tokenizer, "cls_token_id", None)
        chunks: list[list[dict[str, Any]]] = [[] for _ in items]
        for i, ids in enumerate(encoded["input_ids"]):
            owner = encoded["overflow_to_sample_mapping"][i]
            sequence_ids = encoded.sequence_ids(i)
            # 1 = not part of the context (question, special tokens), except the CLS token
            p_mask = [0 if s == 1 or token == cls_id else 1 for s, token in zip(sequence_ids, ids)]
            chunk = {
                k: torch.tensor([encoded[k][i]])
                for k in ("input_ids", "attention_mask", "token_type_ids")
                if k in encoded
            }
            chunk["p_mask"] = torch.tensor([p_mask])
            chunk["offset_mapping"] = torch.tensor([encoded["offset_mapping"][i]])
            chunk["context"] = pairs[owner][1]
            words = encoded.word_ids(i)
            chunk["word_ids"] = [w if s == 1 else None for w, s in zip(words, sequence_ids)]
            chunks[owner].append(chunk)
        return chunks

    def _forward(self, batch: dict[str, Any]) -> dict[str, Any]:
        output = self.model(**self.model_inputs(batch))
        return {
            **batch,
            "start_logits": output_field(output, "start_logits"),
            "end_logits": output_field(output, "end_logits"),
        }

    def postprocess(
        self,
        outputs: list[dict[str, Any]],
        top_k: int = 1,
        handle_impossible_answer: bool = False,
        max_answer_len: int = 15,
        align_to_words: bool = True,
    ) -> dict[str, Any] | list[dict[str, Any]]:
        min_null_score = 1e6
        answers = []
        for out in outputs:
            spans, min_null_score = select_spans(
                out["start_logits"][0],
                out["end_logits"][0],
                p_mask=out["p_mask"][0],
                attention_mask=out["attention_mask"][0] if "attention_mask" in out else None,
                top_k=top_k,
                max_answer_len=max_answer_len,
                handle_impossible_answer=handle_impossible_answer,
                min_null_score=min_null_score,
            )
            offsets = out["offset_mapping"][0].tolist()
            words = out["word_ids"]
            for start, end, score in spans:
                first, last = offsets[start][0], offsets[end][1]
                if align_to_words and words[start] is not None and words[end] is not None:
                    first = min(o[0] for o, w in zip(offsets, words) if w == words[start])
                    last = max(o[1] for o, w in zip(offsets, words) if w == words[end])
                answers.append(
                    {"score": score, "start": first, "end": last, "answer": out["context"][first:last]}
                )
        if handle_impossible_answer:
            answers.append({"score": min_null_score, "start": 0, "end": 0, "answer": ""})
        answers = sorted(answers, key=lambda a: a["score"], reverse=True)[:top_k]
        if top_k == 1:
            return answers[0] if answers else {"score": 0.0, "start": 0, "end": 0, "answer": ""}
        return answers
