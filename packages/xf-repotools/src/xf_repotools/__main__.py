"""``xf-repotools COMMAND``: repository checks and tools.

  check [NAME ...] [--fix] [--root DIR] [--format text|json] [--keep-going]
  tests-fetcher --base REV [--root DIR] [--json FILE]
  modular-convert FILE [--check]      modular-detect FILE [--top N]
  dummy-models OUT                    ci-report JUNIT.xml ... [--out FILE] [--previous FILE] [--webhook URL]
  metadata OUT                        deprecations [--fix] [--stale-days N]
  all / inits / deps-table [--fix]    (aliases of `check`, `check inits`, `check deps-table`)

Exit status: 0 clean, 1 problems found, 2 usage error.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from xf_core.errors import XfError
from xf_repotools._core import git_toplevel
from xf_repotools.check import ORDER, run_checks
from xf_repotools.errors import UnknownCheckerError

__all__ = ["main"]


def _root(value: str | None) -> Path:
    return Path(value) if value else git_toplevel(Path.cwd())


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xf-repotools", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def with_root(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--root", help="repository root (default: the git top level of the working directory)")
        return p

    check = with_root(sub.add_parser("check", help="run checkers (all by default)"))
    check.add_argument("names", nargs="*", metavar="NAME", help=f"one of: {', '.join(ORDER)}")
    check.add_argument("--fix", action="store_true", help="repair what is mechanical, then check")
    check.add_argument("--format", choices=["text", "json"], default="text")
    check.add_argument("--keep-going", action="store_true", help="run every checker even after failures")
    check.add_argument("--no-cache", action="store_true", help="ignore and do not write the cache")
    for alias in ("all", "inits", "deps-table"):
        p = with_root(sub.add_parser(alias, help=f"alias of `check{'' if alias == 'all' else ' ' + alias}`"))
        p.add_argument("--fix", action="store_true")

    fetch = with_root(sub.add_parser("tests-fetcher", help="test files affected by a diff"))
    fetch.add_argument("--base", required=True, help="git revision to diff against (the merge base is used)")
    fetch.add_argument("--json", dest="json_out", help="also write the selection as JSON to this file")

    conv = with_root(sub.add_parser("modular-convert", help="modular_<name>.py -> modeling_<name>.py"))
    conv.add_argument("file")
    conv.add_argument("--check", action="store_true", help="exit 1 when the generated file is stale")
    detect = with_root(sub.add_parser("modular-detect", help="rank existing families by similarity"))
    detect.add_argument("file")
    detect.add_argument("--top", type=int, default=5)

    dummy = sub.add_parser("dummy-models", help="tiny random checkpoints for every registered family")
    dummy.add_argument("out")
    dummy.add_argument("--family", action="append", help="only these model types (repeatable)")

    report = sub.add_parser("ci-report", help="Markdown summary of JUnit XML results")
    report.add_argument("junit", nargs="+")
    report.add_argument("--out", help="write the Markdown here (default: stdout)")
    report.add_argument("--json", dest="json_out", help="write the machine-readable summary here")
    report.add_argument("--previous", help="the --json file of an earlier report: mark failures new since it")
    report.add_argument("--webhook", help="POST the summary as JSON {'text': ...} to this URL")

    meta = with_root(sub.add_parser("metadata", help="JSON/CSV table of families, tasks and auto classes"))
    meta.add_argument("out", help="a .json or .csv file")

    dep = with_root(sub.add_parser("deprecations", help="date deprecation notices; list stale models"))
    dep.add_argument("--fix", action="store_true", help="add the dates from git history")
    dep.add_argument("--stale-days", type=int, default=365)
    return parser


def _dispatch(args: argparse.Namespace) -> int:
    cmd = args.command
    if cmd == "check":
        return run_checks(
            _root(args.root),
            args.names or None,
            fix=args.fix,
            output=args.format,
            keep_going=args.keep_going,
            use_cache=not args.no_cache,
        )
    if cmd in ("all", "inits", "deps-table"):
        return run_checks(_root(args.root), None if cmd == "all" else [cmd], fix=args.fix, keep_going=True)
    if cmd == "tests-fetcher":
        from xf_repotools import tests_fetcher

        return tests_fetcher.main(_root(args.root), base=args.base, json_out=args.json_out)
    if cmd == "modular-convert":
        from xf_repotools import modular

        return modular.convert_command(_root(args.root), Path(args.file), check=args.check)
    if cmd == "modular-detect":
        from xf_repotools import modular_detect

        return modular_detect.main(_root(args.root), Path(args.file), top=args.top)
    if cmd == "dummy-models":
        from xf_repotools import dummy_models

        return dummy_models.main(Path(args.out), families=args.family)
    if cmd == "ci-report":
        from xf_repotools import ci_report

        return ci_report.main(
            [Path(p) for p in args.junit],
            out=args.out,
            json_out=args.json_out,
            previous=args.previous,
            webhook=args.webhook,
        )
    if cmd == "metadata":
        from xf_repotools import metadata

        return metadata.main(_root(args.root), Path(args.out))
    if cmd == "deprecations":
        from xf_repotools import deprecations

        return deprecations.main(_root(args.root), fix=args.fix, stale_days=args.stale_days)
    raise AssertionError(cmd)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)  # exits 2 on a bad flag
    try:
        return _dispatch(args)
    except UnknownCheckerError as e:
        print(f"xf-repotools: error: {e}", file=sys.stderr)
        return 2
    except XfError as e:
        print(f"xf-repotools: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
