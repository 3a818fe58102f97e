"""``text-generation``: continue a prompt, or answer a chat (messages rendered with the chat template)."""

from __future__ import annotations

from typing import Any

from xf_pipeline._common import split_rows
from xf_pipeline.base import Pipeline
from xf_pipeline.errors import PipelineInputError

__all__ = ["TextGenerationPipeline"]


def _is_chat(item: Any) -> bool:
    return (
        isinstance(item, (list, tuple))
        and bool(item)
        and all(isinstance(m, dict) and "role" in m for m in item)
    )


class TextGenerationPipeline(Pipeline):
    """Generate text after a prompt string, or after a chat: a list of ``{"role", "content"}`` messages.

    Each result is ``[{"generated_text": ...}]`` (one entry per ``num_return_sequences``). For a prompt the
    text is prompt + continuation (``return_full_text=False``: the continuation only); for a chat it is the
    messages plus the new assistant message. ``stop_sequence`` (a string or list) ends the text after its
    first occurrence. Every other keyword (``max_new_tokens``, ``do_sample``, ``temperature``, ``top_k``,
    ``top_p``, ...) goes to ``model.generate``. Batches are padded on the left."""

    task = "text-generation"

    def _is_single(self, inputs: Any) -> bool:
        return isinstance(inputs, str) or _is_chat(inputs)

    @property
    def padding_side(self) -> str:
        return "left"  # prompts must end where generation starts

    def _sanitize_parameters(
        self,
        return_full_text: bool | None = None,
        stop_sequence: str | list[str] | None = None,
        add_special_tokens: bool | None = None,
        skip_special_tokens: bool | None = None,
        **generate_kwargs: Any,
    ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        pre: dict[str, Any] = {}
        post: dict[str, Any] = {}
        if add_special_tokens is not None:
            pre["add_special_tokens"] = bool(add_special_tokens)
        if return_full_text is not None:
            post["return_full_text"] = bool(return_full_text)
        if skip_special_tokens is not None:
            post["skip_special_tokens"] = bool(skip_special_tokens)
        if stop_sequence is not None:
            stops = [stop_sequence] if isinstance(stop_sequence, str) else list(stop_sequence)
            post["stop_sequence"] = stops
            first_ids = []
            for stop in stops:
                ids = self.tokenizer(stop, add_special_tokens=False)["input_ids"]
                if len(ids) == 1:
                    first_ids.append(ids[0])
            if first_ids and len(first_ids) == len(stops):  # single-token stops end generation early
                eos = generate_kwargs.get("eos_token_id", self._eos_ids())
                generate_kwargs["eos_token_id"] = [*first_ids, *eos]
        return pre, generate_kwargs, post

    def _eos_ids(self) -> list[int]:
        config = getattr(self.model, "generation_config", None) or self.model.config
        eos = getattr(config, "eos_token_id", None)
        if eos is None:
            return []
        return list(eos) if isinstance(eos, (list, tuple)) else [eos]

    def preprocess(self, item: Any, add_special_tokens: bool = False) -> dict[str, Any]:
        return self.preprocess_batch([item], add_special_tokens)[0]

    def preprocess_batch(self, items: list[Any], add_special_tokens: bool = False) -> list[dict[str, Any]]:
        """Prompt strings in one tokenizer call, chats in one chat-template call."""
        for item in items:
            if not (_is_chat(item) or isinstance(item, str)):
                raise PipelineInputError(
                    f"{self.task} takes a prompt string or a chat (a list of {{'role', 'content'}} messages), "
                    f"got {type(item).__name__}.",
                    task=self.task,
                )
        inputs: list[Any] = [None] * len(items)
        prompts = [i for i, item in enumerate(items) if isinstance(item, str)]
        if prompts:
            encoded = self.tokenizer([items[i] for i in prompts], add_special_tokens=add_special_tokens)
            for i, row in zip(prompts, split_rows(encoded, ("input_ids", "attention_mask"))):
                inputs[i] = {**row, "prompt": items[i]}
        chats = [i for i, item in enumerate(items) if _is_chat(item)]
        if chats:
            encoded = self.tokenizer.apply_chat_template(
                [list(items[i]) for i in chats], add_generation_prompt=True, return_dict=True
            )
            for i, row in zip(chats, split_rows(encoded, ("input_ids", "attention_mask"))):
                inputs[i] = {**row, "prompt": items[i]}
        return inputs

    def _forward(self, batch: dict[str, Any], **generate_kwargs: Any) -> dict[str, Any]:
        input_ids = batch["input_ids"]
        generate_kwargs.setdefault("pad_token_id", self.pad_token_id)
        sequences = self.model.generate(
            input_ids=input_ids, attention_mask=batch["attention_mask"], **generate_kwargs
        )
        sequences = getattr(sequences, "sequences", sequences)
        new = sequences[:, input_ids.shape[1] :]
        rows = input_ids.shape[0]
        return {
            "new_tokens": new.reshape(rows, new.shape[0] // rows, new.shape[1]),
            "prompt": batch["prompt"],
        }

    def postprocess(
        self,
        output: dict[str, Any],
        return_full_text: bool = True,
        stop_sequence: list[str] | None = None,
        skip_special_tokens: bool = True,
    ) -> list[dict[str, Any]]:
        prompt = output["prompt"]
        results = []
        for tokens in output["new_tokens"][0].tolist():
            text = self.tokenizer.decode(tokens, skip_special_tokens=skip_special_tokens)
            ends = [text.find(stop) + len(stop) for stop in stop_sequence or [] if stop in text]
            if ends:
                text = text[: min(ends)]  # the first stop sequence ends the text, itself included
            if _is_chat(prompt):
                generated: Any = (
                    [*prompt, {"role": "assistant", "content": text}] if return_full_text else text
                )
            else:
                generated = prompt + text if return_full_text else text
            results.append({"generated_text": generated})
        return results
