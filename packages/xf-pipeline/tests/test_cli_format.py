"""``xf pipeline``: ``--format table`` (each candidate named next to its score; JSON stays the default), the
default device (the first accelerator, as transformers 5), and one-line errors with their exit codes."""

from __future__ import annotations

import json

import pytest
import torch

from xf_core.cli import main
from xf_pipeline import cli, pipeline

QUERY = ("A man is eating food.", "A girl plays the violin.", "A man is eating bread.")


def run(capsys, *args):
    code = main(["pipeline", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_table_names_each_candidate_next_to_its_score(capsys, minilm_dir):
    code, out, err = run(capsys, "sentence-similarity", *QUERY, "-m", str(minilm_dir), "--format", "table")
    assert code == 0, err
    title, header, *rows, blank = out.split("\n")[:-1]
    assert (title, header.split(), blank) == (f"input 1: {QUERY[0]}", ["score", "sentence"], "")
    expected = pipeline("sentence-similarity", model=str(minilm_dir))(
        {"source_sentence": QUERY[0], "sentences": list(QUERY[1:])}
    )
    assert [r.split(None, 1) for r in rows] == [[f"{s:.4f}", c] for s, c in zip(expected, QUERY[1:])]
    code, out, _ = run(capsys, "sentence-similarity", *QUERY, "-m", str(minilm_dir))  # the default: JSON
    assert code == 0 and json.loads(out) == pytest.approx(expected, abs=1e-6)


def test_table_of_records_one_row_each_under_their_keys(capsys, tiny_bert):
    path = str(tiny_bert("sequence"))
    code, out, err = run(
        capsys, "sentiment-analysis", "good", "bad", "-m", path, "-p", "top_k=2", "--format", "table"
    )
    assert code == 0, err
    blocks = out.split("\n\n")
    assert blocks[-1] == "" and len(blocks) == 3
    expected = pipeline("text-classification", model=path, top_k=2)(["good", "bad"])
    for block, text, want in zip(blocks, ["good", "bad"], expected):
        title, header, *rows = block.split("\n")
        assert title == f"input {blocks.index(block) + 1}: {text}" and header.split() == ["label", "score"]
        assert [r.split() for r in rows] == [[w["label"], f"{w['score']:.4f}"] for w in want]


def test_format_table_aligns_columns_and_keeps_other_values_as_json():
    table = cli.format_table([{"word": "Berlin", "score": 0.98765, "start": 14}, {"word": "J", "score": 0.5}])
    assert table.split("\n") == [
        "word     score  start",
        "Berlin  0.9877     14",
        "J       0.5000",
    ]
    assert cli.format_table({"answer": "Berlin", "score": 0.25}) == "answer   score\nBerlin  0.2500"
    assert cli.format_table("plain text") == '"plain text"'


@pytest.mark.parametrize(
    ("cuda", "mps", "expected"), [(2, False, "cuda:0"), (0, True, "mps"), (0, False, "cpu")]
)
def test_the_default_device_is_the_first_accelerator(monkeypatch, cuda, mps, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
    assert cli.default_device() == expected


def test_the_cli_runs_on_the_default_device_unless_told(capsys, monkeypatch):
    seen = []

    def fake_pipeline(task, model, *, device, **kwargs):
        seen.append(device)
        return lambda items, batch_size: [[0.5] for _ in items]

    monkeypatch.setattr("xf_pipeline._factory.pipeline", fake_pipeline)
    monkeypatch.setattr(cli, "default_device", lambda: "cuda:0")
    assert run(capsys, "sentence-similarity", "a", "b")[0] == 0
    assert run(capsys, "sentence-similarity", "a", "b", "--device", "cpu")[0] == 0
    assert run(capsys, "sentence-similarity", "a", "b", "--device", "1")[0] == 0
    assert run(capsys, "sentence-similarity", "a", "b", "-p", 'device_map="auto"')[0] == 0
    assert seen == ["cuda:0", "cpu", 1, None]


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (
            ("--device", "cuda:7"),
            1,
            "device='cuda:7'",
        ),  # no such device here (the CPU-only CI, or too few GPUs)
        (("--device", "nosuch"), 1, "device='nosuch' is not a device torch knows"),
        (("--format", "yaml"), 2, "invalid choice: 'yaml'"),
        (("--format", "table", "--param", "pooling=mean"), 2, "--format table does not apply"),
    ],
)
def test_every_error_is_one_line_and_a_nonzero_code(capsys, tiny_bert, args, code, needle):
    model = str(tiny_bert("base"))
    capsys.readouterr()  # the fixture's own output, when it builds the model
    try:
        got, out, err = run(capsys, "feature-extraction", "hello", "-m", model, *args)
    except SystemExit as e:  # argparse's own usage errors
        got, (out, err) = e.code, capsys.readouterr()
    assert got == code and out == ""
    *usage, last = err.strip().splitlines()
    assert last.startswith("xf pipeline: error: ") and needle in last and "Traceback" not in err
    assert not usage or (code == 2 and usage[0].startswith("usage: xf pipeline"))  # argparse's usage lines
