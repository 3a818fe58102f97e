"""ViT (Dosovitskiy et al., 2020): a pre-LayerNorm transformer encoder over image patches.

What is notable, read top to bottom:

* The image is cut into ``patch_size`` squares by a strided Conv2d (``patch_embeddings.projection``); a learned
  ``cls_token`` is prepended and learned absolute ``position_embeddings`` (one per patch, plus one) are added.
  ``interpolate_pos_encoding=True`` resizes the patch positions bicubically for another image size.
* Pre-LayerNorm layers: ``x + attention(layernorm_before(x))``, then ``x + mlp(layernorm_after(x))``; attention
  is bidirectional and unmasked; a final ``layernorm`` closes the encoder.
* Checkpoint names keep the original layout (``encoder.layer.N.attention.attention.query``,
  ``attention.output.dense``, ``intermediate.dense``, ``output.dense``), which the modules below mirror.
* ``ViTModel`` has a pooler (``tanh(dense(h[:, 0]))``); the classifier does not use it and reads the final
  hidden state of the ``[CLS]`` token directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from xf_core.errors import XfConfigError, XfValueError
from xf_load import initialization as init
from xf_load.activations import Activation, get_activation
from xf_load.attention import AttentionFn, get_attention
from xf_load.configuration_utils import PretrainedConfig
from xf_load.heads import HeadKind
from xf_load.losses import sequence_classification_loss
from xf_load.modeling_utils import PreTrainedModel
from xf_load.outputs import BaseModelOutput, ModelOutput

__all__ = [
    "ImageClassifierOutput",
    "ViTConfig",
    "ViTForImageClassification",
    "ViTModel",
    "ViTPreTrainedModel",
    "check_pixel_values",
]

# ---------------------------------------------------------------------------------------------- config


@dataclass(kw_only=True)
class ViTConfig(PretrainedConfig):
    """ViT's ``config.json``, field names and defaults as transformers writes them."""

    model_type: ClassVar[str] = "vit"

    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.0
    attention_probs_dropout_prob: float = 0.0
    layer_norm_eps: float = 1e-12
    image_size: int = 224
    patch_size: int = 16
    num_channels: int = 3
    qkv_bias: bool = True
    pooler_output_size: int | None = None  # the hidden size when unset
    pooler_act: str = "tanh"

    def validate(self) -> None:
        self.check_positive(
            "hidden_size",
            "num_hidden_layers",
            "num_attention_heads",
            "intermediate_size",
            "image_size",
            "patch_size",
            "num_channels",
        )
        if self.hidden_size % self.num_attention_heads:
            raise XfConfigError(
                f"hidden_size={self.hidden_size} is not divisible by num_attention_heads="
                f"{self.num_attention_heads}; pick a head count that divides the hidden size.",
                key="hidden_size",
            )
        if self.patch_size > self.image_size:
            raise XfConfigError(
                f"patch_size={self.patch_size} is larger than image_size={self.image_size}; the image would have "
                "no patch.",
                key="patch_size",
            )
        get_activation(self.hidden_act)
        get_activation(self.pooler_act, key="pooler_act")
        if self.pooler_output_size is None:
            self.pooler_output_size = self.hidden_size


def check_pixel_values(
    pixel_values: torch.Tensor | None, *, num_channels: int, image_size: int, interpolate: bool, owner: str
) -> None:
    """Raise :class:`XfValueError` saying what to pass when ``pixel_values`` is not (B, C, H, W) with the
    model's channels and, unless positions are interpolated, its image size."""
    if pixel_values is None:
        raise XfValueError(f"{owner} needs pixel_values (B, C, H, W); get them from the image processor.")
    if pixel_values.dim() != 4:
        raise XfValueError(
            f"{owner} got pixel_values of shape {list(pixel_values.shape)}; pass a (batch, channels, height, "
            "width) tensor (the image processor's return_tensors='pt')."
        )
    _, channels, height, width = pixel_values.shape
    if channels != num_channels:
        raise XfValueError(
            f"{owner} got {channels} channel(s) but the model has num_channels={num_channels}; convert the images "
            "(the image processor's do_convert_rgb=True gives 3)."
        )
    if not interpolate and (height, width) != (image_size, image_size):
        raise XfValueError(
            f"{owner} got {height}x{width} images but the model takes {image_size}x{image_size}; resize them (the "
            "checkpoint's image processor does) or pass interpolate_pos_encoding=True."
        )


