"""Streamers: receive token ids from ``generate`` as they are made and turn them into text.

``generate`` calls ``streamer.put(ids)`` once with the prompt (``(1, L)``), then once per new token, then
``streamer.end()``. :class:`TextStreamer` writes text to a file (stdout by default) as soon as it is stable;
:class:`TextIteratorStreamer` hands it to another thread through a queue. The pieces always add up to
exactly ``tokenizer.decode(new_tokens, **decode_kwargs)`` (plus the prompt unless ``skip_prompt``).
"""

from __future__ import annotations

import sys
import unicodedata
from queue import Queue
from typing import Any, TextIO

__all__ = ["BaseStreamer", "TextIteratorStreamer", "TextStreamer"]


class BaseStreamer:
    """What ``generate`` calls: ``put(token_ids)`` for each chunk of tokens, ``end()`` when done."""

    def put(self, value: Any) -> None:
        raise NotImplementedError(f"{type(self).__name__} must implement put(token_ids).")

    def end(self) -> None:
        raise NotImplementedError(f"{type(self).__name__} must implement end().")


def _is_cjk(char: str) -> bool:
    cp = ord(char)
    return (
        0x4E00 <= cp <= 0x9FFF
        or 0x3400 <= cp <= 0x4DBF
        or 0x20000 <= cp <= 0x2A6DF
        or 0x2A700 <= cp <= 0x2CEAF
        or 0xF900 <= cp <= 0xFAFF
        or 0x2F800 <= cp <= 0x2FA1F
    )


class TextStreamer(BaseStreamer):
    """Write the text to ``file`` (stdout) as it is generated, a word at a time (batch size 1 only).

    Text is held back while it may still change: a trailing symbol (a partial UTF-8 character, the start of
    a markup tag) waits for the next space. ``decode_kwargs`` go to ``tokenizer.decode`` (e.g.
    ``skip_special_tokens=True``).
    """

    def __init__(
        self, tokenizer: Any, skip_prompt: bool = False, *, file: TextIO | None = None, **decode_kwargs: Any
    ):
        self.tokenizer = tokenizer
        self.skip_prompt = skip_prompt
        self.decode_kwargs = decode_kwargs
        self.file = file
        self._ids: list[int] = []
        self._printed = 0
        self._next_is_prompt = True

    def put(self, value: Any) -> None:
        if value.dim() > 1:
            if value.shape[0] > 1:
                raise ValueError(
                    f"{type(self).__name__} streams one sequence; got a batch of {value.shape[0]}."
                )
            value = value[0]
        if self.skip_prompt and self._next_is_prompt:
            self._next_is_prompt = False
            return
        self._next_is_prompt = False
        self._ids.extend(value.tolist())
        text = self.tokenizer.decode(self._ids, **self.decode_kwargs)
        pending = text[self._printed :]
        if not pending:
            return
        # Complete lines, CJK characters and plain words/spaces are final; a trailing symbol (maybe a
        # partial character or the start of markup) waits for the next space.
        settled = all(c.isspace() or unicodedata.category(c)[0] in "LMN" for c in pending)
        if text.endswith("\n") or _is_cjk(text[-1]) or settled:
            stable = len(text)
        else:
            stable = max(self._printed, text.rfind(" ") + 1)
        if stable > self._printed:
            self.on_finalized_text(text[self._printed : stable])
            self._printed = stable

    def end(self) -> None:
        text = self.tokenizer.decode(self._ids, **self.decode_kwargs) if self._ids else ""
        rest = text[self._printed :]
        self._ids, self._printed, self._next_is_prompt = [], 0, True
        self.on_finalized_text(rest, stream_end=True)

    def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
        """Called with each stable piece of text; override to send it elsewhere."""
        out = self.file if self.file is not None else sys.stdout
        out.write(text + ("\n" if stream_end else ""))
        out.flush()


class TextIteratorStreamer(TextStreamer):
    """Iterate over the text pieces in one thread while ``generate`` runs in another::

        streamer = TextIteratorStreamer(tokenizer, skip_prompt=True)
        Thread(target=model.generate, kwargs=dict(inputs=ids, streamer=streamer, max_new_tokens=50)).start()
        for piece in streamer:
            ...

    ``timeout`` (seconds) bounds each wait for the next piece (``queue.Empty`` is raised after it).
    """

    def __init__(
        self, tokenizer: Any, skip_prompt: bool = False, timeout: float | None = None, **decode_kwargs: Any
    ):
        super().__init__(tokenizer, skip_prompt, **decode_kwargs)
        self.text_queue: Queue[str | None] = Queue()
        self.stop_signal: None = None
        self.timeout = timeout

    def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
        if text:
            self.text_queue.put(text, timeout=self.timeout)
        if stream_end:
            self.text_queue.put(self.stop_signal, timeout=self.timeout)

    def __iter__(self) -> TextIteratorStreamer:
        return self

    def __next__(self) -> str:
        value = self.text_queue.get(timeout=self.timeout)
        if value is self.stop_signal:
            raise StopIteration
        return value
