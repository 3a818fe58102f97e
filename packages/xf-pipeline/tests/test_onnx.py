"""``xf export onnx`` writes a graph with dynamic batch and length that onnxruntime runs to the eager
model's outputs; ``SentenceTransformer(..., backend="onnx")`` embeds as the torch backend does."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from xf_core.cli import main
from xf_pipeline import SentenceTransformer
from xf_pipeline._onnx import OnnxEncoder

TEXTS = ["short", "a somewhat longer sentence with several more words in it", "x " * 40]


@pytest.fixture(scope="module")
def exported(tiny_bert, tmp_path_factory):
    """A copy of a tiny BERT with ``onnx/model.onnx`` written by ``xf export onnx`` (exported once: slow)."""
    path = tmp_path_factory.mktemp("onnx") / "bert"
    shutil.copytree(tiny_bert("base"), path)
    code = main(["export", "onnx", str(path), str(path / "onnx")])
    return path, code


def test_export_command_writes_a_graph_onnxruntime_runs_like_eager(exported, capfd):
    path, code = exported
    assert code == 0 and (path / "onnx" / "model.onnx").is_file()
    # other shapes than the export's samples: 3 rows, padded to 41 tokens
    from xf_load import AutoModel
    from xf_tokenize import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    encoded = tokenizer(TEXTS, padding=True)
    batch = {k: torch.tensor(encoded[k]) for k in ("input_ids", "attention_mask", "token_type_ids")}
    with torch.no_grad():
        want = AutoModel.from_pretrained(path, dtype=torch.float32)(**batch).last_hidden_state
    got = OnnxEncoder(path / "onnx" / "model.onnx")(batch)
    mask = batch["attention_mask"].bool()
    torch.testing.assert_close(got[mask], want[mask], atol=1e-4, rtol=1e-4)


def test_export_command_fails_in_one_line(tmp_path, capsys):
    code = main(["export", "onnx", str(tmp_path / "missing"), str(tmp_path / "out.onnx")])
    err = capsys.readouterr().err
    assert code == 1 and len(err.strip().splitlines()) == 1 and "missing" in err
    assert not (tmp_path / "out.onnx").exists()


def test_onnx_backend_embeds_as_torch(exported):
    path, _ = exported
    torch_model = SentenceTransformer(path, device="cpu")
    onnx_model = SentenceTransformer(path, device="cpu", backend="onnx")  # uses the model's onnx/model.onnx
    assert onnx_model._onnx.path == path / "onnx" / "model.onnx"
    np.testing.assert_allclose(onnx_model.encode(TEXTS, batch_size=2), torch_model.encode(TEXTS), atol=1e-5)
