"""Image processors: pixels in, ``pixel_values`` out, with transformers' ``preprocessor_config.json``.

One pipeline, in transformers' order: convert to RGB (compositing transparency onto white) -> channels-first
array -> resize with Pillow (``size`` as ``{"height", "width"}``, ``{"shortest_edge"}`` with optional
``"longest_edge"``) -> center crop (zero-padded when the image is smaller) -> rescale -> normalize. The
numerics follow transformers' Pillow backend (the ``...ImageProcessorPil`` classes, which transformers itself
uses when torchvision is not installed); the torchvision "fast" processors resize with antialiased tensor
kernels and differ from both in the last bits. No torch is needed: ``return_tensors="pt"`` imports it only
then. Pillow is needed (``pip install 'xf-tokenize[vision]'``).

Inputs: PIL images, numpy arrays (HWC or CHW, uint8 or float in [0, 1]), torch tensors, file paths, or lists
of them. Unreadable files, non-images and modes that cannot become RGB raise :class:`ImageProcessingError`
naming the input.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from xf_core import HubOptions, os_error, resolve_file
from xf_core.errors import XfConfigError
from xf_core.lazy import require
from xf_tokenize.errors import ImageProcessingError

__all__ = [
    "IMAGE_PROCESSORS",
    "AutoImageProcessor",
    "BaseImageProcessor",
    "CLIPImageProcessor",
    "ViTImageProcessor",
    "image_processor_from_dict",
    "load_image",
    "load_rgb_image",
]

PREPROCESSOR_CONFIG = "preprocessor_config.json"
IMAGENET_STANDARD_MEAN = [0.5, 0.5, 0.5]
IMAGENET_STANDARD_STD = [0.5, 0.5, 0.5]
OPENAI_CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
OPENAI_CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
BILINEAR, BICUBIC = 2, 3


def _pil() -> Any:
    return require("PIL", purpose="image processing (pip install 'xf-tokenize[vision]')", package="pillow")


def load_image(source: Any) -> Any:
    """A PIL image from a path (EXIF orientation applied) or a PIL image; anything else is returned as is."""
    if isinstance(source, (str, os.PathLike)):
        text = str(source)
        if text.startswith(("http://", "https://")):
            raise ImageProcessingError(
                f"{text} is a URL; xf does not download images. Download it first and pass the file path."
            )
        pil = _pil()
        from PIL import Image, ImageOps, UnidentifiedImageError

        try:
            with Image.open(text) as opened:
                image = ImageOps.exif_transpose(opened)
                image.load()
        except FileNotFoundError as e:
            raise ImageProcessingError(f"no such image file: {text}") from e
        except UnidentifiedImageError as e:
            raise ImageProcessingError(f"{text} is not an image Pillow can read ({e}).") from e
        except (OSError, SyntaxError) as e:  # truncated or corrupt data
            raise ImageProcessingError(f"{text} could not be decoded: {e}. Is the file complete?") from e
        del pil
        return image
    return source


def load_rgb_image(source: Any, index: int = 0) -> Any:
    """A path or PIL image as transformers' pipelines read it: EXIF orientation applied, then Pillow's own
    ``convert("RGB")`` (transparency dropped, not composited). Arrays and tensors are returned as they are."""
    image = load_image(source)
    if not type(image).__module__.startswith("PIL."):
        return image
    from PIL import ImageOps

    try:
        return ImageOps.exif_transpose(image).convert("RGB")
    except (ValueError, OSError) as e:
        raise ImageProcessingError(
            f"image {index} (mode {image.mode}) cannot be converted to RGB: {e}. Convert it to an 8-bit mode "
            "(RGB, RGBA, L) first."
        ) from e


def _to_rgb(image: Any) -> np.ndarray:
    """RGB uint8 (H, W, 3) from a PIL image, transparency composited onto white (transformers' convert_rgb)."""
    from PIL import Image

    try:
        if "A" in image.getbands() or image.info.get("transparency") is not None:
            rgba = image.convert("RGBA")
            white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            return np.array(Image.alpha_composite(white, rgba).convert("RGB"))
        return np.array(image.convert("RGB"))
    except (ValueError, OSError) as e:
        raise ImageProcessingError(f"a {image.mode} image cannot be converted to RGB: {e}") from e


def _array_to_rgb(image: np.ndarray) -> np.ndarray:
    """Channels-last array with 1 or 4 channels -> 3 channels (alpha composited onto white)."""
    channels = image.shape[-1]
    if channels == 1:
        return np.repeat(image, 3, axis=-1)
    if channels == 4:
        floating = np.issubdtype(image.dtype, np.floating)
        if floating and (image.min() < 0.0 or image.max() > 1.0):
            raise ImageProcessingError(
                f"an RGBA float image must have values in [0, 1], got [{image.min()}, {image.max()}]."
            )
        white = 1.0 if floating else 255
        alpha = image[..., 3:4] / white
        composite = alpha * image[..., :3] + (1 - alpha) * white
        return composite.astype(image.dtype) if floating else np.round(composite).astype(image.dtype)
    return image


def _channels_first(image: Any, convert_rgb: bool, index: int) -> np.ndarray:
    """A (C, H, W) array from any supported input (transformers' Pillow-backend conventions)."""
    if hasattr(image, "getbands"):  # PIL
        array = _to_rgb(image) if convert_rgb else np.array(image)
        return array[None] if array.ndim == 2 else np.moveaxis(array, -1, 0)
    if type(image).__module__.startswith("torch"):
        image = image.detach().cpu().numpy()
    if not isinstance(image, np.ndarray):
        raise ImageProcessingError(
            f"image {index} is a {type(image).__name__}; pass PIL images, numpy arrays, torch tensors or file "
            "paths."
        )
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3:
        raise ImageProcessingError(
            f"image {index} has shape {image.shape}; expected (H, W), (H, W, C) or (C, H, W)."
        )
    last = image.shape[-1] in (1, 3, 4)
    first = image.shape[0] in (1, 3, 4)
    if not (last or first):
        raise ImageProcessingError(
            f"image {index} has shape {image.shape}: no axis of 1, 3 or 4 channels at either end."
        )
    if first:  # transformers' rule: a leading 1/3/4 axis is the channels, even when the last one could be too
        image = np.moveaxis(image, 0, -1)
    if convert_rgb:
        image = _array_to_rgb(image)
    return np.moveaxis(image, -1, 0)


def _needs_rescale_for_pil(image: np.ndarray, index: int) -> bool:
    """Whether an array must be multiplied by 255 to become uint8 for Pillow (floats in [0, 1])."""
    if image.dtype == np.uint8:
        return False
    if np.allclose(image, image.astype(int)):
        if image.min() >= 0 and image.max() <= 255:
            return False
        raise ImageProcessingError(
            f"image {index} has integer values in [{image.min()}, {image.max()}], outside 0..255 (a 16-bit "
            "image?); convert it to 8 bits, or to RGB (do_convert_rgb=True), before resizing."
        )
    if image.min() >= 0 and image.max() <= 1:
        return True
    raise ImageProcessingError(
        f"image {index} has float values in [{image.min()}, {image.max()}]; floats must be in [0, 1]."
    )


def _resize(image: np.ndarray, height: int, width: int, resample: int, index: int) -> np.ndarray:
    from PIL import Image

    rescale = _needs_rescale_for_pil(image, index)
    hwc = np.moveaxis(image, 0, -1)
    if rescale:
        hwc = (hwc.astype(np.float64) * 255).astype(np.float32)
    hwc = hwc.astype(np.uint8)
    pil = Image.fromarray(hwc[..., 0] if hwc.shape[-1] == 1 else hwc)
    out = np.array(pil.resize((width, height), resample=resample))
    out = out[..., None] if out.ndim == 2 else out
    out = np.moveaxis(out, -1, 0)
    return (out.astype(np.float64) * (1 / 255)).astype(np.float32) if rescale else out


def _center_crop(image: np.ndarray, height: int, width: int) -> np.ndarray:
    _, h, w = image.shape
    top, left = (h - height) // 2, (w - width) // 2
    if top >= 0 and left >= 0:
        return image[:, top : top + height, left : left + width]
    new_h, new_w = max(height, h), max(width, w)
    padded = np.zeros_like(image, shape=(image.shape[0], new_h, new_w))
    top_pad, left_pad = math.ceil((new_h - h) / 2), math.ceil((new_w - w) / 2)
    padded[:, top_pad : top_pad + h, left_pad : left_pad + w] = image
    top, left = top + top_pad, left + left_pad
    return padded[:, max(0, top) : min(new_h, top + height), max(0, left) : min(new_w, left + width)]


def _shortest_edge_size(height: int, width: int, shortest: int, longest: int | None) -> tuple[int, int]:
    if longest is None:
        short, long = (width, height) if width <= height else (height, width)
        new_short, new_long = shortest, int(shortest * long / short)
        return (new_long, new_short) if width <= height else (new_short, new_long)
    # transformers' get_size_with_aspect_ratio (DETR-style shortest/longest edge)
    raw = None
    low, high = float(min(height, width)), float(max(height, width))
    size = shortest
    if high / low * size > longest:
        raw = longest * low / high
        size = round(raw)
    if (height <= width and height == size) or (width <= height and width == size):
        return height, width
    if width < height:
        return (int(raw * height / width) if raw is not None else int(size * height / width)), size
    return size, (int(raw * width / height) if raw is not None else int(size * width / height))


def read_json_object(path: Path) -> dict[str, Any]:
    """The JSON object in ``path`` (a processor's config files); XfConfigError naming the file otherwise."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError) as e:
        raise XfConfigError(f"{path} is not valid JSON ({e}); fix or re-save it.", file=str(path)) from e
    if not isinstance(data, dict):
        raise XfConfigError(f"{path} must hold a JSON object, not {type(data).__name__}.", file=str(path))
    return data


def _read_preprocessor_config(path: str | os.PathLike[str], hub: HubOptions) -> tuple[Path, dict[str, Any]]:
    """``preprocessor_config.json`` of a directory or repo: its path and its JSON object."""
    file = resolve_file(path, PREPROCESSOR_CONFIG, hub=hub)
    assert file is not None
    return file, read_json_object(file)


@dataclass(kw_only=True)
class BaseImageProcessor:
    """The processor; subclasses only change the defaults. Fields are the keys of preprocessor_config.json."""

    image_processor_type: ClassVar[str] = "BaseImageProcessor"
    model_input_names: ClassVar[list[str]] = ["pixel_values"]

    do_resize: bool = True
    size: dict[str, int] = field(default_factory=lambda: {"height": 224, "width": 224})
    resample: int = BILINEAR
    do_center_crop: bool = False
    crop_size: dict[str, int] | None = None
    do_rescale: bool = True
    rescale_factor: float = 1 / 255
    do_normalize: bool = True
    image_mean: list[float] = field(default_factory=lambda: list(IMAGENET_STANDARD_MEAN))
    image_std: list[float] = field(default_factory=lambda: list(IMAGENET_STANDARD_STD))
    do_convert_rgb: bool | None = None
    extra: dict[str, Any] = field(default_factory=dict, repr=False)  # unknown keys, written back as they were

    def __post_init__(self) -> None:
        if isinstance(self.size, int):  # legacy configs: an int is a square (ViT) or the shortest edge (CLIP)
            self.size = (
                {"shortest_edge": self.size}
                if self.do_center_crop
                else {"height": self.size, "width": self.size}
            )
        if isinstance(self.crop_size, int):
            self.crop_size = {"height": self.crop_size, "width": self.crop_size}
        if not ({"height", "width"} <= set(self.size) or "shortest_edge" in self.size):
            raise XfConfigError(
                f"size={self.size} needs 'height' and 'width', or 'shortest_edge' (optionally 'longest_edge').",
                key="size",
            )
        if self.do_center_crop and not (self.crop_size and {"height", "width"} <= set(self.crop_size)):
            raise XfConfigError(
                f"do_center_crop is set but crop_size={self.crop_size} lacks 'height' and 'width'.",
                key="crop_size",
            )
        for key in ("image_mean", "image_std"):
            value = getattr(self, key)
            if isinstance(value, (int, float)):
                setattr(self, key, [float(value)] * 3)
        if any(s == 0 for s in self.image_std):
            raise XfConfigError(
                f"image_std={self.image_std} has a zero; it would divide by zero.", key="image_std"
            )

    # ---- files ------------------------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, config: dict[str, Any]) -> BaseImageProcessor:
        known = {f.name for f in fields(cls)} - {"extra"}
        kwargs = {k: v for k, v in config.items() if k in known}
        extra = {k: v for k, v in config.items() if k not in known and k != "image_processor_type"}
        return cls(**kwargs, extra=extra)

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        if not self.do_center_crop and self.crop_size is None:  # a processor without cropping (ViT)
            out.pop("crop_size")
            out.pop("do_center_crop")
        if self.do_convert_rgb is None:
            out.pop("do_convert_rgb")
        return {**self.extra, **out, "image_processor_type": self.image_processor_type}

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike[str], **kwargs: Any) -> BaseImageProcessor:
        _, config = _read_preprocessor_config(path, HubOptions.pop_from(kwargs))
        return cls.from_dict({**config, **kwargs})

    def save_pretrained(self, save_directory: str | os.PathLike[str]) -> Path:
        """Write ``preprocessor_config.json`` (one file: written beside its name, then renamed into place)."""
        directory = Path(save_directory)
        path = directory / PREPROCESSOR_CONFIG
        tmp = directory / f".{PREPROCESSOR_CONFIG}.tmp"
        try:
            directory.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n", encoding="utf-8")
            os.replace(tmp, path)
        except OSError as e:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise os_error(e, directory, "saving the image processor to") from e
        return path

    # ---- processing -------------------------------------------------------------------------------------------
    def _target_size(self, image: np.ndarray) -> tuple[int, int]:
        size = self.size
        if "shortest_edge" in size:
            _, h, w = image.shape
            return _shortest_edge_size(h, w, size["shortest_edge"], size.get("longest_edge"))
        return size["height"], size["width"]

    def preprocess_one(self, image: Any, index: int = 0) -> np.ndarray:
        """One image -> float32 (C, H, W) pixel values."""
        image = load_image(image)
        array = _channels_first(image, bool(self.do_convert_rgb), index)
        if self.do_resize:
            array = _resize(array, *self._target_size(array), self.resample, index)
        if self.do_center_crop:
            assert self.crop_size is not None
            array = _center_crop(array, self.crop_size["height"], self.crop_size["width"])
        if self.do_rescale:
            array = (array.astype(np.float64) * self.rescale_factor).astype(np.float32)
        if self.do_normalize:
            if not np.issubdtype(array.dtype, np.floating):
                array = array.astype(np.float32)
            channels = array.shape[0]
            if len(self.image_mean) != channels or len(self.image_std) != channels:
                raise ImageProcessingError(
                    f"image {index} has {channels} channel(s) but image_mean/image_std have {len(self.image_mean)}; "
                    "pass RGB images or set do_convert_rgb=True."
                )
            mean = np.array(self.image_mean, dtype=array.dtype)
            std = np.array(self.image_std, dtype=array.dtype)
            array = ((array.T - mean) / std).T
        return array

    def __call__(self, images: Any, *, return_tensors: str | None = None) -> dict[str, Any]:
        """``{"pixel_values": ...}``: a list of arrays, or one stacked ``np.ndarray``/``torch.Tensor``
        (``return_tensors="np"``/``"pt"``)."""
        batch = list(images) if isinstance(images, (list, tuple)) else [images]
        if not batch:
            raise ImageProcessingError("no images were given.")
        pixels = [self.preprocess_one(image, i) for i, image in enumerate(batch)]
        if return_tensors is None:
            return {"pixel_values": pixels}
        shapes = {p.shape for p in pixels}
        if len(shapes) > 1:
            raise ImageProcessingError(
                f"the images have different shapes after processing ({sorted(shapes)}); they cannot be stacked. "
                "Set a fixed size, or return_tensors=None."
            )
        stacked = np.stack(pixels)
        if return_tensors == "np":
            return {"pixel_values": stacked}
        if return_tensors == "pt":
            torch = require("torch", purpose="return_tensors='pt'")
            return {"pixel_values": torch.from_numpy(stacked)}
        raise ImageProcessingError(f"return_tensors={return_tensors!r}; use None, 'np' or 'pt'.")

    preprocess = __call__


@dataclass(kw_only=True)
class ViTImageProcessor(BaseImageProcessor):
    """ViT: a 224x224 bilinear resize, rescale, normalize to [-1, 1]."""

    image_processor_type: ClassVar[str] = "ViTImageProcessor"


@dataclass(kw_only=True)
class CLIPImageProcessor(BaseImageProcessor):
    """CLIP: RGB, shortest edge 224 (bicubic), center crop 224, OpenAI's mean and std."""

    image_processor_type: ClassVar[str] = "CLIPImageProcessor"
    size: dict[str, int] = field(default_factory=lambda: {"shortest_edge": 224})
    resample: int = BICUBIC
    do_center_crop: bool = True
    crop_size: dict[str, int] | None = field(default_factory=lambda: {"height": 224, "width": 224})
    image_mean: list[float] = field(default_factory=lambda: list(OPENAI_CLIP_MEAN))
    image_std: list[float] = field(default_factory=lambda: list(OPENAI_CLIP_STD))
    do_convert_rgb: bool | None = True


IMAGE_PROCESSORS: dict[str, type[BaseImageProcessor]] = {
    name + suffix: cls
    for cls in (ViTImageProcessor, CLIPImageProcessor)
    for name in (cls.image_processor_type,)
    for suffix in ("", "Fast", "Pil")
}
# Names older configs use for the same processors.
IMAGE_PROCESSORS |= {"ViTFeatureExtractor": ViTImageProcessor, "CLIPFeatureExtractor": CLIPImageProcessor}


class AutoImageProcessor:
    """``AutoImageProcessor.from_pretrained(path)``: the processor named by ``image_processor_type`` (or
    ``feature_extractor_type``) in preprocessor_config.json."""

    @staticmethod
    def from_pretrained(path: str | os.PathLike[str], **kwargs: Any) -> BaseImageProcessor:
        file, config = _read_preprocessor_config(path, HubOptions.pop_from(kwargs))
        return image_processor_from_dict({**config, **kwargs}, file=file)


def image_processor_from_dict(config: dict[str, Any], *, file: str | os.PathLike[str]) -> BaseImageProcessor:
    """The processor named by ``image_processor_type`` (or ``feature_extractor_type``) in ``config``, read from
    ``file`` (preprocessor_config.json, or the ``image_processor`` entry of processor_config.json)."""
    name = config.get("image_processor_type") or config.get("feature_extractor_type")
    if name not in IMAGE_PROCESSORS:
        raise XfConfigError(
            f"{file} names image processor {name!r}, which xf does not have; known: "
            f"{', '.join(sorted(IMAGE_PROCESSORS))}.",
            key="image_processor_type",
            file=str(file),
        )
    return IMAGE_PROCESSORS[name].from_dict(config)
