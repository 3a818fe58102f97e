"""Chat templates render as transformers renders them, in a sandbox that refuses escapes."""

from __future__ import annotations

import datetime
from typing import Literal

import pytest

from xf_tokenize.errors import ChatTemplateError

LLAMA3 = (
    "{{- bos_token }}\n"
    "{%- if not date_string is defined %}{%- set date_string = strftime_now('%d %b %Y') %}{%- endif %}\n"
    "{%- if messages[0]['role'] == 'system' %}\n"
    "    {%- set system_message = messages[0]['content']|trim %}\n"
    "    {%- set messages = messages[1:] %}\n"
    "{%- else %}\n"
    "    {%- set system_message = '' %}\n"
    "{%- endif %}\n"
    "{{- '<|start_header_id|>system<|end_header_id|>\\n\\n' }}\n"
    "{%- if tools is not none %}{{- 'Environment: ipython\\n' }}{%- endif %}\n"
    "{{- 'Today Date: ' + date_string + '\\n\\n' }}\n"
    "{%- if tools is not none %}\n"
    "    {%- for t in tools %}{{- t | tojson(indent=4) }}{{- '\\n\\n' }}{%- endfor %}\n"
    "{%- endif %}\n"
    "{{- system_message }}{{- '<|eot_id|>' }}\n"
    "{%- for message in messages %}\n"
    "    {%- if message.role not in ['user', 'assistant', 'tool'] %}\n"
    "        {{- raise_exception('Unknown role ' + message.role) }}\n"
    "    {%- endif %}\n"
    "    {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + "
    "'<|eot_id|>' }}\n"
    "{%- endfor %}\n"
    "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}\n"
)

