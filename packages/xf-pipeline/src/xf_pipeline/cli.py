"""``xf pipeline TASK [INPUT ...]``: run a task on texts from the arguments or stdin, one JSON line out per
input. Cheap to import: torch and the models load only when the command runs."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from typing import Any, TextIO

from xf_core.errors import XfError
from xf_pipeline._registry import ALIASES, TASKS, normalize_task

__all__ = ["parse_param", "setup"]

_DTYPES = ("auto", "float32", "float16", "bfloat16")


def parse_param(text: str) -> tuple[str, Any]:
    """``k=v`` -> (k, v), with v read as JSON when it is JSON (3, true, null, ["a","b"]) and as text otherwise."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"--param {text!r} is not of the form key=value (e.g. --param top_k=3).")
    try:
        return key.strip(), json.loads(value)
    except json.JSONDecodeError:
        return key.strip(), value


def _parse_input(text: str) -> Any:
    """A JSON object/array when the line is one ({"question": ..., "context": ...}), else the text itself."""
    stripped = text.strip()
    if stripped[:1] in ("{", "["):
        try:
            return json.loads(stripped)
        except json.JSONDecodeError:
            pass
    return text


def _stdin_inputs(stream: TextIO) -> Iterator[Any]:
    for line in stream:
        line = line.rstrip("\r\n")
        if line.strip():
            yield _parse_input(line)


def setup(parser: argparse.ArgumentParser) -> Any:
    """Run a task pipeline on texts from the arguments or stdin; one JSON line out per input."""
    parser.add_argument(
        "task", metavar="TASK", help=f"one of {', '.join(TASKS)} (aliases: {', '.join(ALIASES)})"
    )
    parser.add_argument(
        "inputs",
        nargs="*",
        metavar="INPUT",
        help='texts (or JSON objects, e.g. \'{"question": ..., "context": ...}\'); none: one per line of stdin',
    )
    parser.add_argument(
        "--model", "-m", help="local directory or Hub repo id (default: the task's default model)"
    )
    parser.add_argument("--tokenizer", help="tokenizer directory or repo id (default: the model's)")
    parser.add_argument("--device", help="cpu, cuda, cuda:1, mps, or a CUDA ordinal")
    parser.add_argument("--dtype", default="auto", choices=_DTYPES, help="weights dtype (default: auto)")
    parser.add_argument(
        "--batch-size", type=int, default=None, help="inputs per forward (default 1; 16 on stdin)"
    )
    parser.add_argument(
        "--param",
        "-p",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a task parameter, e.g. --param top_k=3 --param aggregation_strategy=simple (repeatable)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    _allow_options_between_inputs(parser)

    def run(args: argparse.Namespace) -> int:
        return _run(args, sys.stdin, sys.stdout, sys.stderr)

    return run


def _allow_options_between_inputs(parser: argparse.ArgumentParser) -> None:
    """Let ``xf pipeline ner --model M "text"`` work: plain argparse binds TASK and the (empty) INPUT list
    together and then rejects "text". The ``xf`` command parses subcommands with ``parse_known_args``; here
    that becomes argparse's intermixed parsing, which collects positionals around options."""
    plain = parser.parse_known_args
    busy = False

    def parse_known_args(args: Any = None, namespace: Any = None) -> Any:
        nonlocal busy
        if busy:  # parse_known_intermixed_args calls back into parse_known_args
            return plain(args, namespace)
        busy = True
        try:
            return parser.parse_known_intermixed_args(args, namespace)
        finally:
            busy = False

    parser.parse_known_args = parse_known_args  # type: ignore[method-assign]


def _fail(stderr: TextIO, message: str, code: int = 2) -> int:
    stderr.write(f"xf pipeline: error: {message}\n")
    return code


def _run(args: argparse.Namespace, stdin: TextIO, stdout: TextIO, stderr: TextIO) -> int:
    try:
        task = normalize_task(args.task)
        params = dict(parse_param(p) for p in args.param)
    except ValueError as e:
        return _fail(stderr, str(e))
    if args.batch_size is not None and args.batch_size < 1:
        return _fail(stderr, f"--batch-size must be >= 1, got {args.batch_size}.")
    from_stdin = not args.inputs
    if from_stdin:
        if stdin.isatty():
            stderr.write("xf pipeline: reading inputs from stdin, one per line (Ctrl-D to end)\n")
        inputs: Any = _stdin_inputs(stdin)
    else:
        inputs = [_parse_input(text) for text in args.inputs]
        if task == "sentence-similarity" and all(isinstance(i, str) for i in inputs):
            if len(inputs) < 2:
                return _fail(
                    stderr, "sentence-similarity needs a source sentence and at least one candidate."
                )
            inputs = [{"source_sentence": inputs[0], "sentences": inputs[1:]}]
    try:
        pipe = _build(task, args, params)
    except (XfError, ValueError, OSError, ImportError) as e:
        return _fail(stderr, str(e), 1)
    from xf_core.logging import progress_bar

    batch_size = args.batch_size or (16 if from_stdin else 1)
    count = 0
    try:
        results = pipe(iter(inputs), batch_size=batch_size)
        if from_stdin:
            results = progress_bar(
                results, desc=f"xf pipeline {task}", unit="input", disable=args.no_progress or None
            )
        for count, result in enumerate(results, 1):  # noqa: B007 - count is read after the loop
            stdout.write(json.dumps(result, ensure_ascii=False) + "\n")
            stdout.flush()
    except (XfError, ValueError, TypeError) as e:
        return _fail(stderr, f"input {count + 1}: {e}", 1)
    return 0


def _build(task: str, args: argparse.Namespace, params: dict[str, Any]) -> Any:
    from xf_pipeline._factory import pipeline

    dtype: Any = args.dtype
    if dtype != "auto":
        import torch

        dtype = getattr(torch, dtype)
    device: Any = args.device
    if device is not None and device.lstrip("-").isdigit():
        device = int(device)
    return pipeline(task, args.model, tokenizer=args.tokenizer, device=device, dtype=dtype, **params)
