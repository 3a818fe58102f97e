"""``xf pipeline`` and the OS: a closed stdout (``| head -1``) ends quietly with 141, a full disk or an
unreadable stdin ends with one line naming it, a missing model with one line naming the path."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "XF_DISABLE_PROGRESS": "1"}
LINES = b"".join(b"line number %d of the input\n" % i for i in range(60))


def _cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "xf_core.cli", "pipeline", *args]


def test_head_closing_stdout_ends_quietly_with_141(tiny_bert):
    # feature-extraction lines are large, so the 60 results overflow the pipe long before the run ends
    proc = subprocess.Popen(
        _cmd("feature-extraction", "-m", str(tiny_bert("base")), "--batch-size", "4"),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=ENV,
    )
    try:
        proc.stdin.write(LINES)
        proc.stdin.close()
        first = proc.stdout.readline()
        proc.stdout.close()  # what `| head -1` does after its line
        stderr = proc.stderr.read()
        assert proc.wait(timeout=120) == 141
    finally:
        proc.kill()
    assert isinstance(json.loads(first), list)
    assert stderr == b""


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_a_full_disk_on_stdout_is_one_line(tiny_bert):
    with open("/dev/full", "wb") as full:
        run = subprocess.run(
            _cmd("text-classification", "-m", str(tiny_bert("sequence")), "one", "two"),
            stdout=full,
            stderr=subprocess.PIPE,
            env=ENV,
            text=True,
        )
    assert run.returncode == 1
    assert run.stderr.count("\n") == 1 and "Traceback" not in run.stderr
    assert run.stderr.startswith("xf pipeline: error: writing the results to standard output failed")
    assert "disk is full" in run.stderr


def test_stdin_that_cannot_be_read_is_one_line(tiny_bert, tmp_path):
    fd = os.open(tmp_path / "out", os.O_WRONLY | os.O_CREAT)  # open for writing only: a read fails (EBADF)
    try:
        run = subprocess.run(
            _cmd("text-classification", "-m", str(tiny_bert("sequence"))),
            stdin=fd,
            capture_output=True,
            env=ENV,
            text=True,
        )
    finally:
        os.close(fd)
    assert run.returncode == 1 and run.stdout == ""
    assert run.stderr.count("\n") == 1 and "Traceback" not in run.stderr
    assert "reading the inputs from standard input failed" in run.stderr


def test_a_missing_model_directory_is_one_line_naming_it(tmp_path):
    missing = tmp_path / "no-such-model"
    run = subprocess.run(
        _cmd("text-classification", "-m", str(missing), "hello"), capture_output=True, env=ENV, text=True
    )
    assert run.returncode == 1 and run.stdout == ""
    assert run.stderr.count("\n") == 1 and "Traceback" not in run.stderr
    assert str(missing) in run.stderr