CHATML = (
    "{% if documents %}{% for d in documents %}<doc title={{ d.title | tojson }}>{{ d.text }}</doc>\n"
    "{% endfor %}{% endif %}"
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + "
    "'\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# ChatML with the `{% generation %}` tag that marks assistant turns (as SmolLM3/Qwen-style templates use).
CHATML_GENERATION = (
    "{% for message in messages %}{% if message['role'] == 'assistant' %}<|im_start|>assistant\n"
    "{% generation %}{{ message['content'] }}<|im_end|>{% endgeneration %}\n{% else %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

CONVERSATIONS = [
    [{"role": "user", "content": "Hello there!"}],
    [
        {"role": "system", "content": "  You are terse.  "},
        {"role": "user", "content": "Qu'est-ce que c'est ? 中文 😀"},
        {"role": "assistant", "content": "Une phrase.\n\nAvec deux lignes."},
        {"role": "user", "content": "Encore"},
    ],
    [{"role": "user", "content": ""}, {"role": "assistant", "content": "Starting my answer"}],
]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather in a city — ünïcode kept",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]


@pytest.mark.parametrize(
    "template", [LLAMA3, CHATML, CHATML_GENERATION], ids=["llama3", "chatml", "chatml_generation"]
)
@pytest.mark.parametrize("name", ["minilm", "spm"])
def test_rendering_matches_transformers(name, template, pair_of):
    xf, hf = pair_of(name)
    for conversation in CONVERSATIONS:
        for generation in (False, True):
            kwargs = {
                "chat_template": template,
                "add_generation_prompt": generation,
                "date_string": "26 Jul 2024",
            }
            text = xf.apply_chat_template(conversation, tokenize=False, **kwargs)
            assert text == hf.apply_chat_template(conversation, tokenize=False, **kwargs)
            ids = xf.apply_chat_template(conversation, return_dict=False, **kwargs)
            assert ids == hf.apply_chat_template(conversation, return_dict=False, **kwargs)
            out = xf.apply_chat_template(conversation, **kwargs)
            assert out["input_ids"] == ids and out["attention_mask"] == [1] * len(ids)
    kwargs = {"chat_template": template, "tools": TOOLS, "date_string": "1 Jan 2025", "tokenize": False}
    kwargs["documents"] = [{"title": 'Doc "one"', "text": "Body <b>tags</b> & more"}]
    assert xf.apply_chat_template(CONVERSATIONS[1], **kwargs) == hf.apply_chat_template(
        CONVERSATIONS[1], **kwargs
    )
    batch = {"chat_template": template, "padding": True, "date_string": "x"}
    assert (
        xf.apply_chat_template(CONVERSATIONS, **batch)["input_ids"]
        == (hf.apply_chat_template(CONVERSATIONS, **batch)["input_ids"])
    )


@pytest.mark.parametrize("template", [LLAMA3, CHATML], ids=["llama3", "chatml"])
def test_continue_final_message(template, pair_of):
    xf, hf = pair_of("spm")
    kwargs = {
        "chat_template": template,
        "continue_final_message": True,
        "tokenize": False,
        "date_string": "d",
    }
    text = xf.apply_chat_template(CONVERSATIONS[2], **kwargs)
    assert text.endswith("Starting my answer")
    assert text == hf.apply_chat_template(CONVERSATIONS[2], **kwargs)
    with pytest.raises(ChatTemplateError, match="exclude each other"):
        xf.apply_chat_template(CONVERSATIONS[2], **kwargs | {"add_generation_prompt": True})


def test_helpers_and_errors(pair_of):
    xf, _ = pair_of("minilm")
    year = xf.apply_chat_template(CONVERSATIONS[0], chat_template="{{ strftime_now('%Y') }}", tokenize=False)
    assert year == str(datetime.datetime.now().year)
    with pytest.raises(ChatTemplateError, match="Unknown role robot"):
        xf.apply_chat_template([{"role": "robot", "content": "x"}], chat_template=LLAMA3, tokenize=False)
    with pytest.raises(ChatTemplateError, match="no chat template"):
        xf.apply_chat_template(CONVERSATIONS[0])
    with pytest.raises(ChatTemplateError, match="does not parse"):
        xf.apply_chat_template(CONVERSATIONS[0], chat_template="{% for %}", tokenize=False)
    with pytest.raises(ChatTemplateError, match="empty conversation"):
        xf.apply_chat_template([[]], chat_template=CHATML, tokenize=False)


@pytest.mark.parametrize(
    "template",
    [
        "{{ ''.__class__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ raise_exception.__globals__ }}",
        "{{ messages.__class__.__init__.__globals__['os'] }}",
        "{% set ns = namespace(__class__=1) %}{{ ns }}",
        "{{ messages.append({'role': 'user'}) }}",
    ],
)
def test_sandbox_escapes_are_refused(template, pair_of):
    xf, _ = pair_of("minilm")
    with pytest.raises(ChatTemplateError, match="sandbox"):
        xf.apply_chat_template(CONVERSATIONS[0], chat_template=template, tokenize=False)


@pytest.mark.parametrize("name", ["minilm", "spm"])
def test_assistant_tokens_mask_matches_transformers(name, pair_of):
    import numpy as np

    xf, hf = pair_of(name)
    kwargs = {"chat_template": CHATML_GENERATION, "return_assistant_tokens_mask": True}
    for conversation in CONVERSATIONS:
        a, b = xf.apply_chat_template(conversation, **kwargs), hf.apply_chat_template(conversation, **kwargs)
        assert a["assistant_masks"] == b["assistant_masks"] and a["input_ids"] == b["input_ids"]
    assert 1 in a["assistant_masks"]
    batch = {**kwargs, "padding": True, "return_tensors": "np"}
    a, b = xf.apply_chat_template(CONVERSATIONS, **batch), hf.apply_chat_template(CONVERSATIONS, **batch)
    for key in ("input_ids", "attention_mask", "assistant_masks"):
        np.testing.assert_array_equal(a[key], b[key])
    single = {**kwargs, "return_tensors": "np"}
    a, b = (
        xf.apply_chat_template(CONVERSATIONS[1], **single),
        hf.apply_chat_template(CONVERSATIONS[1], **single),
    )
    assert a["assistant_masks"].shape == b["assistant_masks"].shape
    np.testing.assert_array_equal(a["assistant_masks"], b["assistant_masks"])
    with pytest.raises(ChatTemplateError, match="needs tokenize=True"):
        xf.apply_chat_template(CONVERSATIONS[1], tokenize=False, **kwargs)


def _weather(city: str, unit: str | None = None, days: int = 1) -> dict[str, float]:
    """
    Get the weather forecast for a city.

    Args:
        city: The city, e.g. "Paris".
        unit: The temperature unit (choices: ["celsius", "fahrenheit"])
        days (int): How many days ahead,
            counting today.

    Returns:
        Temperatures by day.
    """
    return {}


def _search(
    query: str,
    tags: list[str],
    limit: int | float,
    mode: Literal["fast", "exact"],
    *,
    near: tuple[float, float] | None = None,
) -> None:
    """Search the index.

    Args:
        query: What to look for.
        tags: Tags that must match.
        limit: At most this many results.
        mode: How to match.
        near: A (lat, lon) point.
    """


def test_python_function_tools_match_transformers(pair_of):
    from transformers.utils import get_json_schema

    from xf_tokenize._tools import function_schema

    for func in (_weather, _search):
        assert function_schema(func) == get_json_schema(func)
    xf, hf = pair_of("minilm")
    kwargs = {
        "chat_template": LLAMA3,
        "tools": [_weather, TOOLS[0], _search],
        "date_string": "d",
        "tokenize": False,
    }
    assert xf.apply_chat_template(CONVERSATIONS[0], **kwargs) == hf.apply_chat_template(
        CONVERSATIONS[0], **kwargs
    )

    def undocumented(x: int) -> int:
        return x

    def untyped(x):
        """Do it.

        Args:
            x: A value.
        """

    def missing(x: int, y: int):
        """Do it.

        Args:
            x: A value.
        """

    with pytest.raises(ChatTemplateError, match="has no docstring"):
        function_schema(undocumented)
    with pytest.raises(ChatTemplateError, match="'x' of tool untyped has no type hint"):
        function_schema(untyped)
    with pytest.raises(ChatTemplateError, match="does not describe argument 'y'"):
        function_schema(missing)
