"""The ``xf`` command. Subcommands are found through the ``xf.commands`` entry-point group, so installing an
xf package adds its commands (``xf pipeline`` comes with xf-pipeline).

An entry point names a function ``setup(parser) -> handler``: it adds its arguments to the subcommand's
``argparse`` parser and returns ``handler(args) -> int``, the exit code. The first docstring line of ``setup``
is the subcommand's one-line help, the rest its ``--help`` description, and a final ``Examples:`` block
(layout kept) is printed after the options. Entry points are loaded only to build the parser; their modules must stay cheap to
import (no torch at module level).

``xf --version`` prints the installed xf packages' versions; ``-q`` (errors only, no progress bars) and
``-v``/``-vv`` (info/debug logging) go before or after the subcommand and win over ``XF_VERBOSITY``.

Failures a user can fix end as one line on stderr, never a traceback: an OS error (a missing file, permission
denied, a full disk) or an xf error exits 1 with ``xf COMMAND: error: ...``; a closed stdout (``xf ... | head
-1``) exits quietly with 141 (128 + SIGPIPE, what a shell reports for a command killed by SIGPIPE); Ctrl-C
exits 130.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import json
import os
import platform
import sys
from collections.abc import Callable, Sequence
from importlib import metadata
from typing import Any

from xf_core._atomic import os_error
from xf_core.errors import XfError

__all__ = [
    "EXIT_BROKEN_PIPE",
    "EXIT_INTERRUPTED",
    "commands",
    "env_command",
    "environment_report",
    "main",
    "version_line",
    "write_output",
]

Handler = Callable[[argparse.Namespace], int]

EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE
EXIT_INTERRUPTED = 130  # 128 + SIGINT

EXAMPLES = """\
Examples:
  xf pipeline sentence-similarity "A man is eating food." "A man eats bread." "A girl plays the violin."
  xf pipeline sentiment-analysis --model DIR < texts.txt > results.jsonl
  xf chat DIR
  xf env --json
  xf --version
"""


def commands() -> dict[str, metadata.EntryPoint]:
    """Installed subcommands, by name."""
    return {ep.name: ep for ep in metadata.entry_points(group="xf.commands")}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="xf",
        description="xf: fast, modular transformers.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="store_true", help="print the installed xf packages' versions")
    _add_verbosity(parser, default=None)
    common = argparse.ArgumentParser(add_help=False)
    _add_verbosity(common, default=argparse.SUPPRESS)  # also after the subcommand; unset keeps the above
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    handlers: dict[str, Handler] = {}
    for name, ep in sorted(commands().items()):
        setup = ep.load()
        doc = inspect.cleandoc(setup.__doc__ or "")
        description, examples, rest = doc.partition("Examples:")
        sub_parser = sub.add_parser(
            name,
            help=doc.splitlines()[0] if doc else "",
            description=description.rstrip(),
            epilog=(examples + rest) or None,
            parents=[common],
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        handlers[name] = setup(sub_parser)
    args = parser.parse_args(argv)
    if args.version:
        try:
            write_output(version_line() + "\n")
        except BrokenPipeError:
            _silence_stdout()
            return EXIT_BROKEN_PIPE
        return 0
    if args.command is None:
        parser.print_help()
        return 2
    _apply_verbosity(quiet=args.quiet, verbose=args.verbose or 0)
    try:
        code = handlers[args.command](args)
        write_output("")  # a closed or full stdout fails here, not in the interpreter's exit
        return code
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except OSError as e:
        _silence_stdout()  # what is left in stdout's buffer could fail again at exit
        return _error_line(args.command, _os_error_text(e))
    except XfError as e:
        return _error_line(args.command, str(e))


def _add_verbosity(parser: argparse.ArgumentParser, *, default: Any) -> None:
    parser.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=default,
        help="errors only: no warnings, no progress bars",
    )
    parser.add_argument(
        "-v", "--verbose", action="count", default=default, help="info logging; -vv: debug logging"
    )


def _apply_verbosity(*, quiet: bool | None, verbose: int) -> None:
    from xf_core.logging import disable_progress_bars, set_verbosity

    if quiet:
        set_verbosity("error")
        disable_progress_bars()
    elif verbose:
        set_verbosity("info" if verbose == 1 else "debug")


def version_line() -> str:
    """``xf <xf-core version> (<every installed xf package> <version>, ...)``: what ``xf --version`` prints."""
    versions = _xf_versions()
    others = ", ".join(f"{name} {version}" for name, version in versions.items() if name != "xf-core")
    return f"xf {versions.get('xf-core', 'unknown')}" + (f" ({others})" if others else "")


def _xf_versions() -> dict[str, str]:
    """Every installed xf distribution's version, by name."""
    found = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"] or ""
        if name.startswith("xf-"):
            found[name] = dist.version
    return dict(sorted(found.items()))


def write_output(text: str, stream: Any = None) -> None:
    """Write ``text`` to stdout (or ``stream``) and flush; a full disk or other OS failure becomes an
    :class:`~xf_core.errors.XfOSError` naming standard output (a closed pipe stays a BrokenPipeError)."""
    stream = sys.stdout if stream is None else stream
    try:
        if text:
            stream.write(text)
        stream.flush()
    except BrokenPipeError:
        raise
    except OSError as e:
        raise os_error(e, "standard output", "writing the results to") from e


def _os_error_text(error: OSError) -> str:
    """One line naming the path: an xf error's own message, else the OS reason and the file."""
    if isinstance(error, XfError):
        return str(error)
    reason = error.strerror or str(error) or type(error).__name__
    return f"{reason}: {error.filename}" if error.filename else reason


def _error_line(command: str, message: str) -> int:
    first = message.strip().splitlines()[0] if message.strip() else "failed"
    with contextlib.suppress(OSError):  # stderr itself may be closed
        sys.stderr.write(f"xf {command}: error: {first}\n")
        sys.stderr.flush()
    return 1


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so the unwritten rest of its buffer is dropped quietly at exit."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def env_command(parser: argparse.ArgumentParser) -> Handler:
    """Print Python, platform, torch, accelerator and every installed xf package's version.

    Examples:
      xf env                 # one "key: value" line each, to paste into a bug report
      xf env --json          # one JSON object, for scripts
    """
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object instead of key: value lines"
    )

    def run(args: argparse.Namespace) -> int:
        report = environment_report()
        if args.json:
            write_output(json.dumps(report, indent=2) + "\n")
        else:
            write_output("".join(f"{key}: {value}\n" for key, value in report.items()))
        return 0

    return run


def environment_report() -> dict[str, Any]:
    """Python, platform, each installed xf package, the libraries xf uses ("not installed" when absent) and
    the accelerator torch sees: what ``xf env`` prints."""
    report: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    report.update(_xf_versions())
    for name in ("torch", "tokenizers", "safetensors", "huggingface-hub", "accelerate", "bitsandbytes"):
        try:
            report[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            report[name] = "not installed"
    report["accelerator"] = _accelerator()
    return report


def _accelerator() -> str:
    from xf_core.lazy import is_available

    if not is_available("torch"):
        return "unknown (torch not installed)"
    import torch

    if torch.cuda.is_available():
        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        return f"cuda: {', '.join(names)}"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "none (cpu only)"


if __name__ == "__main__":
    sys.exit(main())
