"""Image processors: pixel values equal transformers' Pillow-backend processors on images made here."""

from __future__ import annotations

import json

import numpy as np
import pytest

PIL = pytest.importorskip("PIL")
from PIL import Image  # noqa: E402

from xf_core.errors import XfConfigError  # noqa: E402
from xf_tokenize.errors import ImageProcessingError  # noqa: E402
from xf_tokenize.image_processing import (  # noqa: E402
    AutoImageProcessor,
    CLIPImageProcessor,
    ViTImageProcessor,
)

transformers = pytest.importorskip("transformers")


def _images() -> dict[str, object]:
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:37, 0:53]
    gradient = np.stack([x * 4, y * 6, (x + y) * 2], axis=-1).clip(0, 255).astype(np.uint8)
    noise = rng.integers(0, 256, (61, 29, 3), dtype=np.uint8)
    rgba = np.concatenate([noise[:, :, :3], rng.integers(0, 256, (61, 29, 1), dtype=np.uint8)], axis=-1)
    return {
        "gradient-pil": Image.fromarray(gradient),
        "noise-odd-size-pil": Image.fromarray(noise),
        "tall-pil": Image.fromarray(rng.integers(0, 256, (300, 17, 3), dtype=np.uint8)),
        "grayscale-pil": Image.fromarray(gradient[..., 0]),
        "rgba-pil": Image.fromarray(rgba, mode="RGBA"),
        "palette-pil": Image.fromarray(gradient).convert("P"),
        "16-bit-pil": Image.fromarray(gradient[..., 0].astype(np.uint16) * 257).convert("I;16"),
        "uint8-hwc": noise,
        "uint8-chw": np.moveaxis(noise, -1, 0).copy(),
        "float-hwc": (noise / 255.0).astype(np.float32),
        "rgba-array": rgba,
    }


CASES = _images()


def _pairs():
    vit_hf = transformers.ViTImageProcessorPil()
    clip_hf = transformers.CLIPImageProcessorPil()
    return {"vit": (ViTImageProcessor(), vit_hf), "clip": (CLIPImageProcessor(), clip_hf)}


@pytest.mark.parametrize("kind", ["vit", "clip"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_pixel_values_equal_transformers(kind, name):
    ours, theirs = _pairs()[kind]
    image = CASES[name]
    try:
        want = theirs(image, return_tensors="np")["pixel_values"]
    except ValueError as e:  # transformers refuses it too: xf must refuse with a typed, clear error
        with pytest.raises(ImageProcessingError):
            ours(image, return_tensors="np")
        pytest.skip(f"transformers refuses it as well: {e}")
    got = ours(image, return_tensors="np")["pixel_values"]
    assert got.dtype == want.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)


def test_files_tensors_lists_and_sizes(tmp_path):
    import torch

    ours, theirs = _pairs()["clip"]
    path = tmp_path / "img.png"
    CASES["gradient-pil"].save(path)
    batch = [str(path), torch.from_numpy(np.asarray(CASES["uint8-chw"])), CASES["noise-odd-size-pil"]]
    got = ours(batch, return_tensors="pt")["pixel_values"]
    assert isinstance(got, torch.Tensor) and got.shape == (3, 3, 224, 224)
    want = theirs([Image.open(path), CASES["uint8-chw"], CASES["noise-odd-size-pil"]], return_tensors="np")
    np.testing.assert_allclose(got.numpy(), want["pixel_values"], rtol=0, atol=1e-6)

    for size in ({"shortest_edge": 40, "longest_edge": 50}, {"height": 31, "width": 17}):
        a = ViTImageProcessor(size=size)(CASES["tall-pil"], return_tensors="np")["pixel_values"]
        b = transformers.ViTImageProcessorPil(size=size)(CASES["tall-pil"], return_tensors="np")[
            "pixel_values"
        ]
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
    small_crop = CLIPImageProcessor(size={"shortest_edge": 20}, crop_size={"height": 30, "width": 25})
    hf_crop = transformers.CLIPImageProcessorPil(
        size={"shortest_edge": 20}, crop_size={"height": 30, "width": 25}
    )
    np.testing.assert_allclose(
        small_crop(CASES["gradient-pil"], return_tensors="np")["pixel_values"],
        hf_crop(CASES["gradient-pil"], return_tensors="np")["pixel_values"],
        rtol=0,
        atol=1e-6,
    )


def test_save_and_load_round_trip_in_both_libraries(tmp_path):
    ours = CLIPImageProcessor(size={"shortest_edge": 64}, crop_size={"height": 64, "width": 64})
    ours.save_pretrained(tmp_path / "xf")
    theirs = transformers.AutoImageProcessor.from_pretrained(tmp_path / "xf")
    assert type(theirs).__name__.startswith("CLIPImageProcessor") and theirs.size["shortest_edge"] == 64
    transformers.ViTImageProcessorPil(size={"height": 32, "width": 48}).save_pretrained(tmp_path / "hf")
    loaded = AutoImageProcessor.from_pretrained(tmp_path / "hf")
    assert isinstance(loaded, ViTImageProcessor) and loaded.size == {"height": 32, "width": 48}
    saved = json.loads((tmp_path / "hf" / "preprocessor_config.json").read_text())
    loaded.save_pretrained(tmp_path / "again")
    assert json.loads((tmp_path / "again" / "preprocessor_config.json").read_text()) == saved


def test_bad_inputs_are_clear(tmp_path):
    proc = ViTImageProcessor()
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(ImageProcessingError, match="notes.txt is not an image"):
        proc(str(tmp_path / "notes.txt"))
    CASES["gradient-pil"].save(tmp_path / "cut.png")
    data = (tmp_path / "cut.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageProcessingError, match="cut.png"):
        proc(str(tmp_path / "cut.png"))
    with pytest.raises(ImageProcessingError, match="no such image file"):
        proc(str(tmp_path / "missing.png"))
    with pytest.raises(ImageProcessingError, match="URL"):
        proc("https://example.com/cat.png")
    with pytest.raises(ImageProcessingError, match="is a dict"):
        proc({"pixels": 1})
    with pytest.raises(ImageProcessingError, match="no axis of 1, 3 or 4 channels"):
        proc(np.zeros((5, 6, 7), dtype=np.uint8))
    (tmp_path / "preprocessor_config.json").write_text(json.dumps({"image_processor_type": "FancyProcessor"}))
    with pytest.raises(XfConfigError, match="FancyProcessor"):
        AutoImageProcessor.from_pretrained(tmp_path)
    with pytest.raises(XfConfigError, match="image_std"):
        ViTImageProcessor(image_std=[0.5, 0.0, 0.5])
