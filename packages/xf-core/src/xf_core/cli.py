"""The ``xf`` command. Subcommands are found through the ``xf.commands`` entry-point group, so installing an
xf package adds its commands (``xf pipeline`` comes with xf-pipeline).

An entry point names a function ``setup(parser) -> handler``: it adds its arguments to the subcommand's
``argparse`` parser and returns ``handler(args) -> int``, the exit code. The first docstring line of ``setup``
is the subcommand's one-line help. Entry points are loaded only to build the parser; their modules must
stay cheap to import (no torch at module level).
"""

from __future__ import annotations

import argparse
import platform
import sys
from collections.abc import Callable, Sequence
from importlib import metadata
from typing import Any

__all__ = ["commands", "env_command", "main"]

Handler = Callable[[argparse.Namespace], int]


def commands() -> dict[str, metadata.EntryPoint]:
    """Installed subcommands, by name."""
    return {ep.name: ep for ep in metadata.entry_points(group="xf.commands")}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="xf", description="xf: fast, modular transformers.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    handlers: dict[str, Handler] = {}
    for name, ep in sorted(commands().items()):
        setup = ep.load()
        summary = (setup.__doc__ or "").strip().splitlines()[0] if setup.__doc__ else ""
        sub_parser = sub.add_parser(name, help=summary, description=setup.__doc__)
        handlers[name] = setup(sub_parser)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return handlers[args.command](args)
    except KeyboardInterrupt:
        return 130


def env_command(parser: argparse.ArgumentParser) -> Handler:
    """Print Python, platform, torch, accelerator and every installed xf package's version."""
    del parser  # no options

    def run(args: argparse.Namespace) -> int:
        for key, value in environment_report().items():
            sys.stdout.write(f"{key}: {value}\n")
        return 0

    return run


def environment_report() -> dict[str, Any]:
    report: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    for dist in sorted(metadata.distributions(), key=lambda d: d.metadata["Name"] or ""):
        name = dist.metadata["Name"] or ""
        if name.startswith("xf-"):
            report[name] = dist.version
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