def interpolate_positions(positions: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """(1, 1 + n*n, C) learned positions -> (1, 1 + h*w, C) for a (h, w) patch grid: the patch positions are
    resized bicubically as a square image, the first (class token) position is kept."""
    cls_pos, patch_pos = positions[:, :1], positions[:, 1:]
    n, C = int(patch_pos.shape[1] ** 0.5), patch_pos.shape[-1]
    if (n, n) == grid:
        return positions
    patch_pos = patch_pos.reshape(1, n, n, C).permute(0, 3, 1, 2)  # (1, C, n, n)
    patch_pos = F.interpolate(patch_pos, size=grid, mode="bicubic", align_corners=False)
    return torch.cat((cls_pos, patch_pos.permute(0, 2, 3, 1).reshape(1, -1, C)), dim=1)


# ---------------------------------------------------------------------------------------------- blocks


class ViTPatchEmbeddings(nn.Module):
    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        p = config.patch_size
        self.projection: nn.Conv2d = nn.Conv2d(
            config.num_channels, config.hidden_size, kernel_size=p, stride=p
        )

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.projection(pixel_values).flatten(2).transpose(1, 2)  # (B, C, h, w) -> (B, h*w, C)


class ViTEmbeddings(nn.Module):
    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        num_patches = (config.image_size // config.patch_size) ** 2
        self.config = config
        self.cls_token: nn.Parameter = nn.Parameter(torch.empty(1, 1, config.hidden_size))
        self.patch_embeddings: ViTPatchEmbeddings = ViTPatchEmbeddings(config)
        self.position_embeddings: nn.Parameter = nn.Parameter(
            torch.empty(1, num_patches + 1, config.hidden_size)
        )
        self.dropout: nn.Dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, pixel_values: torch.Tensor, interpolate_pos_encoding: bool = False) -> torch.Tensor:
        B, _, H, W = pixel_values.shape
        x = self.patch_embeddings(pixel_values.to(self.patch_embeddings.projection.weight.dtype))
        x = torch.cat((self.cls_token.expand(B, -1, -1), x), dim=1)  # (B, 1 + h*w, C)
        positions = self.position_embeddings
        if interpolate_pos_encoding:
            p = self.config.patch_size
            positions = interpolate_positions(positions, (H // p, W // p))
        return self.dropout(x + positions)


class ViTSelfAttention(nn.Module):
    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        self.n_head: int = config.num_attention_heads
        self.head_dim: int = config.hidden_size // config.num_attention_heads
        self.query: nn.Linear = nn.Linear(config.hidden_size, config.hidden_size, bias=config.qkv_bias)
        self.key: nn.Linear = nn.Linear(config.hidden_size, config.hidden_size, bias=config.qkv_bias)
        self.value: nn.Linear = nn.Linear(config.hidden_size, config.hidden_size, bias=config.qkv_bias)
        self.dropout: float = config.attention_probs_dropout_prob
        self.attend: AttentionFn = get_attention(config.attn_implementation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q = self.query(x).view(B, T, self.n_head, self.head_dim).transpose(1, 2)  # (B, nh, T, hs)
        k = self.key(x).view(B, T, self.n_head, self.head_dim).transpose(1, 2)  # (B, nh, T, hs)
        v = self.value(x).view(B, T, self.n_head, self.head_dim).transpose(1, 2)  # (B, nh, T, hs)
        y = self.attend(
            q, k, v, None, scale=self.head_dim**-0.5, dropout=self.dropout, training=self.training
        )  # (B, T, nh, hs)
        return y.reshape(B, T, C)


class ViTDense(nn.Module):
    """``dropout(dense(x))``: the attention output (``attention.output``) and the MLP output (``output``);
    the residual is added by the layer."""

    def __init__(self, config: ViTConfig, in_features: int) -> None:
        super().__init__()
        self.dense: nn.Linear = nn.Linear(in_features, config.hidden_size)
        self.dropout: nn.Dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.dense(x))


class ViTAttention(nn.Module):
    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        self.attention: ViTSelfAttention = ViTSelfAttention(config)
        self.output: ViTDense = ViTDense(config, config.hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output(self.attention(x))


class ViTIntermediate(nn.Module):
    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        self.dense: nn.Linear = nn.Linear(config.hidden_size, config.intermediate_size)
        self.act: Activation = get_activation(config.hidden_act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.dense(x))


class ViTLayer(nn.Module):
    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        self.layernorm_before: nn.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.attention: ViTAttention = ViTAttention(config)
        self.layernorm_after: nn.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.intermediate: ViTIntermediate = ViTIntermediate(config)
        self.output: ViTDense = ViTDense(config, config.intermediate_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.layernorm_before(x))
        return x + self.output(self.intermediate(self.layernorm_after(x)))


class ViTEncoder(nn.Module):
    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        self.layer: nn.ModuleList = nn.ModuleList(ViTLayer(config) for _ in range(config.num_hidden_layers))


class ViTPooler(nn.Module):
    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        assert config.pooler_output_size is not None  # set by ViTConfig.validate
        self.dense: nn.Linear = nn.Linear(config.hidden_size, config.pooler_output_size)
        self.act: Activation = get_activation(config.pooler_act, key="pooler_act")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.dense(x[:, 0]))  # the first ([CLS]) token


# ---------------------------------------------------------------------------------------------- models


@dataclass
class ImageClassifierOutput(ModelOutput):
    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None


class ViTPreTrainedModel(PreTrainedModel):
    config_class: ClassVar[type[PretrainedConfig]] = ViTConfig
    base_model_prefix = "vit"
    main_input_name: ClassVar[str] = "pixel_values"
    _no_split_modules: ClassVar[list[str]] = ["ViTEmbeddings", "ViTLayer"]

    def _init_weights(self, module: nn.Module) -> None:
        """Linear and Conv2d ~ TruncNormal(0, initializer_range) with zero bias, LayerNorm 1/0, the class token
        and positions ~ TruncNormal(0, initializer_range) (transformers' table)."""
        std = self.config.initializer_range
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            init.trunc_normal_(module.weight, mean=0.0, std=std)
            init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, ViTEmbeddings):
            init.trunc_normal_(module.position_embeddings, mean=0.0, std=std)
            init.trunc_normal_(module.cls_token, mean=0.0, std=std)


class ViTModel(ViTPreTrainedModel):
    head_kind: ClassVar[HeadKind] = HeadKind.BASE

    def __init__(self, config: ViTConfig, add_pooling_layer: bool = True) -> None:
        super().__init__(config)
        self.embeddings: ViTEmbeddings = ViTEmbeddings(config)
        self.encoder: ViTEncoder = ViTEncoder(config)
        self.layernorm: nn.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.pooler: ViTPooler | None = ViTPooler(config) if add_pooling_layer else None
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.embeddings.patch_embeddings

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        interpolate_pos_encoding: bool | None = None,
        output_hidden_states: bool = False,
        **kwargs: Any,
    ) -> BaseModelOutput:
        """``hidden_states`` (with ``output_hidden_states``): the embeddings, then each layer's output."""
        check_pixel_values(
            pixel_values,
            num_channels=self.config.num_channels,
            image_size=self.config.image_size,
            interpolate=bool(interpolate_pos_encoding),
            owner=type(self).__name__,
        )
        assert pixel_values is not None
        x = self.embeddings(pixel_values, bool(interpolate_pos_encoding))
        hidden_states = [x] if output_hidden_states else None
        for layer in self.encoder.layer:
            x = self._run_layer(layer, x)
            if hidden_states is not None:
                hidden_states.append(x)
        x = self.layernorm(x)
        return BaseModelOutput(
            last_hidden_state=x,
            pooler_output=self.pooler(x) if self.pooler is not None else None,
            hidden_states=tuple(hidden_states) if hidden_states is not None else None,
        )


class ViTForImageClassification(ViTPreTrainedModel):
    """A linear classifier on the final hidden state of the ``[CLS]`` token (the pooler is not used)."""

    head_kind: ClassVar[HeadKind] = HeadKind.IMAGE_CLASSIFICATION

    def __init__(self, config: ViTConfig) -> None:
        super().__init__(config)
        self.vit: ViTModel = ViTModel(config, add_pooling_layer=False)
        self.classifier: nn.Module = (
            nn.Linear(config.hidden_size, config.num_labels) if config.num_labels > 0 else nn.Identity()
        )
        self.post_init()

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        interpolate_pos_encoding: bool | None = None,
        output_hidden_states: bool = False,
        **kwargs: Any,
    ) -> ImageClassifierOutput:
        out = self.vit(pixel_values, interpolate_pos_encoding, output_hidden_states)
        logits = self.classifier(out.last_hidden_state[:, 0])
        loss = None
        if labels is not None:
            loss = sequence_classification_loss(
                logits, labels, num_labels=self.config.num_labels, problem_type=self.config.problem_type
            )
        return ImageClassifierOutput(loss=loss, logits=logits, hidden_states=out.hidden_states)
