"""dummy-models, ci-report, metadata, deprecations, and xf-repotools' checkers staying torch-free."""

import csv
import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from xf_repotools.__main__ import main
from xf_repotools.testing import git, write_files

ROOT = Path(__file__).resolve().parents[3]


def test_checkers_and_import_never_load_torch():
    code = (
        "import sys; sys.modules['torch'] = None\n"  # any import of torch now fails
        "from xf_repotools.check import run_checks\n"
        "import io\n"
        f"rc = run_checks(__import__('pathlib').Path({str(ROOT)!r}), keep_going=True, use_cache=False,"
        " stream=io.StringIO())\n"
        "from xf_repotools import tests_fetcher, metadata, ci_report, deprecations, modular_detect\n"
        "print(rc, sorted(m for m in sys.modules if m.startswith(('torch', 'xf_load'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split(maxsplit=1) == ["0", "['torch']\n"]  # only our blocker; nothing imported it


def test_dummy_models_without_torch_names_what_to_install(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    assert main(["dummy-models", str(tmp_path / "out")]) == 2
    assert "torch" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_dummy_models_load_and_run(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    from xf_load import AutoModel
    from xf_tokenize import AutoTokenizer

    assert main(["dummy-models", str(tmp_path), "--family", "llama", "--family", "bert"]) == 0
    assert capsys.readouterr().out.split() == [str(tmp_path / "bert"), str(tmp_path / "llama")]
    for model_type in ("bert", "llama"):
        folder = tmp_path / model_type
        assert {p.name for p in folder.iterdir()} >= {"config.json", "model.safetensors", "tokenizer.json"}
        assert json.loads((folder / "config.json").read_text())["model_type"] == model_type
        tokenizer = AutoTokenizer.from_pretrained(folder)
        model = AutoModel.from_pretrained(folder)
        ids = torch.tensor([tokenizer("w1 w2 w3")["input_ids"]])
        assert ids.shape[1] == 3 and int(ids.max()) < model.config.vocab_size
        with torch.no_grad():
            hidden = model(ids).last_hidden_state
        assert hidden.shape == (1, 3, 32)
    assert main(["dummy-models", str(tmp_path), "--family", "nope"]) == 2


JUNIT = """<?xml version="1.0"?>
<testsuites><testsuite name="pytest" tests="4">
 <testcase classname="packages.xf-load.tests.test_llama" name="test_a" file="packages/xf-load/tests/test_llama.py"/>
 <testcase classname="packages.xf-load.tests.test_llama" name="test_b" file="packages/xf-load/tests/test_llama.py">
  <failure message="AssertionError: tensors differ | a lot">trace</failure></testcase>
 <testcase classname="packages.xf-tokenize.tests.test_api" name="test_c" file="packages/xf-tokenize/tests/test_api.py">
  <error message="ImportError: no module named x" type="ImportError">trace</error></testcase>
 <testcase classname="packages.xf-tokenize.tests.test_api" name="test_d"><skipped message="slow"/></testcase>
</testsuite></testsuites>
"""


def test_ci_report_summarises_new_failures_and_statistics(tmp_path):
    (tmp_path / "run.xml").write_text(JUNIT)
    (tmp_path / "prev.json").write_text(
        json.dumps({"failed": ["packages.xf-tokenize.tests.test_api::test_c", "gone::x"]})
    )
    received = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.handle_request)
    thread.start()
    args = [
        "ci-report",
        str(tmp_path / "run.xml"),
        "--out",
        str(tmp_path / "r.md"),
        "--json",
        str(tmp_path / "r.json"),
    ]
    args += [
        "--previous",
        str(tmp_path / "prev.json"),
        "--webhook",
        f"http://127.0.0.1:{server.server_port}/",
    ]
    assert main(args) == 0
    thread.join(10)
    server.server_close()
    md = (tmp_path / "r.md").read_text()
    assert "4 tests: 1 passed, 1 failed, 1 errors, 1 skipped." in md
    assert (
        "## New failures since the previous report (1)\n\n- `packages.xf-load.tests.test_llama::test_b`: AssertionError"
        in md
    )
    assert "## Fixed since the previous report (1)\n\n- `gone::x`" in md
    assert "| AssertionError | 1 |" in md and "| ImportError | 1 |" in md
    assert "| xf-load | 1 |" in md and "| xf-tokenize | 1 |" in md
    assert "tensors differ \\| a lot" in md
    assert json.loads((tmp_path / "r.json").read_text())["by_package"] == {"xf-load": 1, "xf-tokenize": 1}
    assert received == [{"text": md}]


def test_metadata_json_and_csv(tmp_path):
    assert main(["metadata", str(tmp_path / "m.json"), "--root", str(ROOT)]) == 0
    table = json.loads((tmp_path / "m.json").read_text())
    assert table["qwen2"]["config"] == "Qwen2Config"
    assert table["qwen2"]["auto_classes"]["AutoModelForCausalLM"] == "Qwen2ForCausalLM"
    assert "fill-mask" in table["bert"]["tasks"] and "text-generation" in table["gpt2"]["tasks"]
    from xf_load.auto import FAMILIES
    from xf_load.heads import HEAD_TASKS

    assert set(table) == set(FAMILIES)
    # the tasks are xf-load's own head-kind table, read without importing it
    for model_type, family in FAMILIES.items():
        assert table[model_type]["tasks"] == sorted({HEAD_TASKS[kind] for kind in family.heads})
    assert "text2text-generation" in table["t5"]["tasks"]
    assert main(["metadata", str(tmp_path / "m.csv"), "--root", str(ROOT)]) == 0
    rows = list(csv.DictReader((tmp_path / "m.csv").open()))
    assert {"model_type": "gpt2", "head": "causal_lm", "auto_class": "AutoModelForCausalLM"}.items() <= rows[
        next(i for i, r in enumerate(rows) if r["model_type"] == "gpt2" and r["head"] == "causal_lm")
    ].items()


def test_deprecations_dates_notices_from_history_and_lists_stale_families(tmp_path, capsys):
    root = write_files(
        tmp_path,
        {
            "lib/__init__.py": "",
            "lib/api.py": """
            import warnings


            def old():
                warnings.warn("old() is deprecated; use new()", FutureWarning)


            def fine():
                warnings.warn("not about deprecation", UserWarning)
            """,
            "lib/models/__init__.py": "",
            "lib/models/alpha.py": "# deprecated: use beta\n",
        },
    )
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "old", date="2020-01-02T12:00:00+00:00")
    assert main(["deprecations", "--root", str(root)]) == 1
    out = capsys.readouterr().out
    assert "lib/api.py:5: deprecation notice without a date (introduced 2020-01-02)" in out
    assert "lib/models/alpha.py:1: deprecation notice without a date (introduced 2020-01-02)" in out
    assert "stale: lib/models/alpha.py last changed 2020-01-02" in out
    assert main(["deprecations", "--root", str(root), "--fix"]) == 0
    assert (
        'warnings.warn("old() is deprecated (since 2020-01-02); use new()", FutureWarning)'
        in (root / "lib/api.py").read_text()
    )
    assert (root / "lib/models/alpha.py").read_text() == "# deprecated (since 2020-01-02): use beta\n"
    capsys.readouterr()
    assert main(["deprecations", "--root", str(root), "--stale-days", "100000"]) == 0
    assert capsys.readouterr().out == ""
