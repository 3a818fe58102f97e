"""xf's loggers as an application addresses them: by package name (``xf_load``, ``xf_pipeline``), handed to the
application's handlers with ``enable_propagation()``, silent on stderr after ``disable_default_handler()``."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

from xf_core import logging as xf_logging


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def app_handler():
    """A handler on the root logger, as an application's logging.basicConfig sets one; xf's settings are put
    back afterwards."""
    handler = Collect()
    root = logging.getLogger()
    root.addHandler(handler)
    yield handler
    root.removeHandler(handler)
    xf_logging.disable_propagation()
    xf_logging.enable_default_handler()
    xf_logging.set_verbosity("warning")


def test_records_reach_the_application_only_after_enable_propagation(app_handler):
    log = xf_logging.get_logger("xf_load._loading")
    log.warning("kept inside xf")
    assert app_handler.records == []
    xf_logging.enable_propagation()
    log.warning("handed on")
    later = xf_logging.get_logger("xf_later_package.module")  # a package logger set up after the call
    later.warning("also handed on")
    assert [(r.name, r.getMessage()) for r in app_handler.records] == [
        ("xf_load._loading", "handed on"),
        ("xf_later_package.module", "also handed on"),
    ]
    xf_logging.disable_propagation()
    log.warning("inside again")
    assert len(app_handler.records) == 2


def test_caplog_sees_xf_records_with_propagation(caplog, app_handler):
    xf_logging.enable_propagation()
    xf_logging.disable_default_handler()
    with caplog.at_level(logging.INFO, logger="xf_pipeline"):
        xf_logging.get_logger("xf_pipeline._defaults").info("default model from the cache")
    # pytest 9 also hangs its handler on loggers that existed non-propagating when the test began, so the
    # record may be caught twice; what matters is that it arrives, at the level set on the package by name.
    assert {(r.name, r.levelno) for r in caplog.records} == {("xf_pipeline._defaults", logging.INFO)}


def test_a_package_is_addressed_by_its_name(app_handler):
    xf_logging.enable_propagation()
    load, pipe = xf_logging.get_logger("xf_load.auto"), xf_logging.get_logger("xf_pipeline.base")
    logging.getLogger("xf_load").setLevel(logging.ERROR)  # the application quiets one package only
    load.warning("dropped")
    pipe.warning("kept")
    assert [r.name for r in app_handler.records] == ["xf_pipeline.base"]
    assert {"xf", "xf_load", "xf_pipeline"} <= set(xf_logging.library_loggers())
    xf_logging.set_verbosity("info")  # set_verbosity still sets every package
    assert load.isEnabledFor(logging.INFO) and pipe.isEnabledFor(logging.INFO)


def test_add_handler_reaches_every_package(app_handler):
    mine = Collect()
    xf_logging.add_handler(mine)
    try:
        xf_logging.get_logger("xf_core._atomic").warning("a")
        xf_logging.get_logger("xf_tokenize._loading").warning("b")
    finally:
        xf_logging.remove_handler(mine)
    xf_logging.get_logger("xf_core._atomic").warning("c")
    assert [r.getMessage() for r in mine.records] == ["a", "b"]
    assert app_handler.records == []  # no propagation asked for


def test_default_handler_prints_on_stderr_until_disabled():
    code = (
        "from xf_core import logging as l\n"
        "l.get_logger('xf_load.x').warning('first')\n"
        "l.disable_default_handler()\n"
        "l.get_logger('xf_load.x').warning('second')\n"
        "l.get_logger('xf_train.y').warning('third')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stderr == "[WARNING|xf_load.x] first\n"
