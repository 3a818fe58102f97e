"""ViT against transformers (the test-only oracle) on tiny random checkpoints that transformers saves: logits,
loss, hidden states and pooled output within 1e-5 in fp32, interpolated positions, input checks, the auto
classes, and xf save -> transformers load."""

from __future__ import annotations

import pytest
import torch

import xf_load
from xf_core.errors import XfValueError
from xf_load.heads import HeadKind, head_kind_of
from xf_load.models import vit
from xf_load.testing import load_with_transformers, save_tiny_transformers_checkpoint

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
        arch: save_tiny_transformers_checkpoint(arch, root / arch)
        for arch in ("ViTModel", "ViTForImageClassification")
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


# ---------------------------------------------------------------------------------------------- ViT


@pytest.mark.parametrize("arch", ["ViTModel", "ViTForImageClassification"])
def test_vit_matches_transformers(checkpoints, arch):
    path = checkpoints[arch]
    ours, info = getattr(vit, arch).from_pretrained(path, output_loading_info=True)
    theirs = load_with_transformers(path, arch)
    assert {k: info[k] for k in CLEAN} == CLEAN  # (bytes_read aside)
    pixels = _pixels()
    with torch.no_grad():
        a = ours(pixels, output_hidden_states=True)
        b = theirs(pixels, output_hidden_states=True)
    if arch == "ViTModel":
        _close(a.last_hidden_state, b.last_hidden_state)
        _close(a.pooler_output, b.pooler_output)
        assert len(a.hidden_states) == len(b.hidden_states) == 3
        for x, y in zip(a.hidden_states, b.hidden_states, strict=True):
            _close(x, y)
    else:
        _close(a.logits, b.logits)
        labels = torch.tensor([0, 2, 1])
        with torch.no_grad():
            _close(ours(pixels, labels=labels).loss, theirs(pixels, labels=labels).loss)


def test_vit_interpolated_positions_and_eager_attention_match(checkpoints):
    path = checkpoints["ViTForImageClassification"]
    ours = vit.ViTForImageClassification.from_pretrained(path, attn_implementation="eager")
    theirs = load_with_transformers(path)
    pixels = torch.randn(2, 3, 40, 50, generator=torch.Generator().manual_seed(5))  # a 4x5 patch grid
    with torch.no_grad():
        _close(
            ours(pixels, interpolate_pos_encoding=True).logits,
            theirs(pixels, interpolate_pos_encoding=True).logits,
        )
    with pytest.raises(
        XfValueError, match=r"40x50 images but the model takes 30x30.*interpolate_pos_encoding"
    ):
        ours(pixels)
    with pytest.raises(XfValueError, match="1 channel.*num_channels=3"):
        ours(torch.zeros(1, 1, 30, 30))


def test_vit_saved_by_xf_loads_in_transformers(checkpoints, tmp_path):
    ours = xf_load.AutoModelForImageClassification.from_pretrained(
        checkpoints["ViTForImageClassification"], id2label={0: "cat", 1: "dog", 2: "bird"}
    )
    assert type(ours) is vit.ViTForImageClassification
    assert head_kind_of(ours) is HeadKind.IMAGE_CLASSIFICATION
    ours.save_pretrained(tmp_path)
    theirs = load_with_transformers(tmp_path)
    assert theirs.config.id2label == {0: "cat", 1: "dog", 2: "bird"}
    pixels = _pixels(seed=3)
    with torch.no_grad():
        _close(ours(pixels).logits, theirs(pixels).logits)
    assert type(xf_load.AutoModel.from_pretrained(tmp_path)) is vit.ViTModel
