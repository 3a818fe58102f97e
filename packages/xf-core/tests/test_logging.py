import logging
import subprocess
import sys

import pytest

from xf_core import get_logger, progress_bar, set_verbosity
from xf_core.logging import disable_progress_bars, enable_progress_bars, progress_bars_enabled
from xf_core.testing import patch_env


def test_loggers_hang_under_their_package_and_follow_set_verbosity():
    log = get_logger("xf_load.loading")
    assert log.name == "xf_load.loading" and log.parent is logging.getLogger("xf_load")
    assert get_logger("t").name == "xf.t"  # a name outside the xf packages goes under "xf"
    set_verbosity("error")
    assert not log.isEnabledFor(logging.WARNING)
    set_verbosity("info")
    assert log.isEnabledFor(logging.INFO)
    set_verbosity("warning")
    with pytest.raises(ValueError, match="not one of"):
        set_verbosity("loud")


def test_verbosity_from_environment():
    code = "from xf_core import get_logger; get_logger('t').info('hello-info')"
    out = subprocess.run(
        [sys.executable, "-c", code], env={"XF_VERBOSITY": "info"}, capture_output=True, text=True
    )
    assert "hello-info" in out.stderr
    out = subprocess.run([sys.executable, "-c", code], env={}, capture_output=True, text=True)
    assert "hello-info" not in out.stderr


def test_progress_bars_can_be_disabled():
    with patch_env(XF_DISABLE_PROGRESS="1"):
        assert not progress_bars_enabled()
        assert progress_bar(range(3)).disable
    with patch_env(XF_DISABLE_PROGRESS=None):
        disable_progress_bars()
        assert progress_bar(range(3)).disable
        enable_progress_bars()
        assert not progress_bar(range(3)).disable


def test_progress_bar_writes_one_line_when_not_a_terminal():
    code = "from xf_core import progress_bar\nfor _ in progress_bar(range(500), desc='items'): pass"
    out = subprocess.run([sys.executable, "-c", code], env={}, capture_output=True, check=True)
    assert out.stderr.count(b"\n") == 1 and out.stderr.endswith(b"\n")
    assert b"items" in out.stderr and b"500/500" in out.stderr
