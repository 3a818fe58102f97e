"""``xf pipeline`` on stdin streams results as inputs arrive, and a bad line gets an error record in its
place while the run goes on (``--fail-fast`` stops instead)."""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import time

from xf_pipeline import pipeline

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "XF_DISABLE_PROGRESS": "1"}


def _cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "xf_core.cli", "pipeline", *args]


def _readline(proc: subprocess.Popen, timeout: float) -> bytes:
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    assert sel.select(timeout), f"no result within {timeout} s"
    return proc.stdout.readline()


def test_a_result_is_written_before_stdin_ends(tiny_bert):
    path = str(tiny_bert("sequence"))
    proc = subprocess.Popen(
        _cmd("text-classification", "-m", path, "--batch-size", "16"),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=ENV,
    )
    try:
        assert proc.stdin is not None
        proc.stdin.write(b"first line\n")
        proc.stdin.flush()
        first = json.loads(_readline(proc, timeout=120))  # the batch of 16 is not full, stdin still open
        proc.stdin.write(b"second line\n")
        proc.stdin.flush()
        started = time.monotonic()
        second = json.loads(_readline(proc, timeout=60))
        assert time.monotonic() - started < 10  # the model is loaded: an answer per line, at once
        proc.stdin.close()
        assert proc.wait(60) == 0
    finally:
        proc.kill()
    expected = pipeline("text-classification", model=path)(["first line", "second line"])
    for got, want in zip([first, second], expected):
        assert got["label"] == want["label"] and abs(got["score"] - want["score"]) < 1e-5


def test_a_bad_line_gets_an_error_record_and_the_run_goes_on(tiny_bert):
    path = str(tiny_bert("mlm"))
    data = b"a [MASK] here\nno mask at all\n" + b"\xff\xfe broken\n" + b"b [MASK] c\n"
    run = subprocess.run(
        _cmd("fill-mask", "-m", path, "--batch-size", "4"),
        input=data,
        capture_output=True,
        env=ENV,
        timeout=300,
    )
    assert run.returncode == 1
    out = [json.loads(line) for line in run.stdout.decode().splitlines()]
    assert len(out) == 4
    assert isinstance(out[0], list) and isinstance(out[3], list)  # the good lines still got results
    assert out[1]["input"] == 2 and "mask" in out[1]["error"].lower()
    assert out[2]["input"] == 3 and "not UTF-8" in out[2]["error"]
    assert "2 input(s) failed" in run.stderr.decode()
    direct = pipeline("fill-mask", model=path)
    assert out[0] == json.loads(json.dumps(direct("a [MASK] here")))


def test_fail_fast_stops_at_the_first_bad_line(tiny_bert):
    path = str(tiny_bert("mlm"))
    data = b"a [MASK] here\n\xff broken\nb [MASK] c\n"
    run = subprocess.run(
        _cmd("fill-mask", "-m", path, "--fail-fast", "--batch-size", "1"),
        input=data,
        capture_output=True,
        env=ENV,
        timeout=300,
    )
    assert run.returncode == 1
    assert len(run.stdout.decode().splitlines()) == 1
    assert run.stderr.decode().strip().endswith("is not UTF-8 text (byte 0: invalid start byte)")
    assert "input 2" in run.stderr.decode()
