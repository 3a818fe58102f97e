"""``xf train`` end to end: one run in a subprocess (the installed command, its progress bar and output), the
others in-process through ``xf_core.cli.main`` (same parser, same handler) on tiny models saved here."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from xf_core.cli import main
from xf_core.testing import copy_minilm_tokenizer

TEXTS = [
    "the cat sat on the mat",
    "a dog ran in the park",
    "tokenizers split words into pieces",
    "hello world",
    "training a tiny model",
    "the park was green",
]
TINY = {"vocab_size": 30522, "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1}
TINY.update(num_attention_heads=2, max_position_embeddings=64)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A tiny Llama and a tiny BERT classifier (random, saved by xf-load) with the MiniLM tokenizer, and data."""
    from xf_load import AutoConfig, AutoModelForCausalLM, AutoModelForSequenceClassification

    root = tmp_path_factory.mktemp("xf_train_cli")
    torch.manual_seed(0)
    lm = AutoModelForCausalLM.from_config(AutoConfig.for_model("llama", num_key_value_heads=1, **TINY))
    lm.save_pretrained(root / "lm")
    classifier = AutoModelForSequenceClassification.from_config(AutoConfig.for_model("bert", **TINY))
    classifier.save_pretrained(root / "cls")
    for name in ("lm", "cls"):
        copy_minilm_tokenizer(root / name)
    rows = [{"text": t, "label": ["negative", "positive"][i % 2]} for i, t in enumerate(TEXTS * 2)]
    (root / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    csv_rows = ["sentence,label", *(f"{r['text']},{r['label']}" for r in rows)]
    (root / "train.csv").write_text("\n".join(csv_rows) + "\n")
    (root / "train.txt").write_text("\n\n".join(TEXTS * 2) + "\n")  # one example a line; blank lines skipped
    return root


def run_here(capsys, *args):
    code = main(["train", "--no-progress", *args])
    out, err = capsys.readouterr()
    return code, out, err


def _weights(folder):
    return load_file(str(folder / "model.safetensors"))


def test_xf_train_fine_tunes_a_causal_lm_from_jsonl_in_a_subprocess(files, tmp_path):
    from xf_load import AutoModelForCausalLM
    from xf_tokenize import AutoTokenizer

    out = tmp_path / "run"
    args = [
        "--model",
        str(files / "lm"),
        "--train-file",
        str(files / "train.jsonl"),
        "--output-dir",
        str(out),
    ]
    args += [
        "--max_steps",
        "4",
        "--save_steps",
        "2",
        "--logging_steps",
        "1",
        "--per_device_train_batch_size",
        "4",
    ]
    done = subprocess.run(
        [sys.executable, "-m", "xf_core.cli", "train", *args, "--learning_rate", "1e-2"],
        capture_output=True,
        text=True,
        # CI silences progress bars (XF_DISABLE_PROGRESS=1); this run checks the bar, so it allows it.
        env={**{k: v for k, v in os.environ.items() if k != "XF_DISABLE_PROGRESS"}, "HF_HUB_OFFLINE": "1"},
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert "4/4" in done.stderr  # the progress bar reached the last step
    lines = done.stdout.splitlines()
    assert lines[0].startswith("trained 4 steps, ") and "last logged loss " in lines[0]
    assert f"model saved to {out}" in lines
    for name, what in (("logs.jsonl", "training log"), ("training_curves.png", "training curves")):
        assert (f"{what}: {out / name}" in lines) == (out / name).is_file()
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]

    model = AutoModelForCausalLM.from_pretrained(out)  # the result loads, with its tokenizer
    tokenizer = AutoTokenizer.from_pretrained(out)
    batch = tokenizer(TEXTS[:2], padding=True, return_tensors="pt")
    with torch.no_grad():
        trained = model(**batch, labels=batch["input_ids"]).loss
        start = AutoModelForCausalLM.from_pretrained(files / "lm")(**batch, labels=batch["input_ids"]).loss
    assert trained < start - 0.2  # four steps at lr 1e-2 on its own data: the loss fell
    card = (out / "README.md").read_text()
    assert "- learning_rate: 0.01\n" in card and "the train.jsonl dataset" in card and "model-index:" in card


def test_resume_continues_the_run_to_the_same_weights(files, tmp_path, capsys):
    common = ["--model", str(files / "lm"), "--train_file", str(files / "train.txt"), "--max_steps", "4"]
    common += ["--save_steps", "2", "--per_device_train_batch_size", "3", "--learning_rate", "1e-3"]
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    assert run_here(capsys, *common, "--output_dir", str(whole))[0] == 0
    resumed.mkdir()  # a run killed after its first checkpoint
    shutil.copytree(whole / "checkpoint-2", resumed / "checkpoint-2")

    code, _, err = run_here(capsys, *common, "--output_dir", str(resumed))
    assert code == 1 and "already holds checkpoints (checkpoint-2); pass --resume" in err
    code, out, err = run_here(capsys, *common, "--output_dir", str(resumed), "--resume")
    assert code == 0, err
    assert out.startswith("trained 4 steps")
    expected, got = _weights(whole), _weights(resumed)
    assert expected.keys() == got.keys()
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=0, atol=0)
    assert not torch.equal(
        expected["model.embed_tokens.weight"], _weights(whole / "checkpoint-2")["model.embed_tokens.weight"]
    )  # steps 3 and 4 did change the weights

    code, _, err = run_here(capsys, *common, "--output_dir", str(tmp_path / "empty"), "--resume")
    assert code == 1 and "holds no checkpoint-<step> folder" in err


