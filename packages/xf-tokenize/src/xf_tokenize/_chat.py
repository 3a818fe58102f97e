"""Chat templates: Jinja2 in an immutable sandbox, with the helpers transformers gives templates.

Templates come from the Hub and are untrusted code. They render in ``ImmutableSandboxedEnvironment``
(``trim_blocks``, ``lstrip_blocks``, ``loopcontrols``, the ``{% generation %}`` tag); reaching for ``__class__``, ``__globals__`` or
mutating inputs raises :class:`ChatTemplateError`. Globals: ``raise_exception``, ``strftime_now``; the
``tojson`` filter keeps non-ASCII text and does not HTML-escape, as transformers' does.

Rendering has a budget, so a hostile template cannot hang or exhaust the process: at most
:data:`MAX_RENDER_SECONDS` per conversation (a watchdog interrupts the rendering thread) and at most
:data:`MAX_RENDER_CHARS` of output; ``*``/``+``/``**`` and filter or method calls that would build something
larger are refused before they allocate. Past either limit :class:`ChatTemplateError` says which and how to
raise it (``render(..., max_seconds=, max_chars=)`` or these module constants).
"""

from __future__ import annotations

import ctypes
import dataclasses
import functools
import json
import threading
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any, ClassVar

from xf_core.lazy import require
from xf_tokenize.errors import ChatTemplateError

if TYPE_CHECKING:
    from xf_tokenize._batch import TensorType
    from xf_tokenize._strategies import Padding, Truncation

__all__ = ["ChatTemplateMixin", "render", "select_template", "spans_to_mask"]

_CONTINUE_TAG = "CONTINUE_FINAL_MESSAGE_TAG "
# (rendered blocks so far, generation spans) while a conversation renders; None otherwise.
_GENERATION_TRACKING: ContextVar[tuple[list[str], list[tuple[int, int]]] | None] = ContextVar(
    "xf_chat_generation_tracking", default=None
)
_REASONING_FIELDS = ("reasoning_content", "thinking", "reasoning")
MAX_RENDER_SECONDS = 10.0
MAX_RENDER_CHARS = 10_000_000
# The size limit of the conversation being rendered; read by the sandbox's operator and call checks.
_MAX_CHARS: ContextVar[int] = ContextVar("xf_chat_max_chars", default=MAX_RENDER_CHARS)


class _RenderTimeout(BaseException):
    """Raised inside the rendering thread by the watchdog (BaseException: templates cannot catch it)."""


class _Budget(Exception):
    """A template operation would exceed the output-size budget."""


def _check_size(n: int, what: str) -> None:
    limit = _MAX_CHARS.get()
    if n > limit:
        raise _Budget(f"{what} would build {n:,} items, over the {limit:,}-character budget")


def _sized(value: Any) -> int:
    return len(value) if isinstance(value, (str, bytes, list, tuple)) else 0


# Filters and str methods whose numeric argument is an output width or count.
_SIZING = frozenset(
    {"center", "ljust", "rjust", "zfill", "expandtabs", "indent", "wordwrap", "batch", "slice"}
)


