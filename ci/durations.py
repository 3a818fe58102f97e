"""Record test durations per file from JUnit reports into ``ci/durations.json`` (what the shards split on).

uv run python ci/durations.py test-results/*.xml      # after a CI run: merge its timings in
"""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

DURATIONS = Path(__file__).resolve().parent / "durations.json"


def per_file(reports: list[Path]) -> dict[str, float]:
    """Seconds per test file, summed over its test cases (xunit1 reports name the file)."""
    seconds: dict[str, float] = {}
    for report in reports:
        for case in ET.parse(report).getroot().iter("testcase"):
            if case.get("file"):
                seconds[case.get("file")] = seconds.get(case.get("file"), 0.0) + float(case.get("time", 0))
    return seconds


def main(argv: list[str] | None = None) -> int:
    reports = [Path(p) for p in (sys.argv[1:] if argv is None else argv) if not p.endswith((".rerun.xml",))]
    if not reports:
        print("give the JUnit XML reports (test-results/*.xml)", file=sys.stderr)
        return 2
    durations = json.loads(DURATIONS.read_text()) if DURATIONS.exists() else {}
    durations.update({f: round(s, 2) for f, s in per_file(reports).items()})
    DURATIONS.write_text(json.dumps(dict(sorted(durations.items())), indent=1) + "\n")
    print(f"{len(durations)} files in {DURATIONS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
