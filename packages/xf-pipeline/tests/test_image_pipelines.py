"""The image tasks against transformers' pipelines on tiny random ViT and CLIP checkpoints with their processors,
on image files written here: same labels and scores, same features; batching changes nothing; bad inputs
(truncated or non-image files, URLs offline, unknown processor classes) are typed errors; ``xf pipeline``
reads image paths; ``import xf_pipeline`` and text tasks never import Pillow."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

PIL = pytest.importorskip("PIL")
from PIL import Image  # noqa: E402

from xf_core.errors import XfConfigError  # noqa: E402
from xf_core.testing import copy_minilm_tokenizer, imported_modules  # noqa: E402
from xf_load.testing import FAMILIES, save_tiny_transformers_checkpoint  # noqa: E402
from xf_pipeline import pipeline  # noqa: E402
from xf_pipeline.errors import PipelineInputError, PipelineParameterError  # noqa: E402
from xf_tokenize.errors import ImageProcessingError  # noqa: E402

transformers = pytest.importorskip("transformers")

LABELS = {0: "cat", 1: "dog", 2: "bird", 3: "fish", 4: "frog", 5: "horse"}
SIZE = {"height": 30, "width": 30}


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Image files of different kinds, and two bad ones."""
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:37, 0:53]
    gradient = np.stack([x * 4, y * 6, (x + y) * 2], axis=-1).clip(0, 255).astype(np.uint8)
    Image.fromarray(gradient).save(root / "gradient.png")
    Image.fromarray(rng.integers(0, 256, (61, 29, 3), dtype=np.uint8)).save(root / "noise.jpg", quality=95)
    Image.fromarray(gradient[..., 0]).save(root / "gray.png")
    rgba = rng.integers(0, 256, (40, 40, 4), dtype=np.uint8)
    Image.fromarray(rgba, mode="RGBA").save(root / "rgba.png")
    good = [str(root / name) for name in ("gradient.png", "noise.jpg", "gray.png", "rgba.png")]
    whole = (root / "noise.jpg").read_bytes()
    (root / "truncated.jpg").write_bytes(whole[: len(whole) // 2])
    (root / "notes.txt").write_text("not an image\n")
    return {"good": good, "truncated": str(root / "truncated.jpg"), "text": str(root / "notes.txt")}


@pytest.fixture(scope="module")
def vit_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("vit") / "vit"
    save_tiny_transformers_checkpoint(
        "ViTForImageClassification", path, id2label=LABELS, label2id={v: k for k, v in LABELS.items()}
    )
    transformers.ViTImageProcessorPil(size=SIZE).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    """A tiny CLIP that reads MiniLM's tokenizer (its vocabulary, [SEP] as the end token) and its processor."""
    root = tmp_path_factory.mktemp("clip")
    text = {**FAMILIES["CLIPText"].tiny, "vocab_size": 30522, "eos_token_id": 102, "pad_token_id": 0}
    text["max_position_embeddings"] = 64
    path = save_tiny_transformers_checkpoint("CLIPModel", root / "clip", text_config=text)
    tokenizer = transformers.AutoTokenizer.from_pretrained(copy_minilm_tokenizer(root / "tok"))
    image_processor = transformers.CLIPImageProcessorPil(size={"shortest_edge": 30}, crop_size=SIZE)
    transformers.CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(path)
    return path


def _close(ours, theirs):
    """Same structure and strings; numbers within 1e-5."""
    if isinstance(ours, dict):
        assert ours.keys() == theirs.keys()
        for key in ours:
            _close(ours[key], theirs[key])
    elif isinstance(ours, list):
        assert len(ours) == len(theirs)
        for a, b in zip(ours, theirs, strict=True):
            _close(a, b)
    elif isinstance(ours, float):
        assert ours == pytest.approx(theirs, abs=1e-5)
    else:
        assert ours == theirs


def _json_round_trip(value):
    assert json.loads(json.dumps(value)) == value  # plain JSON types only
    return value


def test_image_classification_matches_transformers_and_batches(vit_dir, images):
    ours = pipeline("image-classification", model=str(vit_dir))
    theirs = transformers.pipeline("image-classification", model=str(vit_dir))
    files = images["good"]
    expected = theirs(files)
    assert len(expected[0]) == 5  # top_k=5 by default
    _close(_json_round_trip(ours(files)), expected)
    _close(ours(files, batch_size=3), expected)  # batching changes nothing
    _close(ours(files[0]), expected[0])  # one image: one list
    _close(
        ours(files[1], top_k=2, function_to_apply="sigmoid"),
        theirs(files[1], top_k=2, function_to_apply="sigmoid"),
    )
    pil = Image.open(files[0])
    _close(ours(pil), theirs(pil))
    array = np.asarray(Image.open(files[1]))
    _close(ours([array, array], batch_size=2), theirs([array, array]))


def test_image_feature_extraction_matches_transformers(vit_dir, images):
    files = images["good"][:2]
    ours = pipeline("image-feature-extraction", model=str(vit_dir), batch_size=2)
    theirs = transformers.pipeline("image-feature-extraction", model=str(vit_dir))
    features = ours(files)
    assert np.asarray(features[0]).shape == (1, 10, 32)  # 3x3 patches + the class token, hidden size 32
    _close(features, theirs(files))
    # the checkpoint has no pooler (a classifier's), so each library draws its own: compare with ours
    hidden = torch.tensor(ours(files[0]))
    _close(ours(files[0], pool=True), ours.model.pooler(hidden).tolist())
    assert ours(files[0], return_tensors=True).shape == (1, 10, 32)


def test_zero_shot_image_classification_matches_transformers(clip_dir, images):
    labels = ["a cat", "a dog", "a red car"]
    ours = pipeline("zero-shot-image-classification", model=str(clip_dir))
    theirs = transformers.pipeline("zero-shot-image-classification", model=str(clip_dir))
    files = images["good"]
    expected = theirs(files, candidate_labels=labels)
    _close(_json_round_trip(ours(files, candidate_labels=labels)), expected)
    _close(ours(files, candidate_labels=labels, batch_size=4), expected)
    template = "a picture of {}"
    _close(
        ours(files[0], candidate_labels=labels, hypothesis_template=template),
        theirs(files[0], candidate_labels=labels, hypothesis_template=template),
    )
    # per-input labels in one batch: each image against its own labels
    mixed = ours(
        [{"image": files[0], "candidate_labels": ["x", "y"]}, files[1]], candidate_labels=labels, batch_size=2
    )
    _close(mixed[0], theirs(files[0], candidate_labels=["x", "y"]))
    _close(mixed[1], expected[1])
    with pytest.raises(PipelineParameterError, match="needs candidate_labels"):
        ours(files[0])


def test_bad_inputs_are_typed_errors(vit_dir, images, tmp_path, monkeypatch):
    pipe = pipeline("image-classification", model=str(vit_dir))
    with pytest.raises(ImageProcessingError, match=r"truncated\.jpg could not be decoded.*complete"):
        pipe(images["truncated"])
    with pytest.raises(ImageProcessingError, match=r"notes\.txt is not an image"):
        pipe(images["text"])
    with pytest.raises(ImageProcessingError, match="no such image file"):
        pipe(str(tmp_path / "missing.png"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(PipelineInputError, match=r"is a URL .* offline.*download the image"):
        pipe("https://example.com/cat.png")
    with pytest.raises(PipelineInputError, match="takes an image"):
        pipe([3])
    with pytest.raises(ImageProcessingError, match="no axis of 1, 3 or 4 channels"):  # not convertible to RGB
        pipe(np.zeros((30, 30, 2), dtype=np.uint8))
    bad = tmp_path / "bad"
    shutil.copytree(vit_dir, bad)
    config = json.loads((bad / "preprocessor_config.json").read_text())
    (bad / "preprocessor_config.json").write_text(
        json.dumps({**config, "image_processor_type": "NoSuchProcessor"})
    )
    with pytest.raises(XfConfigError, match="names image processor 'NoSuchProcessor'"):
        pipeline("image-classification", model=str(bad))


def test_the_command_reads_image_paths_from_arguments_and_stdin(vit_dir, images, capsys, monkeypatch):
    import io
    import sys

    from xf_core.cli import main

    theirs = transformers.pipeline("image-classification", model=str(vit_dir))
    files = images["good"][:2]
    assert (
        main(["pipeline", "image-classification", "--model", str(vit_dir), "--param", "top_k=2", *files]) == 0
    )
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    _close(out, theirs(files, top_k=2))
    monkeypatch.setattr(sys, "stdin", io.StringIO(f"{files[0]}\n{images['text']}\nhttp://x.org/a.png\n"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["pipeline", "image-classification", "--model", str(vit_dir), "--no-progress"]) == 1
    first, second, third = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    _close(first, theirs(files[0]))
    assert second["input"] == 2 and "is not an image" in second["error"]
    assert third["input"] == 3 and "offline" in third["error"]


def test_import_and_text_tasks_do_not_import_pillow(tmp_path):
    model = tmp_path / "bert"
    save_tiny_transformers_checkpoint("BertModel", model, vocab_size=30522, max_position_embeddings=128)
    copy_minilm_tokenizer(model)
    code = (
        "import xf_pipeline\n"
        f"pipe = xf_pipeline.pipeline('feature-extraction', model={str(model)!r})\n"
        "assert len(pipe('hello world')[0]) == 4\n"
    )
    loaded = imported_modules(code)
    assert "xf_pipeline._feature_extraction" in loaded
    assert "PIL" not in loaded and "xf_tokenize.image_processing" not in loaded
