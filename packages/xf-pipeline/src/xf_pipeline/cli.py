"""``xf pipeline TASK [INPUT ...]``: run a task on texts (image tasks: image file paths; URLs are refused
while offline) from the arguments or stdin, one JSON line out per input. Cheap to import: torch and the models load only when the command runs.

Stdin streams: a reader thread feeds a queue, a batch is cut when it is full or when no new line arrived for
``--max-wait`` seconds, and each result is written (and flushed) as soon as its batch is done, so a person
typing lines sees each answer at once. An input that fails (not UTF-8, rejected by the task) gets an error
record ``{"input": N, "error": "..."}`` in its place and the run goes on (exit code 1 at the end);
``--fail-fast`` stops at the first failure instead. A stdout that fills the disk, or stdin that cannot be
read, ends the run with one line naming it; a closed stdout (``| head -1``) ends it quietly (``xf`` exits 141).

``--format table`` writes a small aligned table per input instead (``sentence-similarity`` names each candidate
next to its score); JSON lines stay the default, for scripts. Without ``--device`` the task runs on the first
accelerator torch sees (``cuda:0``, else ``mps``), else on the CPU, as transformers 5's ``pipeline()`` does.
"""

from __future__ import annotations

import argparse
import json
import queue
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TextIO

from xf_core import os_error
from xf_core.cli import write_output
from xf_core.errors import XfError
from xf_pipeline._registry import ALIASES, TASKS, normalize_task

__all__ = ["default_device", "format_table", "parse_param", "setup"]

_DTYPES = ("auto", "float32", "float16", "bfloat16")
_FORMATS = ("json", "table")


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


@dataclass(frozen=True)
class _BadInput:
    reason: str


def _stdin_inputs(stream: TextIO) -> Iterator[tuple[int, Any]]:
    """(line number, input) per non-blank line; a line that is not UTF-8 becomes a :class:`_BadInput`."""
    raw: Iterable[bytes | str] = getattr(stream, "buffer", stream)
    for number, line in enumerate(_read_lines(raw), 1):
        if isinstance(line, bytes):
            try:
                line = line.decode("utf-8")
            except UnicodeDecodeError as e:
                yield number, _BadInput(f"line {number} is not UTF-8 text (byte {e.start}: {e.reason})")
                continue
        line = line.rstrip("\r\n")
        if line.strip():
            yield number, _parse_input(line)


def _read_lines(raw: Iterable[bytes | str]) -> Iterator[bytes | str]:
    """The lines of stdin; an OS failure reading it (stdin is a directory, an I/O error) names stdin."""
    lines = iter(raw)
    while True:
        try:
            line = next(lines)
        except StopIteration:
            return
        except OSError as e:
            raise os_error(e, "standard input", "reading the inputs from") from e
        yield line


def _stream_batches(
    items: Iterator[tuple[int, Any]], batch_size: int, max_wait: float
) -> Iterator[list[tuple[int, Any]]]:
    """Batches of up to ``batch_size`` items; a batch is cut early when no item came for ``max_wait`` s.

    ``items`` is read in a daemon thread, so a slow producer (a person typing) never delays a result."""
    inbox: queue.Queue[tuple[int, Any] | None] = queue.Queue(maxsize=4 * batch_size)
    failure: list[BaseException] = []

    def read() -> None:
        try:
            for item in items:
                inbox.put(item)
        except BaseException as e:  # re-raised in the consuming thread
            failure.append(e)
        finally:
            inbox.put(None)

    threading.Thread(target=read, daemon=True, name="xf-pipeline-stdin").start()
    done = False
    while not done:
        first = inbox.get()
        if first is None:
            break
        batch = [first]
        deadline = time.monotonic() + max_wait
        while len(batch) < batch_size:
            try:
                item = inbox.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if item is None:
                done = True
                break
            batch.append(item)
        yield batch
    if failure:
        raise failure[0]


