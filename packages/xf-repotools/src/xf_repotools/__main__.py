"""``xf-repotools CHECK [--fix] [--root DIR]``: repository consistency checks, one per subcommand."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from xf_repotools import deps_table, inits

CHECKS = {"deps-table": deps_table.run, "inits": inits.run}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="xf-repotools", description=__doc__)
    parser.add_argument("check", choices=[*CHECKS, "all"], help="which check to run")
    parser.add_argument("--fix", action="store_true", help="rewrite what is out of date instead of failing")
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="workspace root (default: cwd)")
    args = parser.parse_args(argv)
    names = list(CHECKS) if args.check == "all" else [args.check]
    return max(CHECKS[name](args.root, fix=args.fix) for name in names)


if __name__ == "__main__":
    sys.exit(main())
