"""``xf-repotools ci-report JUNIT.xml ...``: a Markdown summary of test runs, for CI pages and chat.

The generic form of transformers' CI error statistics and Slack notifiers: totals, every failure (test, error
type, first line of the message), failures new since a previous report (``--previous`` reads the ``--json``
file an earlier run wrote), and error counts by error type and by package (``packages/<name>/...`` in the
test's file or class name). ``--webhook URL`` POSTs ``{"text": <markdown>}`` (Slack/Mattermost/Teams style).
"""

from __future__ import annotations

import json
import re
import urllib.request
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from xf_repotools.errors import RepoToolsError

__all__ = ["Failure", "Summary", "read_junit", "render"]


@dataclass(frozen=True)
class Failure:
    test: str  # "classname::name"
    kind: str  # "failure" or "error"
    error_type: str
    message: str
    package: str


@dataclass
class Summary:
    tests: int = 0
    failures: int = 0
    errors: int = 0
    skipped: int = 0
    failed: list[Failure] | None = None


def _package(classname: str, file: str) -> str:
    text = file or classname.replace(".", "/")
    match = re.search(r"packages/([\w.-]+)/", text)
    if match:
        return match.group(1)
    match = re.search(r"(?:^|[./])(xf[-_][a-z]+)", text)
    return match.group(1).replace("_", "-") if match else (text.split("/")[0] or "other")


def _error_type(element: ET.Element) -> str:
    kind = element.get("type") or ""
    if not kind:
        message = element.get("message") or (element.text or "")
        match = re.match(r"\s*([A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt))\b", message)
        kind = match.group(1) if match else "unknown"
    return kind.rsplit(".", 1)[-1]


def read_junit(paths: list[Path]) -> Summary:
    summary = Summary(failed=[])
    for path in paths:
        try:
            root = ET.parse(path).getroot()
        except (OSError, ET.ParseError) as e:
            raise RepoToolsError(f"{path}: not a readable JUnit XML file ({e})") from e
        for case in root.iter("testcase"):
            summary.tests += 1
            classname, name = case.get("classname", ""), case.get("name", "")
            for kind in ("failure", "error"):
                element = case.find(kind)
                if element is None:
                    continue
                if kind == "failure":
                    summary.failures += 1
                else:
                    summary.errors += 1
                message = (element.get("message") or element.text or "").strip().splitlines()
                summary.failed.append(  # type: ignore[union-attr]
                    Failure(
                        f"{classname}::{name}",
                        kind,
                        _error_type(element),
                        message[0][:200] if message else "",
                        _package(classname, case.get("file", "")),
                    )
                )
                break
            if case.find("skipped") is not None:
                summary.skipped += 1
    return summary


def _cell(text: str) -> str:
    return text.replace("|", r"\|")


def render(summary: Summary, *, previous: set[str] | None = None) -> str:
    failed = summary.failed or []
    passed = summary.tests - summary.failures - summary.errors - summary.skipped
    lines = [
        "# Test report",
        "",
        f"{summary.tests} tests: {passed} passed, {summary.failures} failed, {summary.errors} errors, "
        f"{summary.skipped} skipped.",
        "",
    ]
    if previous is not None:
        new = [f for f in failed if f.test not in previous]
        fixed = sorted(previous - {f.test for f in failed})
        lines += [f"## New failures since the previous report ({len(new)})", ""]
        lines += [f"- `{f.test}`: {f.error_type}: {f.message}" for f in new] or ["None."]
        lines += ["", f"## Fixed since the previous report ({len(fixed)})", ""]
        lines += [f"- `{t}`" for t in fixed] or ["None."]
        lines.append("")
    if failed:
        lines += ["## Failures", "", "| test | package | error | message |", "|---|---|---|---|"]
        lines += [f"| `{f.test}` | {f.package} | {f.error_type} | {_cell(f.message)} |" for f in failed]
        lines += ["", "## Errors by type", "", "| error | count |", "|---|---|"]
        lines += [f"| {k} | {n} |" for k, n in Counter(f.error_type for f in failed).most_common()]
        lines += ["", "## Errors by package", "", "| package | count |", "|---|---|"]
        lines += [f"| {k} | {n} |" for k, n in Counter(f.package for f in failed).most_common()]
        lines.append("")
    return "\n".join(lines)


def main(
    paths: list[Path],
    *,
    out: str | None,
    json_out: str | None,
    previous: str | None,
    webhook: str | None,
) -> int:
    summary = read_junit(paths)
    before = None
    if previous is not None:
        try:
            before = set(json.loads(Path(previous).read_text())["failed"])
        except (OSError, ValueError, KeyError) as e:
            raise RepoToolsError(
                f"--previous {previous}: not a report written by `ci-report --json` ({e})"
            ) from e
    text = render(summary, previous=before)
    if out:
        Path(out).write_text(text)
    else:
        print(text)
    if json_out:
        failed = summary.failed or []
        payload = {
            "tests": summary.tests,
            "failures": summary.failures,
            "errors": summary.errors,
            "skipped": summary.skipped,
            "failed": [f.test for f in failed],
            "by_type": dict(Counter(f.error_type for f in failed)),
            "by_package": dict(Counter(f.package for f in failed)),
        }
        Path(json_out).write_text(json.dumps(payload, indent=2) + "\n")
    if webhook:
        request = urllib.request.Request(
            webhook,
            data=json.dumps({"text": text}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                response.read()
        except OSError as e:
            raise RepoToolsError(
                f"--webhook {webhook}: the POST failed ({e}); the report is still written"
            ) from e
    return 0
