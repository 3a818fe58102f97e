"""``xf pipeline`` end to end: three runs in subprocesses (arguments on the default model, stdin, a bad
task), the other cases in-process through ``xf_core.cli.main`` (same parser, same handler)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import pytest

from xf_core.cli import main
from xf_pipeline import pipeline
from xf_pipeline.cli import parse_param


def xf(*args, stdin=None):
    return subprocess.run(
        [sys.executable, "-m", "xf_core.cli", "pipeline", *args],
        input=stdin,
        capture_output=True,
        text=True,
        # CI silences progress bars (XF_DISABLE_PROGRESS=1); these runs check the bar, so they allow it.
        env={**{k: v for k, v in os.environ.items() if k != "XF_DISABLE_PROGRESS"}, "HF_HUB_OFFLINE": "1"},
        timeout=300,
    )


def lines(stdout):
    return [json.loads(line) for line in stdout.splitlines()]


def run_here(capsys, monkeypatch, *args, stdin=None):
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = main(["pipeline", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_main_job_on_the_embedded_default_model_offline():
    # options may come between inputs; the default model is the installed all-MiniLM-L6-v2 (no network)
    run = xf(
        "sentence-similarity",
        "A man is eating food.",
        "--batch-size",
        "2",
        "A man eats a meal.",
        "Stocks fell.",
    )
    assert run.returncode == 0, run.stderr
    (scores,) = lines(run.stdout)
    assert len(scores) == 2 and scores[0] > 0.6 > scores[1]  # the real MiniLM knows paraphrases


def test_stdin_lines_json_inputs_and_progress_bar(tiny_bert):
    path = str(tiny_bert("sequence"))
    text = 'I liked it\n\nterrible film\n{"text": "a", "text_pair": "b"}\n'
    run = xf("sentiment-analysis", "-m", path, "-p", "top_k=2", "--batch-size", "2", stdin=text)
    assert run.returncode == 0, run.stderr
    out = lines(run.stdout)
    assert len(out) == 3  # the blank line is skipped
    assert all(len(r) == 2 and set(r[0]) == {"label", "score"} for r in out)
    assert "xf pipeline text-classification" in run.stderr and "3" in run.stderr  # the bar's final line
    expected = pipeline("text-classification", model=path, top_k=2)(["I liked it", "terrible film"])
    assert [[r["label"] for r in row] for row in out[:2]] == [[r["label"] for r in row] for row in expected]


def test_bad_task_in_a_subprocess():
    run = xf("speech-to-poetry", "hello")
    assert run.returncode == 2 and run.stdout == ""
    assert "unknown task 'speech-to-poetry'" in run.stderr and "feature-extraction" in run.stderr


def test_args_give_one_json_line_per_input_equal_to_the_python_api(capsys, monkeypatch, tiny_bert):
    path = str(tiny_bert("base"))
    code, out, _ = run_here(
        capsys, monkeypatch, "embeddings", "first text", "--model", path, "-p", "pooling=mean", "two"
    )
    assert code == 0
    got = lines(out)
    expected = pipeline("feature-extraction", model=path, pooling="mean")(["first text", "two"])
    assert len(got) == 2 and len(got[0]) == 32
    for row, want in zip(got, expected):
        assert row == pytest.approx(want, abs=1e-5)


def test_json_inputs_for_question_answering(capsys, monkeypatch, tiny_bert):
    path = str(tiny_bert("qa"))
    item = {"question": "Where does John live?", "context": "John lives in Berlin."}
    code, out, _ = run_here(
        capsys, monkeypatch, "qa", "-m", path, "--no-progress", stdin=json.dumps(item) + "\n"
    )
    assert code == 0
    assert lines(out) == [pipeline("question-answering", model=path)(item)]


def test_bad_parameters_and_models_fail_clearly(capsys, monkeypatch, tmp_path, tiny_bert):
    code, _, err = run_here(capsys, monkeypatch, "ner", "--param", "top_k", "hello")
    assert code == 2 and "key=value" in err
    code, _, err = run_here(capsys, monkeypatch, "ner", "hello")
    assert code == 1 and "token-classification head" in err and "--model" in err
    code, _, err = run_here(capsys, monkeypatch, "ner", "--model", str(tmp_path / "missing"), "hello")
    assert code == 1 and "missing" in err
    path = str(tiny_bert("token"))
    code, _, err = run_here(capsys, monkeypatch, "ner", "-m", path, "-p", "aggregation=simple", "hello")
    assert code == 1 and "'aggregation'" in err and "aggregation_strategy" in err
    code, out, err = run_here(capsys, monkeypatch, "fill-mask", "-m", path, "no mask here")
    assert code == 1 and "1 input(s) failed" in err
    (record,) = lines(out)
    assert record["input"] == 1 and "mask" in record["error"]


def test_parse_param():
    assert parse_param("top_k=3") == ("top_k", 3)
    assert parse_param('labels=["a", "b"]') == ("labels", ["a", "b"])
    assert parse_param("pooling=mean") == ("pooling", "mean")
    assert parse_param("multi_label=true") == ("multi_label", True)
    with pytest.raises(ValueError, match="key=value"):
        parse_param("=3")
