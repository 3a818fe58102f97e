"""Cold import time: ``from xf_x import Name`` vs ``from transformers import Name``, each in a fresh interpreter.

    uv run python benchmark/import_bench.py [--rounds 5]

Contenders alternate round by round; medians and xf/transformers ratios are printed and recorded.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from harness import MetricsRecorder, alternate, medians

PAIRS = {
    "AutoTokenizer": ("from xf_tokenize import AutoTokenizer", "from transformers import AutoTokenizer"),
    "AutoModel": ("from xf_load import AutoModel", "from transformers import AutoModel"),
    "pipeline": ("from xf_pipeline import pipeline", "from transformers import pipeline"),
}


def import_seconds(statement: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", statement], check=True)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--names", nargs="+", default=list(PAIRS), choices=list(PAIRS))
    args = parser.parse_args(argv)
    with MetricsRecorder("import", rounds=args.rounds) as recorder:
        run(args, recorder)


def run(args: argparse.Namespace, recorder: MetricsRecorder) -> None:
    baseline = import_seconds("pass")
    print("| import | xf s | transformers s | xf/transformers |\n|---|---|---|---|")
    for name in args.names:
        xf, hf = PAIRS[name]
        statements = {"xf": xf, "transformers": hf}
        results = alternate(
            list(statements),
            args.rounds,
            lambda who, s=statements: {"import_s": import_seconds(s[who])},
            fresh=False,
        )
        recorder.record_all(results, name=name)
        summary = medians(results)
        x, t = summary["xf"]["import_s"] - baseline, summary["transformers"]["import_s"] - baseline
        print(f"| {name} | {x:.3f} | {t:.3f} | {x / t:.2f} |")


if __name__ == "__main__":
    main()