def _check_args(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Refuse a sizing call whose numeric argument alone asks for more than the budget (``center(10**9)``)."""
    if name not in _SIZING:
        return
    for value in (*args, *kwargs.values()):
        if isinstance(value, (int, float)) and not isinstance(value, bool) and abs(value) > _MAX_CHARS.get():
            _check_size(int(abs(value)), f"{name}({value})")


def _guard_filter(name: str, fn: Any) -> Any:
    @functools.wraps(fn)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        _check_args(name, args[1:], kwargs)
        return fn(*args, **kwargs)

    return guarded


def select_template(
    own: str | dict[str, str] | None, chat_template: str | None, *, tools: list[Any] | None = None
) -> str:
    """The template to use: a name in ``own`` (a dict of templates), an explicit template, or the default."""
    if isinstance(own, dict):
        if chat_template is not None and chat_template in own:
            return own[chat_template]
        if chat_template is not None:
            return chat_template
        if tools is not None and "tool_use" in own:
            return own["tool_use"]
        if "default" in own:
            return own["default"]
        raise ChatTemplateError(
            f"this tokenizer has several chat templates ({', '.join(sorted(own))}) and none is 'default'; "
            "pass chat_template=<name> or a template string."
        )
    if chat_template is not None:
        return chat_template
    if own is None:
        raise ChatTemplateError(
            "this tokenizer has no chat template (no chat_template.jinja, chat_template.json or "
            "'chat_template' in tokenizer_config.json); pass chat_template='...' or set tokenizer.chat_template."
        )
    return own


@lru_cache(maxsize=16)
def _compile(template: str) -> Any:
    jinja2 = require("jinja2", purpose="chat templates")
    from jinja2 import nodes
    from jinja2.ext import Extension, loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise jinja2.exceptions.TemplateError(message)

    def tojson(
        x: Any, ensure_ascii: bool = False, indent: int | None = None, separators=None, sort_keys=False
    ) -> str:
        return json.dumps(
            x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
        )

    def strftime_now(fmt: str) -> str:
        return datetime.now().strftime(fmt)

    class Sandbox(ImmutableSandboxedEnvironment):
        intercepted_binops = frozenset({"*", "+", "**"})

        # Jinja's sandbox answers an unsafe attribute with an Undefined that prints as ""; refuse it outright.
        def unsafe_undefined(self, obj: Any, attribute: str) -> Any:
            raise jinja2.exceptions.SecurityError(
                f"access to attribute {attribute!r} of a {type(obj).__name__} object is unsafe"
            )

        def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
            if operator == "*":
                for seq, n in ((left, right), (right, left)):
                    if _sized(seq) and isinstance(n, int):
                        _check_size(_sized(seq) * n, f"{type(seq).__name__} * {n}")
            elif operator == "+":
                _check_size(_sized(left) + _sized(right), "+")
            elif operator == "**" and isinstance(right, (int, float)) and abs(right) > 1024:
                _check_size(_MAX_CHARS.get() + 1, f"** {right}")
            return super().call_binop(context, operator, left, right)

        def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
            _check_args(getattr(__obj, "__name__", ""), args, kwargs)
            return super().call(__context, __obj, *args, **kwargs)

    class Namespace(jinja2.utils.Namespace):
        # Namespaces reject underscore names, so a template cannot plant dunder attributes.
        def __init__(*args: Any, **kwargs: Any) -> None:
            self, args = args[0], args[1:]
            attrs = dict(*args, **kwargs)
            for name in attrs:
                Namespace._check(name)
            jinja2.utils.Namespace.__init__(self, attrs)

        def __setitem__(self, name: str, value: Any) -> None:
            Namespace._check(name)
            jinja2.utils.Namespace.__setitem__(self, name, value)

        @staticmethod
        def _check(name: Any) -> None:
            if isinstance(name, str) and name.startswith("_"):
                raise jinja2.exceptions.SecurityError(
                    f"a namespace attribute may not start with '_': {name!r}"
                )

    class Generation(Extension):
        # `{% generation %}...{% endgeneration %}` marks assistant text; it renders its body and records its span.
        tags: ClassVar[set[str]] = {"generation"}

        def parse(self, parser: Any) -> Any:
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
            return nodes.CallBlock(self.call_method("_render", []), [], [], body).set_lineno(lineno)

        def _render(self, caller: Any) -> str:
            text = caller()
            tracking = _GENERATION_TRACKING.get()
            if tracking is not None:  # rendering through `generate`: the blocks so far precede this span
                blocks, spans = tracking
                start = sum(len(block) for block in blocks)
                spans.append((start, start + len(text)))
            return text

    env = Sandbox(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols, Generation])
    env.globals["namespace"] = Namespace
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    env.filters = {name: _guard_filter(name, fn) for name, fn in env.filters.items()}
    try:
        return env.from_string(template)
    except jinja2.exceptions.TemplateSyntaxError as e:
        raise ChatTemplateError(f"the chat template does not parse: {e.message} (line {e.lineno})") from e


def _plain(value: Any) -> Any:
    """Rebuild inputs from plain JSON types, so templates see no objects with dangerous methods."""
    if value is None or type(value) in (str, int, float, bool):
        return value
    if isinstance(value, (str, int, float)):
        return type(value).__mro__[-2](value)  # a subclass (enum, numpy scalar) back to str/int/float
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if callable(getattr(value, "model_dump", None)):
        return _plain(value.model_dump())
    return f"<{type(value).__name__}>"


def render(
    template: str,
    conversations: Sequence[Any],
    *,
    tools: list[Any] | None = None,
    documents: list[dict[str, Any]] | None = None,
    add_generation_prompt: bool = False,
    continue_final_message: bool | str = False,
    variables: Mapping[str, Any] | None = None,
    max_seconds: float | None = None,
    max_chars: int | None = None,
) -> tuple[list[str], list[list[tuple[int, int]]]]:
    """Render each conversation; ``variables`` (special tokens, user kwargs) are passed to the template.

    Returns the texts and, per text, the character spans the template wrapped in ``{% generation %}``.
    Each conversation renders within ``max_seconds`` and ``max_chars`` (default :data:`MAX_RENDER_SECONDS`,
    :data:`MAX_RENDER_CHARS`).
    """
    max_seconds = MAX_RENDER_SECONDS if max_seconds is None else max_seconds
    max_chars = MAX_RENDER_CHARS if max_chars is None else max_chars
    jinja2 = require("jinja2", purpose="chat templates")
    from jinja2.exceptions import SecurityError

    if continue_final_message and add_generation_prompt:
        raise ChatTemplateError(
            "continue_final_message and add_generation_prompt exclude each other: the first continues the last "
            "message, the second opens a new assistant message. Pass only one."
        )
    if tools is not None:
        from xf_tokenize._tools import function_schema

        schemas = []
        for tool in tools:
            if isinstance(tool, Mapping):
                schemas.append(tool)
            elif callable(tool):
                schemas.append(function_schema(tool))
            else:
                raise ChatTemplateError(
                    f"tools must be JSON schemas (dicts) or Python functions; got {type(tool).__name__}"
                )
        tools = schemas
    if documents is not None:
        for document in documents:
            if not isinstance(document, Mapping):
                raise ChatTemplateError("documents must be a list of dicts with 'title' and 'text' keys")
    compiled = _compile(template)
    extra = _plain(dict(variables or {}))
    rendered: list[str] = []
    all_spans: list[list[tuple[int, int]]] = []
    for conversation in conversations:
        messages = _plain(getattr(conversation, "messages", conversation))
        if not messages:
            raise ChatTemplateError("cannot apply a chat template to an empty conversation")
        for message in messages:
            if not isinstance(message, dict):
                raise ChatTemplateError(f"chat messages must be dicts, got {message!r}")
        messages = [_alias_reasoning(m) for m in messages]
        field = None
        final = None
        if continue_final_message:
            field = continue_final_message if isinstance(continue_final_message, str) else "content"
            final = messages[-1].get(field)
            if final is None:
                raise ChatTemplateError(
                    f'continue_final_message is set but the last message has no "{field}"'
                )
            if isinstance(final, list):
                for block in reversed(final):
                    if "text" in block:
                        final = block["text"]
                        block["text"] = block["text"] + _CONTINUE_TAG
                        break
                else:
                    raise ChatTemplateError("continue_final_message is set but the last message has no text")
            else:
                messages[-1][field] = final + _CONTINUE_TAG
        blocks: list[str] = []
        spans: list[tuple[int, int]] = []
        token = _GENERATION_TRACKING.set((blocks, spans))
        size_token = _MAX_CHARS.set(max_chars)
        watchdog = _Watchdog(max_seconds)
        try:
            with watchdog:
                size = 0
                for block in compiled.generate(
                    messages=messages,
                    tools=_plain(tools),
                    documents=_plain(documents),
                    add_generation_prompt=add_generation_prompt,
                    **extra,
                ):
                    size += len(block)
                    _check_size(size, "the rendered text")
                    blocks.append(block)
            text = "".join(blocks)
        except _RenderTimeout as e:
            raise ChatTemplateError(
                f"the chat template did not finish rendering within {max_seconds:g} s; it is refused. Use a "
                "trusted template, or raise the limit with xf_tokenize._chat.MAX_RENDER_SECONDS."
            ) from e
        except _Budget as e:
            raise ChatTemplateError(
                f"the chat template is refused: {e}. Use a trusted template, or raise the limit with "
                "xf_tokenize._chat.MAX_RENDER_CHARS."
            ) from e
        except SecurityError as e:
            raise ChatTemplateError(
                f"the chat template tried to leave its sandbox ({e}); it is refused. Use a trusted template."
            ) from e
        except jinja2.exceptions.TemplateError as e:
            raise ChatTemplateError(f"the chat template raised an error: {e}") from e
        finally:
            _MAX_CHARS.reset(size_token)
            _GENERATION_TRACKING.reset(token)
        if continue_final_message:
            assert isinstance(final, str)
            if final.strip() not in text or _CONTINUE_TAG.strip() not in text:
                raise ChatTemplateError(
                    "continue_final_message is set but the template dropped part of the final message, so it "
                    f"cannot be continued; final message: {final.strip()!r}"
                )
            at = text.rindex(_CONTINUE_TAG.strip())
            text = text[:at] if text[at : at + len(_CONTINUE_TAG)] == _CONTINUE_TAG else text[:at].rstrip()
        rendered.append(text)
        all_spans.append(spans)
    return rendered, all_spans


class _Watchdog:
    """Interrupts the thread that entered it with :class:`_RenderTimeout` once ``seconds`` have passed.

    Template code is Python bytecode, so an exception set asynchronously on the thread stops any loop. The
    lock makes "finished" and "interrupt" exclusive: once ``__exit__`` has run, nothing is injected.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._lock = threading.Lock()
        self._done = False
        self._thread_id = threading.get_ident()
        self._timer = threading.Timer(seconds, self._interrupt)
        self._timer.daemon = True

    def _interrupt(self) -> None:
        with self._lock:
            if not self._done:
                ctypes.pythonapi.PyThreadState_SetAsyncExc(
                    ctypes.c_ulong(self._thread_id), ctypes.py_object(_RenderTimeout)
                )

    def __enter__(self) -> _Watchdog:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._done = True
        self._timer.cancel()


def _alias_reasoning(message: dict[str, Any]) -> dict[str, Any]:
    reasoning = next((message[k] for k in _REASONING_FIELDS if message.get(k) is not None), None)
    if reasoning is None:
        return message
    return {"thinking": reasoning, **message, "reasoning_content": reasoning}


def spans_to_mask(offsets: Sequence[tuple[int, int]], spans: Sequence[tuple[int, int]]) -> list[int]:
    """1 for each token whose characters overlap one of ``spans`` (sorted, disjoint), else 0."""
    mask = [0] * len(offsets)
    k = 0
    for i, (start, end) in enumerate(offsets):
        while k < len(spans) and start >= spans[k][1]:
            k += 1
        if k == len(spans):
            break
        if end > spans[k][0]:
            mask[i] = 1
    return mask


class ChatTemplateMixin:
    """``apply_chat_template`` and ``get_chat_template`` for a tokenizer with a ``chat_template`` (a string,
    or a dict of named templates) that tokenizes when called."""

    chat_template: str | dict[str, str] | None

    if TYPE_CHECKING:

        @property
        def special_tokens_map(self) -> dict[str, str]: ...

        def __call__(self, text: Any, **kwargs: Any) -> Any: ...

    def get_chat_template(self, chat_template: str | None = None, *, tools: list[Any] | None = None) -> str:
        return select_template(self.chat_template, chat_template, tools=tools)

    def apply_chat_template(
        self,
        conversation: Any,
        *,
        tools: list[Any] | None = None,
        documents: list[dict[str, Any]] | None = None,
        chat_template: str | None = None,
        add_generation_prompt: bool = False,
        continue_final_message: bool | str = False,
        tokenize: bool = True,
        padding: Padding | str = False,
        truncation: Truncation | str = False,
        max_length: int | None = None,
        return_tensors: TensorType | str | None = None,
        return_dict: bool = True,
        return_assistant_tokens_mask: bool = False,
        **kwargs: Any,
    ) -> Any:
        """Render ``conversation`` (a list of messages, or a batch of them) with the chat template.

        ``tokenize=False`` gives the text; otherwise a :class:`BatchEncoding` (``return_dict=True``) or the ids.
        ``return_assistant_tokens_mask`` adds ``assistant_masks``: 1 on tokens the template wraps in
        ``{% generation %}``. Extra keyword arguments are passed to the template.
        """
        if return_assistant_tokens_mask and not (tokenize and return_dict):
            raise ChatTemplateError(
                "return_assistant_tokens_mask=True needs tokenize=True and return_dict=True"
            )
        if return_assistant_tokens_mask and continue_final_message:
            raise ChatTemplateError(
                "continue_final_message cannot be combined with return_assistant_tokens_mask"
            )

        template = self.get_chat_template(chat_template, tools=tools)
        batched = (
            isinstance(conversation, (list, tuple))
            and len(conversation) > 0
            and (isinstance(conversation[0], (list, tuple)) or hasattr(conversation[0], "messages"))
        )
        conversations = list(conversation) if batched else [conversation]
        rendered, spans = render(
            template,
            conversations,
            tools=tools,
            documents=documents,
            add_generation_prompt=add_generation_prompt,
            continue_final_message=continue_final_message,
            variables={**self.special_tokens_map, **kwargs},
        )
        text: Any = rendered if batched else rendered[0]
        if not tokenize:
            return text
        out = self(
            text,
            add_special_tokens=False,
            padding=padding,
            truncation=truncation,
            max_length=max_length,
            return_tensors=None if return_assistant_tokens_mask else return_tensors,
        )
        if return_assistant_tokens_mask:
            masks = [spans_to_mask(enc.offsets, row_spans) for enc, row_spans in zip(out.encodings, spans)]
            out["assistant_masks"] = masks if batched else masks[0]
            out.convert_to_tensors(
                return_tensors, prepend_batch_axis=not batched and return_tensors is not None
            )
        return out if return_dict else out["input_ids"]