def setup(parser: argparse.ArgumentParser) -> Any:
    """Run a task pipeline on texts from the arguments or stdin; one JSON line out per input.

    Examples:
      xf pipeline sentence-similarity "A man is eating food." "A man eats bread." "A girl plays the violin."
      xf pipeline sentence-similarity "A man is eating food." "A man eats bread." "Stocks fell." --format table
      xf pipeline feature-extraction "Hello world" --param pooling=mean
      cat texts.txt | xf pipeline sentiment-analysis --model DIR --batch-size 32 > results.jsonl
      echo '{"question": "Where?", "context": "In Berlin."}' | xf pipeline qa --model DIR
      xf pipeline ner "John lives in Berlin." --model DIR -p aggregation_strategy=simple --device cpu
    """
    parser.add_argument(
        "task", metavar="TASK", help=f"one of {', '.join(TASKS)} (aliases: {', '.join(ALIASES)})"
    )
    parser.add_argument(
        "inputs",
        nargs="*",
        metavar="INPUT",
        help='texts (or JSON objects, e.g. \'{"question": ..., "context": ...}\'; image tasks: image file '
        "paths); none: one per line of stdin",
    )
    parser.add_argument(
        "--model", "-m", help="local directory or Hub repo id (default: the task's default model)"
    )
    parser.add_argument("--tokenizer", help="tokenizer directory or repo id (default: the model's)")
    parser.add_argument(
        "--device",
        help="cpu, cuda, cuda:1, mps, or a CUDA ordinal (default: the first accelerator, else cpu)",
    )
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
    parser.add_argument(
        "--max-wait",
        type=float,
        default=0.05,
        metavar="SECONDS",
        help="stdin: run a partial batch when no new line came for this long (default 0.05)",
    )
    parser.add_argument(
        "--fail-fast",
        action="store_true",
        help="stop at the first input that fails (default: write an error record for it and go on)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    parser.add_argument(
        "--format",
        default="json",
        choices=_FORMATS,
        help="json: one JSON line per input (default); table: an aligned table per input, for reading",
    )
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
    if args.max_wait < 0:
        return _fail(stderr, f"--max-wait must be >= 0 seconds, got {args.max_wait}.")
    if args.format == "table" and task == "feature-extraction":
        return _fail(
            stderr, "--format table does not apply to feature-extraction (vectors); use --format json."
        )
    from_stdin = not args.inputs
    if from_stdin:
        if stdin.isatty():
            stderr.write("xf pipeline: reading inputs from stdin, one per line (Ctrl-D to end)\n")
    else:
        inputs = [_parse_input(text) for text in args.inputs]
        if task == "sentence-similarity" and all(isinstance(i, str) for i in inputs):
            if len(inputs) < 2:
                return _fail(
                    stderr, "sentence-similarity needs a source sentence and at least one candidate."
                )
            inputs = [{"source_sentence": inputs[0], "sentences": inputs[1:]}]
    try:
        pipe = _build(args.task, args, params)  # as typed: translation_en_to_fr carries its languages
    except (XfError, ValueError, OSError, ImportError) as e:
        return _fail(stderr, str(e), 1)
    from xf_core.logging import progress_bar

    batch_size = args.batch_size or (16 if from_stdin else 1)
    if from_stdin:
        batches = _stream_batches(_stdin_inputs(stdin), batch_size, args.max_wait)
    else:
        numbered = list(enumerate(inputs, 1))
        batches = iter([numbered[i : i + batch_size] for i in range(0, len(numbered), batch_size)])
    bar = progress_bar(
        desc=f"xf pipeline {task}", unit="input", disable=(args.no_progress or not from_stdin) or None
    )
    failed = 0
    try:
        for batch in batches:
            items = dict(batch)
            for number, result in _run_batch(pipe, batch):
                if isinstance(result, _BadInput):
                    failed += 1
                    if args.fail_fast:
                        return _fail(stderr, f"input {number}: {result.reason}", 1)
                    line = _render_error(args.format, number, result.reason)
                else:
                    line = _render(args.format, number, items[number], result)
                write_output(line + "\n", stdout)  # a full disk: XfOSError; a closed pipe: BrokenPipeError
                bar.update(1)
    finally:
        bar.close()
    if failed:
        stderr.write(f"xf pipeline: {failed} input(s) failed; see their error records.\n")
        return 1
    return 0