def test_classifier_from_csv_with_a_config_file_and_flag_overrides(files, tmp_path, capsys):
    config = tmp_path / "train.yaml"
    config.write_text(
        f"model: {files / 'cls'}\ntask: sequence-classification\ntrain_file: {files / 'train.csv'}\n"
        f"text_column: sentence\nlearning_rate: 1e-2\nmax_steps: 50\noutput_dir: {tmp_path / 'out'}\n"
        "eval_strategy: steps\neval_steps: '2'\n"  # YAML reads 1e-2 as text; numbers as text are converted
    )
    code, out, err = run_here(
        capsys,
        *("--config", str(config), "--max_steps", "3", "--validation_file", str(files / "train.csv")),
    )
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("trained 3 steps")  # the flag overrode the file's max_steps
    assert any(line.startswith("eval_accuracy: ") for line in lines)
    card = (tmp_path / "out" / "README.md").read_text()
    assert "### Training results" in card and "| Accuracy" in card  # the evaluation at step 2
    assert "metrics:\n- accuracy\n" in card  # the front matter's metric tags
    saved = json.loads((tmp_path / "out" / "config.json").read_text())
    assert saved["id2label"] == {"0": "negative", "1": "positive"}  # names sorted into ids
    assert saved["label2id"] == {"negative": 0, "positive": 1}


FILES = {
    "broken.jsonl": '{"text": "fine"}\n{"text": broken\n',
    "ok.jsonl": '{"text": "fine"}\n',
    "x.parquet": "",
    "x.txt": "a line\n",
    "x.yaml": "bogus: 1\nlearning_rate: 1e-3\n",
}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--train_file", "{d}/train.jsonl"], "--model is required"),
        (["--model", "{d}/lm", "--train_file", "{t}/none.jsonl"], "no such data file: "),
        (["--model", "{d}/lm", "--train_file", "{t}/broken.jsonl"], "broken.jsonl:2: not a JSON object"),
        (["--model", "{d}/lm", "--train_file", "{t}/x.parquet"], "unsupported data file type '.parquet'"),
        (
            ["--model", "{d}/lm", "--train_file", "{t}/ok.jsonl", "--text_column", "body"],
            "no text under 'body'",
        ),
        (
            ["--model", "{d}/cls", "--task", "sequence-classification", "--train_file", "{t}/x.txt"],
            "no labels",
        ),
        (
            ["--model", "{d}/cls", "--task", "sequence-classification", "--train_file", "{t}/ok.jsonl"],
            "no usable label",
        ),
        (["--config", "{t}/x.yaml"], "x.yaml: unknown keys ['bogus']"),
        (
            ["--model", "{d}/lm", "--train_file", "{t}/ok.jsonl", "--eval_strategy", "epoch"],
            "needs a --validation_file",
        ),
    ],
)
def test_mistakes_end_as_one_line(files, tmp_path, capsys, args, message):
    for name, text in FILES.items():
        (tmp_path / name).write_text(text)
    argv = [a.format(d=files, t=tmp_path) for a in args]
    code, _, err = run_here(capsys, *argv, "--output_dir", str(tmp_path / "out"))
    assert code == 1
    assert err.startswith("xf train: error: ") and err.count("\n") == 1
    assert message in err
    assert not (tmp_path / "out").exists()


def test_without_xf_tokenize_the_command_says_to_install_it(files, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "xf_tokenize", None)  # as if not installed: importing it fails
    code, _, err = run_here(
        capsys,
        "--model",
        str(files / "lm"),
        "--train_file",
        str(files / "train.txt"),
        "--output_dir",
        str(tmp_path),
    )
    assert code == 1 and "pip install xf-tokenize" in err


def test_nproc_2_runs_under_torchrun_like_one_process_with_the_whole_batch(files, tmp_path, capsys):
    """``xf train --nproc 2`` relaunches itself under torchrun: 2 processes of batch 3 log the losses and end
    with the weights of one process of batch 6, and print one summary."""
    common = ["--model", str(files / "lm"), "--train_file", str(files / "train.jsonl"), "--max_steps", "3"]
    common += ["--logging_steps", "1", "--learning_rate", "1e-2", "--no-progress", "--save_steps", "10"]
    single, parallel = tmp_path / "single", tmp_path / "parallel"
    assert (
        run_here(capsys, *common, "--per_device_train_batch_size", "6", "--output_dir", str(single))[0] == 0
    )
    command = [sys.executable, "-m", "xf_core.cli", "train", *common, "--per_device_train_batch_size", "3"]
    done = subprocess.run(
        [*command, "--output_dir", str(parallel), "--nproc", "2"],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"},
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-5000:]
    assert done.stdout.count("trained 3 steps, ") == 1 and f"model saved to {parallel}" in done.stdout

    def losses(folder):
        lines = (folder / "logs.jsonl").read_text().splitlines()
        return [json.loads(line)["loss"] for line in lines if '"loss"' in line]

    assert losses(parallel) == pytest.approx(losses(single), rel=1e-5)
    want, got = _weights(single), _weights(parallel)
    assert max((want[k] - got[k]).abs().max().item() for k in want) < 1e-4
