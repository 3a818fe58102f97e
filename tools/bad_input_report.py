"""Run the bad-input corpus (tests-integration/test_bad_inputs.py) against xf and against transformers.

    uv run python tools/bad_input_report.py

transformers gets the same calls: its AutoModelForCausalLM, AutoTokenizer, pipeline, Trainer and
TrainingArguments stand in for xf's (cases with no transformers counterpart are "n/a"). Each outcome is one of
"typed" (an error whose type is not a raw KeyError/AttributeError/IndexError/TypeError/UnboundLocalError or a
bare RuntimeError, and whose message names the culprit), "vague" (such an error that does not name it), "raw"
and "silent" (no error at all). Prints a Markdown table and the counts.
"""

from __future__ import annotations

import importlib.util
import sys
import tempfile
import types
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RAW = (KeyError, AttributeError, IndexError, TypeError, UnboundLocalError)
XF_ONLY = {"chat-template-loop"}  # xf's own sandbox budget: no transformers call to compare
# Not run against transformers: it would try to allocate and run a 10-million-row batch ("not run").
HF_NOT_RUN = {"huge-num-beams"}


def _corpus() -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(
        "bad_inputs", ROOT / "tests-integration" / "test_bad_inputs.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _outcome(case, ctx) -> str:
    try:
        case.run(ctx)
    except BaseException as error:
        if type(error).__name__ == "Skipped":
            return "n/a"
        if isinstance(error, RAW) or type(error) is RuntimeError:
            return "raw"
        message = str(error).lower()
        return "typed" if all(n.lower() in message for n in case.names) else "vague"
    return "silent"


def _as_transformers() -> dict[str, types.ModuleType]:
    import transformers

    shims = {
        "xf_load": {"AutoModelForCausalLM": transformers.AutoModelForCausalLM},
        "xf_tokenize": {"AutoTokenizer": transformers.AutoTokenizer},
        "xf_pipeline": {"pipeline": transformers.pipeline},
        "xf_train": {"Trainer": transformers.Trainer, "TrainingArguments": transformers.TrainingArguments},
    }
    saved = {name: sys.modules.get(name) for name in shims}
    for name, attrs in shims.items():
        module = types.ModuleType(name)
        module.__dict__.update(attrs)
        sys.modules[name] = module
    return {k: v for k, v in saved.items() if v is not None}


def main() -> int:
    corpus = _corpus()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        ctx = corpus._tiny(Path(tmp))
        ctx["root"] = Path(tmp)
        xf = {case.id: _outcome(case, ctx) for case in corpus.CASES}
        saved = _as_transformers()
        try:
            hf = {
                case.id: "n/a"
                if case.id in XF_ONLY
                else "not run"
                if case.id in HF_NOT_RUN
                else _outcome(case, ctx)
                for case in corpus.CASES
            }
        finally:
            sys.modules.update(saved)
    print("| case | xf | transformers |\n|---|---|---|")
    for case in corpus.CASES:
        rows.append((case.id, xf[case.id], hf[case.id]))
        print(f"| {case.id} | {xf[case.id]} | {hf[case.id]} |")
    print(
        f"\n{len(rows)} cases. xf: {dict(Counter(xf.values()))}. transformers: {dict(Counter(hf.values()))}."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
