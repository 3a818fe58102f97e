"""``xf`` ends OS failures with one line on stderr and the conventional exit code, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

_FAKE = '''
import errno, sys
from xf_core.errors import XfOSError

def setup(parser):
    """Fail on purpose."""
    parser.add_argument("how")
    def run(args):
        if args.how == "denied":
            raise PermissionError(errno.EACCES, "Permission denied", "/data/run/weights.bin")
        if args.how == "missing":
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", "/data/nope.json")
        if args.how == "typed":
            raise XfOSError("saving to /data/out failed: the disk is full.", path="/data/out", errno_=errno.ENOSPC)
        if args.how == "interrupt":
            raise KeyboardInterrupt
        sys.stdout.write("line\\n" * 100000)
        return 0
    return run
'''


@pytest.fixture(scope="module")
def fake_env(tmp_path_factory):
    root = tmp_path_factory.mktemp("fake-command")
    (root / "boom_cmd.py").write_text(textwrap.dedent(_FAKE))
    dist = root / "boom_cmd-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: boom-cmd\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[xf.commands]\nboom = boom_cmd:setup\n")
    return {**os.environ, "PYTHONPATH": str(root)}


def _xf(*args, env=None, stdout=subprocess.PIPE):
    return subprocess.run(
        [sys.executable, "-m", "xf_core.cli", *args],
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


@pytest.mark.parametrize(
    ("how", "expected"),
    [
        ("denied", "xf boom: error: Permission denied: /data/run/weights.bin\n"),
        ("missing", "xf boom: error: No such file or directory: /data/nope.json\n"),
        ("typed", "xf boom: error: saving to /data/out failed: the disk is full.\n"),
    ],
)
def test_an_os_error_is_one_line_naming_the_path_and_exit_1(fake_env, how, expected):
    out = _xf("boom", how, env=fake_env)
    assert (out.returncode, out.stderr) == (1, expected)


def test_ctrl_c_exits_130_quietly(fake_env):
    out = _xf("boom", "interrupt", env=fake_env)
    assert (out.returncode, out.stderr) == (130, "")


@pytest.mark.parametrize("command", [("env",), ("boom", "lines")])
def test_a_closed_stdout_exits_141_without_a_traceback(fake_env, command):
    proc = subprocess.Popen(
        [sys.executable, "-m", "xf_core.cli", *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=fake_env,
    )
    proc.stdout.close()  # as `| head -0` does
    stderr = proc.stderr.read()
    assert proc.wait(timeout=120) == 141
    assert stderr == b""


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_a_full_disk_on_stdout_names_standard_output():
    with open("/dev/full", "w") as full:
        out = _xf("env", stdout=full)
    assert out.returncode == 1
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    assert "standard output" in out.stderr and "disk is full" in out.stderr
