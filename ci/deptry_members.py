"""Check that every workspace member declares what it imports: deptry on each member, settings from the root.

    uv run python ci/deptry_members.py               # every member under packages/
    uv run python ci/deptry_members.py xf-train      # just these

deptry reads a project's dependencies from the pyproject.toml it reads its settings from, while here members
hold metadata and dependencies only and tool settings live once, in the root pyproject. So each member runs as
``deptry packages/<m>/src --config packages/<m>/pyproject.toml`` with the root's ``[tool.deptry]`` passed as
options. Only ``src`` is scanned: tests import the workspace's test tools (root dev group) and the siblings a
member lists in its own ``dev`` dependency group.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def options(root: Path = ROOT) -> list[str]:
    """The root pyproject's ``[tool.deptry]`` as deptry command-line options."""
    settings = dict(tomllib.loads((root / "pyproject.toml").read_text()).get("tool", {}).get("deptry", {}))
    argv = []
    if ignores := settings.pop("per_rule_ignores", {}):
        argv += [
            "--per-rule-ignores",
            ",".join(f"{code}={'|'.join(names)}" for code, names in ignores.items()),
        ]
    if settings:
        raise SystemExit(
            f"ci/deptry_members.py does not pass [tool.deptry] keys {sorted(settings)} on to deptry; "
            "add them to options() or remove them from pyproject.toml"
        )
    return argv


def main(argv: list[str] | None = None, root: Path = ROOT) -> int:
    names = (argv if argv is not None else sys.argv[1:]) or sorted(
        p.parent.name for p in root.glob("packages/*/pyproject.toml")
    )
    failed = []
    for name in names:
        member = root / "packages" / name
        command = [
            sys.executable,
            "-m",
            "deptry",
            str(member / "src"),
            "--config",
            str(member / "pyproject.toml"),
            *options(root),
        ]
        print(f"deptry {name}", flush=True)
        if subprocess.run(command, cwd=root).returncode != 0:
            failed.append(name)
    if failed:
        print(f"undeclared or unused dependencies in: {', '.join(failed)} (see above)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
