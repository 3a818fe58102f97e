"""``xf``'s own options: ``--version``, ``env --json``, ``-q``/``-v``, and an Examples block in every ``--help``."""

from __future__ import annotations

import json
import logging
from importlib import metadata

import pytest

import xf_core
from xf_core import logging as xf_logging
from xf_core.cli import commands, main, version_line


@pytest.fixture
def restore_logging(monkeypatch):
    """Put back the level and the progress-bar switch (unset, so XF_DISABLE_PROGRESS rules again)."""
    level = xf_logging.get_verbosity()
    monkeypatch.setattr(xf_logging, "_progress_override", xf_logging._progress_override)
    yield
    xf_logging.set_verbosity(level)


def test_version_names_every_installed_xf_package(capsys):
    assert main(["--version"]) == 0
    out = capsys.readouterr().out
    assert out == version_line() + "\n"
    assert out.startswith(f"xf {xf_core.__version__}")
    others = [d for d in metadata.distributions() if d.metadata["Name"].startswith("xf-")]
    for dist in others:
        if dist.metadata["Name"] != "xf-core":
            assert f"{dist.metadata['Name']} {dist.version}" in out


def test_env_json_is_one_object_with_the_text_reports_keys(capsys):
    assert main(["env", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["xf-core"] == xf_core.__version__
    assert {"python", "platform", "torch", "accelerator"} <= set(report)
    assert main(["env"]) == 0
    text = capsys.readouterr().out
    assert [line.split(": ", 1)[0] for line in text.splitlines()] == list(report)


@pytest.mark.parametrize(
    ("argv", "level", "bars"),
    [
        (["-q", "env"], logging.ERROR, False),
        (["env", "--quiet"], logging.ERROR, False),  # after the subcommand too
        (["-v", "env"], logging.INFO, True),
        (["env", "-vv"], logging.DEBUG, True),
    ],
)
def test_quiet_and_verbose_set_the_xf_loggers(capsys, restore_logging, argv, level, bars):
    xf_logging.set_verbosity("warning")
    xf_logging.enable_progress_bars()
    assert main(argv) == 0
    assert xf_logging.get_verbosity() == level
    assert xf_logging.progress_bars_enabled() is bars


def test_every_help_ends_with_examples(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    assert "\nExamples:\n  xf " in capsys.readouterr().out
    names = sorted(commands())
    assert "env" in names
    for name in names:
        with pytest.raises(SystemExit):
            main([name, "--help"])
        out = capsys.readouterr().out
        assert f"usage: xf {name}" in out and "-q, --quiet" in out
        examples = out[out.index("\nExamples:\n") :]  # after the options, each line a command to run
        assert f"  xf {name}" in examples, name
