"""AutoProcessor and CLIPProcessor: the files transformers writes and reads, both ways, and the same ids and
pixel values as transformers' CLIPProcessor on images made here."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

PIL = pytest.importorskip("PIL")
from PIL import Image  # noqa: E402

from xf_core.errors import XfConfigError, XfFileNotFoundError  # noqa: E402
from xf_core.testing import copy_minilm_tokenizer  # noqa: E402
from xf_tokenize import AutoProcessor, CLIPProcessor, PreTrainedTokenizerFast  # noqa: E402
from xf_tokenize.image_processing import CLIPImageProcessor  # noqa: E402

transformers = pytest.importorskip("transformers")

TEXTS = ["a photo of a cat", "two dogs playing in the snow"]
SMALL = {"size": {"shortest_edge": 30}, "crop_size": {"height": 30, "width": 30}}


def _images() -> list[object]:
    rng = np.random.default_rng(0)
    return [
        Image.fromarray(rng.integers(0, 256, (41, 57, 3), dtype=np.uint8)),
        Image.fromarray(rng.integers(0, 256, (64, 33), dtype=np.uint8)),  # grayscale
    ]


def _same(ours, theirs) -> None:
    assert set(ours) == set(theirs)
    for key in ours:
        np.testing.assert_allclose(np.asarray(ours[key]), theirs[key].numpy(), atol=1e-6, rtol=0)


def _call(processor, **kwargs):
    return processor(text=TEXTS, images=_images(), return_tensors="pt", padding=True, **kwargs)


@pytest.fixture(scope="module")
def saved_by_transformers(tmp_path_factory):
    root = tmp_path_factory.mktemp("proc")
    tokenizer = transformers.AutoTokenizer.from_pretrained(copy_minilm_tokenizer(root / "tok"))
    theirs = transformers.CLIPProcessor(
        image_processor=transformers.CLIPImageProcessorPil(**SMALL), tokenizer=tokenizer
    )
    theirs.save_pretrained(root / "hf")
    return root / "hf", theirs


def test_a_processor_saved_by_transformers_loads_and_matches(saved_by_transformers):
    path, theirs = saved_by_transformers
    ours = AutoProcessor.from_pretrained(path)
    assert isinstance(ours, CLIPProcessor) and isinstance(ours.image_processor, CLIPImageProcessor)
    assert ours.image_processor.size == {"shortest_edge": 30}
    _same(_call(ours), _call(theirs))
    only_text = ours(text=TEXTS[0], return_tensors="pt")
    assert "pixel_values" not in only_text and only_text["input_ids"].shape[0] == 1
    only_images = ours(images=_images()[0], return_tensors="np")
    assert list(only_images) == ["pixel_values"] and only_images["pixel_values"].shape == (1, 3, 30, 30)
    assert ours.batch_decode([[101, 1037, 102]], skip_special_tokens=True) == ["a"]


def test_xf_save_writes_what_transformers_writes_and_loads_in_both(saved_by_transformers, tmp_path):
    path, theirs = saved_by_transformers
    ours = AutoProcessor.from_pretrained(path)
    written = ours.save_pretrained(tmp_path / "xf")
    assert written[-1].endswith("processor_config.json")  # the file naming the processor comes last
    assert json.loads((tmp_path / "xf" / "processor_config.json").read_text()) == json.loads(
        (path / "processor_config.json").read_text()
    )
    tokenizer_config = json.loads((tmp_path / "xf" / "tokenizer_config.json").read_text())
    assert tokenizer_config["processor_class"] == "CLIPProcessor"
    reloaded_by_them = transformers.AutoProcessor.from_pretrained(tmp_path / "xf")
    assert type(reloaded_by_them).__name__ == "CLIPProcessor"
    _same(_call(AutoProcessor.from_pretrained(tmp_path / "xf")), _call(reloaded_by_them))
    _same(_call(ours), _call(theirs))


def test_hub_layout_preprocessor_config_and_model_type(saved_by_transformers, tmp_path):
    """A Hub repo: preprocessor_config.json and tokenizer files; the class comes from config.json's model_type."""
    _, theirs = saved_by_transformers
    repo = tmp_path / "repo"
    copy_minilm_tokenizer(repo)
    CLIPImageProcessor(**SMALL).save_pretrained(repo)
    assert isinstance(AutoProcessor.from_pretrained(repo), CLIPImageProcessor)  # nothing names a processor
    (repo / "config.json").write_text(json.dumps({"model_type": "clip"}))
    ours = AutoProcessor.from_pretrained(repo)
    assert isinstance(ours, CLIPProcessor)
    _same(_call(ours), _call(theirs))
    assert isinstance(CLIPProcessor.from_pretrained(repo), CLIPProcessor)


def test_what_a_directory_lacks_decides_what_comes_back(tmp_path):
    tokenizer_only = copy_minilm_tokenizer(tmp_path / "tok")
    assert isinstance(AutoProcessor.from_pretrained(tokenizer_only), PreTrainedTokenizerFast)
    with pytest.raises(XfConfigError, match="not a CLIPProcessor"):
        CLIPProcessor.from_pretrained(tokenizer_only)
    (tmp_path / "empty").mkdir()
    with pytest.raises(XfFileNotFoundError, match="no processor files"):
        AutoProcessor.from_pretrained(tmp_path / "empty")


def test_unknown_processor_and_image_processor_classes_name_the_file(saved_by_transformers, tmp_path):
    path, _ = saved_by_transformers
    bad = tmp_path / "bad"
    shutil.copytree(path, bad)
    config_file = bad / "processor_config.json"
    config = json.loads(config_file.read_text())
    config_file.write_text(json.dumps({**config, "processor_class": "LlavaProcessor"}))
    with pytest.raises(
        XfConfigError, match=r"processor_config.json names processor_class 'LlavaProcessor'"
    ) as e:
        AutoProcessor.from_pretrained(bad)
    assert e.value.key == "processor_class"
    config["image_processor"]["image_processor_type"] = "SiglipImageProcessor"
    config_file.write_text(json.dumps(config))
    with pytest.raises(XfConfigError, match="names image processor 'SiglipImageProcessor'"):
        AutoProcessor.from_pretrained(bad)
    config_file.write_text("[1, 2]")
    with pytest.raises(XfConfigError, match="must hold a JSON object"):
        AutoProcessor.from_pretrained(bad)
