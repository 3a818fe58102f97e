"""A hostile chat template cannot hang the process or exhaust its memory: time and size budgets."""

from __future__ import annotations

import threading
import time

import pytest

from xf_tokenize._chat import render
from xf_tokenize.errors import ChatTemplateError

MESSAGES = [[{"role": "user", "content": "hi"}]]


def test_nested_loops_are_stopped_by_the_time_budget():
    template = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}done"
    start = time.perf_counter()
    with pytest.raises(ChatTemplateError, match=r"did not finish rendering within 0.5 s"):
        render(template, MESSAGES, max_seconds=0.5)
    assert time.perf_counter() - start < 5


@pytest.mark.parametrize(
    "template",
    [
        "{{ 'a' * 3000000000 }}",
        "{{ 3000000000 * 'a' }}",
        "{% set x = 'ab' * 600000 %}{{ x + x }}",
        "{{ 'a' | center(3000000000) }}",
        "{{ 'a'.ljust(3000000000) }}",
        "{{ 10 ** 100000000 }}",
        "{% for i in range(100000) %}{{ 'x' * 100 }}{% endfor %}",  # output grows past the budget
    ],
)
def test_oversized_output_is_refused_before_it_is_built(template):
    with pytest.raises(ChatTemplateError, match="character budget"):
        render(template, MESSAGES, max_chars=1_000_000)


def test_normal_templates_and_large_numbers_in_data_still_render():
    template = (
        "{% for m in messages %}{{ m.role }}: {{ m.content }} {{ '%d' | format(1700000000) }}{% endfor %}"
        "{{ 'x' * 10 }}{{ 2 ** 10 }}{{ 'ab' | center(6) }}"
    )
    texts, _ = render(template, MESSAGES)
    assert texts == ["user: hi 1700000000xxxxxxxxxx1024  ab  "]


def test_a_finished_render_is_never_interrupted_later():
    """The watchdog of a fast render must not fire afterwards into the caller's code."""
    render("{{ messages[0].content }}", MESSAGES)  # compiled once, so each render below takes microseconds
    for _ in range(50):  # a budget a loaded machine still meets, and that would run out during the sleep
        render("{{ messages[0].content }}", MESSAGES, max_seconds=0.1)
    time.sleep(0.3)  # any stray interrupt would surface here


def test_budget_applies_per_thread():
    errors: list[BaseException] = []

    def slow() -> None:
        try:
            render(
                "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
                MESSAGES,
                max_seconds=0.3,
            )
        except ChatTemplateError as e:
            errors.append(e)

    thread = threading.Thread(target=slow)
    thread.start()
    texts, _ = render("{{ messages[0].content }}", MESSAGES)  # the main thread is not interrupted
    thread.join(10)
    assert texts == ["hi"] and len(errors) == 1
