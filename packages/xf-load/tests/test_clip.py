"""CLIP against transformers (the test-only oracle) on tiny random checkpoints that transformers saves:
image-text logits, embeddings, projected features and the contrastive loss within 1e-5 in fp32, padded text,
a tower loaded from a whole CLIP checkpoint, the nested config, the auto classes, and xf save -> transformers
load."""

from __future__ import annotations

import json

import pytest
import torch

import xf_load
from xf_load.heads import HeadKind, head_kind_of
from xf_load.models import clip
from xf_load.testing import FAMILIES, load_with_transformers, save_tiny_transformers_checkpoint

transformers = pytest.importorskip("transformers")

ATOL = 1e-5
CLEAN = {"missing_keys": [], "unexpected_keys": [], "mismatched_keys": []}


def _close(a: torch.Tensor, b: torch.Tensor) -> None:
    torch.testing.assert_close(a, b, atol=ATOL, rtol=ATOL)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """Tiny random checkpoints saved by transformers (norms perturbed, so a misplaced one shows)."""
    root = tmp_path_factory.mktemp("hf")
    return {
        arch: save_tiny_transformers_checkpoint(arch, root / arch) for arch in ("CLIPModel", "CLIPTextModel")
    }


def _pixels(n: int = 3, size: int = 30, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def _text(pad: int = 1, eos: int = 98) -> dict[str, torch.Tensor]:
    """Two right-padded texts ending in the end-of-text token, and one unpadded."""
    g = torch.Generator().manual_seed(2)
    ids = torch.randint(2, 90, (3, 7), generator=g)
    mask = torch.ones_like(ids)
    for row, length in enumerate((4, 7, 6)):
        ids[row, length - 1] = eos
        ids[row, length:] = pad
        mask[row, length:] = 0
    return {"input_ids": ids, "attention_mask": mask}


# ---------------------------------------------------------------------------------------------- CLIP


@pytest.fixture(scope="module")
def clip_pair(checkpoints):
    path = checkpoints["CLIPModel"]
    ours, info = clip.CLIPModel.from_pretrained(path, output_loading_info=True)
    assert {k: info[k] for k in CLEAN} == CLEAN  # (bytes_read aside)
    return ours, load_with_transformers(path)


def test_clip_logits_and_features_match_transformers(clip_pair):
    ours, theirs = clip_pair
    inputs = {**_text(), "pixel_values": _pixels(n=2)}
    with torch.no_grad():
        a = ours(**inputs)
        b = theirs(**inputs)
        assert a.logits_per_image.shape == (2, 3)
        for name in ("logits_per_image", "logits_per_text", "text_embeds", "image_embeds"):
            _close(getattr(a, name), getattr(b, name))
        _close(a.text_model_output.last_hidden_state, b.text_model_output.last_hidden_state)
        _close(a.vision_model_output.pooler_output, b.vision_model_output.pooler_output)
        square = {**_text(), "pixel_values": _pixels(n=3)}  # the contrastive loss pairs text i with image i
        _close(ours(**square, return_loss=True).loss, theirs(**square, return_loss=True).loss)
        text = _text()
        _close(ours.get_text_features(**text).pooler_output, theirs.get_text_features(**text).pooler_output)
        pixels = _pixels(seed=4)
        _close(ours.get_image_features(pixels).pooler_output, theirs.get_image_features(pixels).pooler_output)


def test_clip_padding_does_not_change_a_text(clip_pair):
    """The padded rows equal the same texts run alone: the mask hides the padding and pooling finds the end token."""
    ours, _ = clip_pair
    batch = _text()
    with torch.no_grad():
        together = ours.get_text_features(**batch).pooler_output
        alone = ours.get_text_features(batch["input_ids"][:1, :4]).pooler_output
    _close(together[:1], alone)


def test_clip_towers_load_from_a_whole_clip_checkpoint(checkpoints, clip_pair):
    path = checkpoints["CLIPModel"]
    text, info = clip.CLIPTextModel.from_pretrained(path, output_loading_info=True)
    assert info["missing_keys"] == [] and info["mismatched_keys"] == []
    assert all(not k.startswith("text_model.") for k in info["unexpected_keys"])  # only the other tower's
    vision = xf_load.AutoModel.from_pretrained(path)
    assert type(vision) is clip.CLIPModel  # AutoModel on a CLIP checkpoint: the whole model, as transformers
    vision = clip.CLIPVisionModel.from_pretrained(path)
    theirs_text = load_with_transformers(path, "CLIPTextModel")
    theirs_vision = load_with_transformers(path, "CLIPVisionModel")
    batch, pixels = _text(), _pixels()
    with torch.no_grad():
        _close(text(**batch).pooler_output, theirs_text(**batch).pooler_output)
        _close(text(**batch).last_hidden_state, theirs_text(**batch).last_hidden_state)
        _close(vision(pixels).pooler_output, theirs_vision(pixels).pooler_output)
        _close(vision(pixels).last_hidden_state, theirs_vision(pixels).last_hidden_state)


def test_clip_text_model_saved_alone_by_transformers(checkpoints):
    path = checkpoints["CLIPTextModel"]
    ours = xf_load.AutoModel.from_pretrained(path)
    assert type(ours) is clip.CLIPTextModel
    theirs = load_with_transformers(path)
    batch = _text()
    with torch.no_grad():
        _close(ours(**batch).pooler_output, theirs(**batch).pooler_output)


def test_clip_saved_by_xf_loads_in_transformers(clip_pair, tmp_path):
    ours, _ = clip_pair
    model = xf_load.AutoModelForZeroShotImageClassification.from_pretrained(ours.name_or_path)
    assert type(model) is clip.CLIPModel and head_kind_of(model) is HeadKind.ZERO_SHOT_IMAGE_CLASSIFICATION
    model.save_pretrained(tmp_path)
    written = json.loads((tmp_path / "config.json").read_text())
    assert written["model_type"] == "clip" and written["text_config"]["model_type"] == "clip_text_model"
    assert written["vision_config"]["patch_size"] == FAMILIES["CLIPVision"].tiny["patch_size"]
    theirs = load_with_transformers(tmp_path)
    inputs = {**_text(), "pixel_values": _pixels(n=2)}
    with torch.no_grad():
        _close(model(**inputs).logits_per_image, theirs(**inputs).logits_per_image)


def test_clip_config_boundary():
    config = clip.CLIPConfig(text_config={"hidden_size": 16, "num_attention_heads": 2}, projection_dim=8)
    assert isinstance(config.text_config, clip.CLIPTextConfig) and config.text_config.hidden_size == 16
    assert isinstance(config.vision_config, clip.CLIPVisionConfig)  # defaults when absent
    assert clip.CLIPConfig.from_dict(config.to_dict()) == config
    eager = config.copy(attn_implementation="eager")
    assert eager.text.attn_implementation == eager.vision.attn_implementation == "eager"
    # a tower's config read from a whole CLIP config is its part
    assert clip.CLIPTextConfig.from_dict(config.to_dict()).hidden_size == 16
    with pytest.raises(ValueError, match="num_attention_heads"):
        clip.CLIPConfig(vision_config={"hidden_size": 30, "num_attention_heads": 4})
    with pytest.raises(ValueError, match="eos_token_id"):
        clip.CLIPTextConfig(eos_token_id=[1, 2])


def test_clip_from_config_is_initialised_and_runs():
    config = clip.CLIPConfig(**FAMILIES["CLIP"].tiny)
    model = xf_load.AutoModel.from_config(config).eval()
    assert torch.isfinite(model.logit_scale) and model.logit_scale.item() == pytest.approx(2.6592)
    with torch.no_grad():
        out = model(**_text(), pixel_values=_pixels(n=2))
    assert torch.isfinite(out.logits_per_image).all()