def _run_batch(pipe: Any, batch: list[tuple[int, Any]]) -> Iterator[tuple[int, Any]]:
    """(number, result or :class:`_BadInput`) per item, in order. A batch that fails is run item by item, so
    the failure is pinned on its own input and the others still get their results."""
    good = [(n, item) for n, item in batch if not isinstance(item, _BadInput)]
    results: dict[int, Any] = {}
    try:
        outputs = list(pipe(iter([item for _, item in good]), batch_size=max(1, len(good)))) if good else []
        results = {n: out for (n, _), out in zip(good, outputs, strict=True)}
    except Exception:
        for n, item in good:
            try:
                results[n] = next(iter(pipe(iter([item]), batch_size=1)))
            except Exception as e:
                results[n] = _BadInput(_reason(e))
    for n, item in batch:
        yield n, item if isinstance(item, _BadInput) else results[n]


def _reason(error: Exception) -> str:
    """One line: an xf error's own message; anything else with its type, as it did not come from a check."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return text if isinstance(error, XfError) else f"{type(error).__name__}: {text}"


def _render(fmt: str, number: int, item: Any, result: Any) -> str:
    """One input's output: its JSON line, or (``table``) a title line naming the input, then its table."""
    if fmt == "json":
        return json.dumps(result, ensure_ascii=False)
    if isinstance(item, dict) and "source_sentence" in item and isinstance(result, list):
        rows = [{"score": s, "sentence": c} for s, c in zip(result, item["sentences"], strict=True)]
        return f"input {number}: {item['source_sentence']}\n{format_table(rows)}\n"
    text = item if isinstance(item, str) else json.dumps(item, ensure_ascii=False)
    return f"input {number}: {text}\n{format_table(result)}\n"


def _render_error(fmt: str, number: int, reason: str) -> str:
    if fmt == "json":
        return json.dumps({"input": number, "error": reason}, ensure_ascii=False)
    return f"input {number}: error: {reason}\n"


def format_table(result: Any) -> str:
    """A task result as an aligned text table: a list of records (dicts) gives one row each under the union of
    their keys; a single record one row; a list of those lists (several results) one table after another;
    anything else (a score, a text) its JSON. Floats are shown with 4 decimals, numbers right-aligned."""
    if isinstance(result, list) and result and all(isinstance(r, list) for r in result):
        return "\n".join(format_table(r) for r in result)
    rows = [result] if isinstance(result, dict) else result
    if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) for r in rows):
        return json.dumps(result, ensure_ascii=False)
    columns = list(dict.fromkeys(key for row in rows for key in row))
    cells = [[_cell(row.get(c, "")) for c in columns] for row in rows]
    numeric = [all(isinstance(row[c], int | float) for row in rows if c in row) for c in columns]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]

    def line(values: list[str]) -> str:
        padded = (v.rjust(w) if n else v.ljust(w) for v, w, n in zip(values, widths, numeric))
        return "  ".join(padded).rstrip()

    return "\n".join([line(columns), *(line(r) for r in cells)])


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, str):
        return value.replace("\n", " ")
    return json.dumps(value, ensure_ascii=False)


def default_device() -> str:
    """Where a task runs when ``--device`` is not given: the first accelerator torch sees (``cuda:0``, else
    ``mps``), else ``cpu``, as transformers 5's ``pipeline()`` picks it."""
    from xf_load.options import available_devices

    found = available_devices()  # "cpu" first, then each CUDA device, then "mps"
    return found[1] if len(found) > 1 else "cpu"


def _build(task: str, args: argparse.Namespace, params: dict[str, Any]) -> Any:
    from xf_pipeline._factory import pipeline

    dtype: Any = args.dtype
    if dtype != "auto":
        import torch

        dtype = getattr(torch, dtype)
    device: Any = args.device
    if device is None and "device_map" not in params:
        device = default_device()
    elif device is not None and device.lstrip("-").isdigit():
        device = int(device)
    return pipeline(task, args.model, tokenizer=args.tokenizer, device=device, dtype=dtype, **params)
