"""A tiny benchmark that exercises the harness end to end (used by its tests): how long ``import xf_core``
takes in a fresh interpreter, recorded for each round."""

from __future__ import annotations

import subprocess
import sys
import time

from harness import MetricsRecorder, alternate


def measure(who: str) -> dict[str, float]:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", f"import {who}"], check=True)
    return {"import_s": time.perf_counter() - start}


if __name__ == "__main__":
    recorder = MetricsRecorder("selftest")
    recorder.record_all(alternate(["xf_core"], 2, measure, fresh=False))
