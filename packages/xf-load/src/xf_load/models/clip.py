"""CLIP (Radford et al., 2021): a text tower and a vision tower trained to agree, for zero-shot classification.

What is notable, read top to bottom:

* Three configs: ``CLIPTextConfig``, ``CLIPVisionConfig`` and ``CLIPConfig`` holding both (``text_config``,
  ``vision_config`` in config.json). A tower's config read from a CLIP checkpoint's config.json is its part.
* Both towers share one pre-LayerNorm encoder layer (``layer_norm1`` -> attention -> residual,
  ``layer_norm2`` -> MLP ``fc1``/``fc2`` with ``quick_gelu`` -> residual).
* Text: token + learned position embeddings, causal attention (plus padding), a ``final_layer_norm``; the
  pooled output is the hidden state at the first end-of-text token (at the largest token id for old configs
  with ``eos_token_id == 2``, as OpenAI's original code does).
* Vision: ViT-style patches (a Conv2d without bias) after a learned ``class_embedding``, learned positions,
  a LayerNorm *before* the encoder (``pre_layrnorm``, sic, as checkpoints spell it) and one on the pooled class
  token only (``post_layernorm``).
* ``CLIPModel`` projects both pooled outputs (``text_projection``, ``visual_projection``, no bias), normalises
  them and scales their cosine similarities by ``exp(logit_scale)``. ``get_text_features`` and
  ``get_image_features`` return the towers' outputs with the projected embeddings as ``pooler_output``, as
  transformers v5 does.
* A tower loads from a whole CLIP checkpoint: its keys there start with ``text_model.``/``vision_model.``,
  the tower's ``base_model_prefix``, which the loader strips.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Self

import torch
import torch.nn.functional as F
from torch import nn

from xf_core.errors import XfConfigError, XfValueError
from xf_load import initialization as init
from xf_load._decoder import check_token_ids
from xf_load.activations import Activation, get_activation
from xf_load.attention import AttentionFn, get_attention
from xf_load.configuration_utils import PretrainedConfig
from xf_load.heads import HeadKind
from xf_load.masks import causal_mask
from xf_load.modeling_utils import PreTrainedModel
from xf_load.models.vit import check_pixel_values, interpolate_positions
from xf_load.outputs import BaseModelOutput, ModelOutput

__all__ = [
    "CLIPConfig",
    "CLIPModel",
    "CLIPOutput",
    "CLIPPreTrainedModel",
    "CLIPTextConfig",
    "CLIPTextModel",
    "CLIPVisionConfig",
    "CLIPVisionModel",
    "contrastive_loss",
]

# ---------------------------------------------------------------------------------------------- configs


@dataclass(kw_only=True)
class _CLIPTowerConfig(PretrainedConfig):
    """What both towers' configs share; ``part`` is the key of this tower's config in a CLIP config.json."""

    part: ClassVar[str] = ""

    hidden_size: int = 512
    intermediate_size: int = 2048
    projection_dim: int = 512
    num_hidden_layers: int = 12
    num_attention_heads: int = 8
    hidden_act: str = "quick_gelu"
    layer_norm_eps: float = 1e-5
    attention_dropout: float = 0.0
    initializer_factor: float = 1.0

    def validate(self) -> None:
        self.check_positive("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads")
        if self.hidden_size % self.num_attention_heads:
            raise XfConfigError(
                f"hidden_size={self.hidden_size} is not divisible by num_attention_heads="
                f"{self.num_attention_heads}; pick a head count that divides the hidden size.",
                key="hidden_size",
            )
        get_activation(self.hidden_act)

    @classmethod
    def from_dict(cls, data: dict[str, Any], /, **overrides: Any) -> Self:
        """A whole CLIP config.json (``model_type: clip``) gives its ``text_config``/``vision_config`` part."""
        if data.get("model_type") == CLIPConfig.model_type:
            data = dict(data.get(cls.part) or {})
        return super().from_dict(data, **overrides)


@dataclass(kw_only=True)
class CLIPTextConfig(_CLIPTowerConfig):
    model_type: ClassVar[str] = "clip_text_model"
    part: ClassVar[str] = "text_config"

    vocab_size: int = 49408
    max_position_embeddings: int = 77
    pad_token_id: int | None = 1
    bos_token_id: int | None = 49406
    eos_token_id: int | list[int] | None = 49407

    def validate(self) -> None:
        super().validate()
        self.check_positive("vocab_size", "max_position_embeddings")
        if not isinstance(self.eos_token_id, int):
            raise XfConfigError(
                f"eos_token_id={self.eos_token_id!r}: CLIP's text tower pools at the end-of-text token, so it "
                "needs one integer id.",
                key="eos_token_id",
            )


@dataclass(kw_only=True)
class CLIPVisionConfig(_CLIPTowerConfig):
    model_type: ClassVar[str] = "clip_vision_model"
    part: ClassVar[str] = "vision_config"

    hidden_size: int = 768
    intermediate_size: int = 3072
    num_attention_heads: int = 12
    num_channels: int = 3
    image_size: int = 224
    patch_size: int = 32

    def validate(self) -> None:
        super().validate()
        self.check_positive("num_channels", "image_size", "patch_size")
        if self.patch_size > self.image_size:
            raise XfConfigError(
                f"patch_size={self.patch_size} is larger than image_size={self.image_size}.", key="patch_size"
            )


@dataclass(kw_only=True)
class CLIPConfig(PretrainedConfig):
    """CLIP's ``config.json``: both towers' configs (given as dicts or config objects) and the projection."""

    model_type: ClassVar[str] = "clip"

    text_config: CLIPTextConfig | dict[str, Any] | None = None
    vision_config: CLIPVisionConfig | dict[str, Any] | None = None
    projection_dim: int = 512
    logit_scale_init_value: float = 2.6592
    initializer_factor: float = 1.0

    def validate(self) -> None:
        for name, cls in (("text_config", CLIPTextConfig), ("vision_config", CLIPVisionConfig)):
            value = getattr(self, name)
            if value is None or isinstance(value, dict):
                value = cls.from_dict(value or {})
            elif not isinstance(value, cls):
                raise XfConfigError(
                    f"{name} must be a {cls.__name__} or a dict of its values, not {type(value).__name__}.",
                    key=name,
                )
            if self.attn_implementation is not None:  # a choice made for the whole model reaches both towers
                value.attn_implementation = self.attn_implementation
            object.__setattr__(self, name, value)
        self.check_positive("projection_dim")

    @property
    def text(self) -> CLIPTextConfig:
        assert isinstance(self.text_config, CLIPTextConfig)  # made so by validate
        return self.text_config

    @property
    def vision(self) -> CLIPVisionConfig:
        assert isinstance(self.vision_config, CLIPVisionConfig)  # made so by validate
        return self.vision_config

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out["text_config"] = self.text.to_dict()
        out["vision_config"] = self.vision.to_dict()
        return out

    def copy(self, **changes: Any) -> Self:
        copied = super().copy(**changes)
        for part in (copied.text, copied.vision):
            part.attn_implementation = copied.attn_implementation or part.attn_implementation
        return copied


# ---------------------------------------------------------------------------------------------- blocks


class CLIPAttention(nn.Module):
    def __init__(self, config: _CLIPTowerConfig) -> None:
        super().__init__()
        self.n_head: int = config.num_attention_heads
        self.head_dim: int = config.hidden_size // config.num_attention_heads
        self.q_proj: nn.Linear = nn.Linear(config.hidden_size, config.hidden_size)
        self.k_proj: nn.Linear = nn.Linear(config.hidden_size, config.hidden_size)
        self.v_proj: nn.Linear = nn.Linear(config.hidden_size, config.hidden_size)
        self.out_proj: nn.Linear = nn.Linear(config.hidden_size, config.hidden_size)
        self.dropout: float = config.attention_dropout
        self.attend: AttentionFn = get_attention(config.attn_implementation)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, is_causal: bool) -> torch.Tensor:
        B, T, C = x.shape
        q = self.q_proj(x).view(B, T, self.n_head, self.head_dim).transpose(1, 2)  # (B, nh, T, hs)
        k = self.k_proj(x).view(B, T, self.n_head, self.head_dim).transpose(1, 2)  # (B, nh, T, hs)
        v = self.v_proj(x).view(B, T, self.n_head, self.head_dim).transpose(1, 2)  # (B, nh, T, hs)
        y = self.attend(
            q,
            k,
            v,
            mask,
            scale=self.head_dim**-0.5,
            dropout=self.dropout,
            is_causal=is_causal,
            training=self.training,
        )  # (B, T, nh, hs)
        return self.out_proj(y.reshape(B, T, C))


class CLIPMLP(nn.Module):
    def __init__(self, config: _CLIPTowerConfig) -> None:
        super().__init__()
        self.fc1: nn.Linear = nn.Linear(config.hidden_size, config.intermediate_size)
        self.act: Activation = get_activation(config.hidden_act)
        self.fc2: nn.Linear = nn.Linear(config.intermediate_size, config.hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class CLIPEncoderLayer(nn.Module):
    def __init__(self, config: _CLIPTowerConfig) -> None:
        super().__init__()
        self.layer_norm1: nn.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.self_attn: CLIPAttention = CLIPAttention(config)
        self.layer_norm2: nn.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.mlp: CLIPMLP = CLIPMLP(config)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, is_causal: bool) -> torch.Tensor:
        x = x + self.self_attn(self.layer_norm1(x), mask, is_causal)
        return x + self.mlp(self.layer_norm2(x))


class CLIPEncoder(nn.Module):
    def __init__(self, config: _CLIPTowerConfig) -> None:
        super().__init__()
        self.layers: nn.ModuleList = nn.ModuleList(
            CLIPEncoderLayer(config) for _ in range(config.num_hidden_layers)
        )


class CLIPTextEmbeddings(nn.Module):
    def __init__(self, config: CLIPTextConfig) -> None:
        super().__init__()
        self.token_embedding: nn.Embedding = nn.Embedding(config.vocab_size, config.hidden_size)
        self.position_embedding: nn.Embedding = nn.Embedding(
            config.max_position_embeddings, config.hidden_size
        )

    def forward(self, input_ids: torch.Tensor, position_ids: torch.Tensor | None) -> torch.Tensor:
        length, limit = input_ids.shape[1], self.position_embedding.num_embeddings
        if length > limit:
            raise XfValueError(
                f"a text of {length} tokens is longer than CLIP's max_position_embeddings={limit}; truncate it "
                f"(tokenizer(..., truncation=True, max_length={limit}))."
            )
        check_token_ids(input_ids, self.token_embedding.num_embeddings, owner="CLIPTextModel")
        if position_ids is None:
            return self.token_embedding(input_ids) + self.position_embedding.weight[:length]
        return self.token_embedding(input_ids) + self.position_embedding(position_ids)


class CLIPVisionEmbeddings(nn.Module):
    def __init__(self, config: CLIPVisionConfig) -> None:
        super().__init__()
        self.patch_size: int = config.patch_size
        num_positions = (config.image_size // config.patch_size) ** 2 + 1
        self.class_embedding: nn.Parameter = nn.Parameter(torch.empty(config.hidden_size))
        self.patch_embedding: nn.Conv2d = nn.Conv2d(
            config.num_channels,
            config.hidden_size,
            kernel_size=config.patch_size,
            stride=config.patch_size,
            bias=False,
        )
        self.position_embedding: nn.Embedding = nn.Embedding(num_positions, config.hidden_size)

    def forward(self, pixel_values: torch.Tensor, interpolate_pos_encoding: bool) -> torch.Tensor:
        B, _, H, W = pixel_values.shape
        x = self.patch_embedding(pixel_values.to(self.patch_embedding.weight.dtype))  # (B, C, h, w)
        x = x.flatten(2).transpose(1, 2)  # (B, h*w, C)
        x = torch.cat((self.class_embedding.expand(B, 1, -1), x), dim=1)  # (B, 1 + h*w, C)
        positions = self.position_embedding.weight[None]  # (1, 1 + n*n, C)
        if interpolate_pos_encoding:
            positions = interpolate_positions(positions, (H // self.patch_size, W // self.patch_size))
        return x + positions


# ---------------------------------------------------------------------------------------------- models


def contrastive_loss(logits_per_text: torch.Tensor) -> torch.Tensor:
    """CLIP's symmetric loss: cross-entropy over texts and over images, the i-th text matching the i-th image."""
    targets = torch.arange(logits_per_text.shape[0], device=logits_per_text.device)
    return (F.cross_entropy(logits_per_text, targets) + F.cross_entropy(logits_per_text.t(), targets)) / 2


@dataclass
class CLIPOutput(ModelOutput):
    loss: torch.Tensor | None = None
    logits_per_image: torch.Tensor | None = None  # (images, texts)
    logits_per_text: torch.Tensor | None = None  # (texts, images)
    text_embeds: torch.Tensor | None = None  # projected and normalised
    image_embeds: torch.Tensor | None = None
    text_model_output: BaseModelOutput | None = None
    vision_model_output: BaseModelOutput | None = None


class CLIPPreTrainedModel(PreTrainedModel):
    config_class: ClassVar[type[PretrainedConfig]] = CLIPConfig
    _no_split_modules: ClassVar[list[str]] = [
        "CLIPTextEmbeddings",
        "CLIPEncoderLayer",
        "CLIPVisionEmbeddings",
    ]
    # transformers kept position ids as a buffer in older checkpoints; they are computed here.
    _keys_to_ignore_on_load_unexpected: ClassVar[list[str]] = [r"position_ids$"]

    def _init_weights(self, module: nn.Module) -> None:
        """A table close to transformers' (which also scales q/k/v and fc2 by depth): embeddings ~ N(0, 0.02),
        the class embedding and every Linear ~ N(0, in_features^-0.5), the patch Conv2d ~ N(0,
        initializer_range), biases 0, LayerNorm 1/0, ``logit_scale`` its init value; all stds times
        ``initializer_factor``."""
        config = self.config
        factor = config.initializer_factor
        if isinstance(module, nn.Embedding):
            init.normal_(module.weight, std=0.02 * factor)
        elif isinstance(module, nn.Linear):
            init.normal_(module.weight, std=module.in_features**-0.5 * factor)
            init.zeros_(module.bias)
        elif isinstance(module, nn.Conv2d):
            init.normal_(module.weight, std=config.initializer_range * factor)
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, CLIPVisionEmbeddings):
            init.normal_(module.class_embedding, std=module.class_embedding.shape[0] ** -0.5 * factor)
        elif isinstance(module, CLIPModel):
            init.constant_(module.logit_scale, config.logit_scale_init_value)


class CLIPTextModel(CLIPPreTrainedModel):
    """The text tower. ``pooler_output`` is the final hidden state at the end-of-text token."""

    config_class: ClassVar[type[PretrainedConfig]] = CLIPTextConfig
    head_kind: ClassVar[HeadKind] = HeadKind.BASE
    base_model_prefix = "text_model"  # where its keys live in a CLIP checkpoint

    def __init__(self, config: CLIPTextConfig) -> None:
        super().__init__(config)
        self.embeddings: CLIPTextEmbeddings = CLIPTextEmbeddings(config)
        self.encoder: CLIPEncoder = CLIPEncoder(config)
        self.final_layer_norm: nn.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embeddings.token_embedding

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embeddings.token_embedding = value

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        output_hidden_states: bool = False,
        **kwargs: Any,
    ) -> BaseModelOutput:
        if input_ids is None:
            raise XfValueError("CLIPTextModel needs input_ids; get them from the tokenizer.")
        input_ids = input_ids.view(-1, input_ids.shape[-1])
        x = self.embeddings(input_ids, position_ids)
        T = x.shape[1]
        mask = causal_mask(attention_mask, torch.arange(T, device=x.device), T)  # None: plain causal
        hidden_states = [x] if output_hidden_states else None
        for layer in self.encoder.layers:
            x = self._run_layer(layer, x, mask, mask is None)
            if hidden_states is not None:
                hidden_states.append(x)
        x = self.final_layer_norm(x)
        eos = self.config.eos_token_id
        ids = input_ids.to(device=x.device, dtype=torch.int)
        ends = ids.argmax(-1) if eos == 2 else (ids == eos).int().argmax(-1)  # the first end-of-text token
        pooled = x[torch.arange(x.shape[0], device=x.device), ends]
        return BaseModelOutput(
            last_hidden_state=x,
            pooler_output=pooled,
            hidden_states=tuple(hidden_states) if hidden_states is not None else None,
        )


class CLIPVisionModel(CLIPPreTrainedModel):
    """The vision tower. ``pooler_output`` is the class token after ``post_layernorm``."""

    config_class: ClassVar[type[PretrainedConfig]] = CLIPVisionConfig
    head_kind: ClassVar[HeadKind] = HeadKind.BASE
    base_model_prefix = "vision_model"  # where its keys live in a CLIP checkpoint
    main_input_name: ClassVar[str] = "pixel_values"

    def __init__(self, config: CLIPVisionConfig) -> None:
        super().__init__(config)
        self.embeddings: CLIPVisionEmbeddings = CLIPVisionEmbeddings(config)
        self.pre_layrnorm: nn.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.encoder: CLIPEncoder = CLIPEncoder(config)
        self.post_layernorm: nn.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.embeddings.patch_embedding

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        interpolate_pos_encoding: bool = False,
        output_hidden_states: bool = False,
        **kwargs: Any,
    ) -> BaseModelOutput:
        config = self.config
        check_pixel_values(
            pixel_values,
            num_channels=config.num_channels,
            image_size=config.image_size,
            interpolate=interpolate_pos_encoding,
            owner=type(self).__name__,
        )
        assert pixel_values is not None
        x = self.pre_layrnorm(self.embeddings(pixel_values, interpolate_pos_encoding))
        hidden_states = [x] if output_hidden_states else None
        for layer in self.encoder.layers:
            x = self._run_layer(layer, x, None, False)
            if hidden_states is not None:
                hidden_states.append(x)
        return BaseModelOutput(
            last_hidden_state=x,
            pooler_output=self.post_layernorm(x[:, 0]),
            hidden_states=tuple(hidden_states) if hidden_states is not None else None,
        )


class CLIPModel(CLIPPreTrainedModel):
    """Both towers and their projections; ``forward`` scores every image against every text."""

    config_class: ClassVar[type[PretrainedConfig]] = CLIPConfig
    head_kind: ClassVar[HeadKind] = HeadKind.ZERO_SHOT_IMAGE_CLASSIFICATION

    def __init__(self, config: CLIPConfig) -> None:
        super().__init__(config)
        self.text_model: CLIPTextModel = CLIPTextModel(config.text)
        self.vision_model: CLIPVisionModel = CLIPVisionModel(config.vision)
        self.text_projection: nn.Linear = nn.Linear(
            config.text.hidden_size, config.projection_dim, bias=False
        )
        self.visual_projection: nn.Linear = nn.Linear(
            config.vision.hidden_size, config.projection_dim, bias=False
        )
        self.logit_scale: nn.Parameter = nn.Parameter(torch.empty(()))
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.text_model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.text_model.set_input_embeddings(value)

    def get_text_features(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> BaseModelOutput:
        """The text tower's output with ``pooler_output`` replaced by its projection (not normalised)."""
        out = self.text_model(input_ids, attention_mask, position_ids, **kwargs)
        out.pooler_output = self.text_projection(out.pooler_output)
        return out

    def get_image_features(
        self, pixel_values: torch.Tensor, interpolate_pos_encoding: bool = False, **kwargs: Any
    ) -> BaseModelOutput:
        """The vision tower's output with ``pooler_output`` replaced by its projection (not normalised)."""
        out = self.vision_model(pixel_values, interpolate_pos_encoding, **kwargs)
        out.pooler_output = self.visual_projection(out.pooler_output)
        return out

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        return_loss: bool | None = None,
        interpolate_pos_encoding: bool = False,
        output_hidden_states: bool = False,
        **kwargs: Any,
    ) -> CLIPOutput:
        if input_ids is None or pixel_values is None:
            raise XfValueError(
                "CLIPModel needs both input_ids and pixel_values; for one side alone call get_text_features or "
                "get_image_features."
            )
        vision = self.get_image_features(
            pixel_values, interpolate_pos_encoding, output_hidden_states=output_hidden_states
        )
        text = self.get_text_features(
            input_ids, attention_mask, position_ids, output_hidden_states=output_hidden_states
        )
        image_embeds = vision.pooler_output / vision.pooler_output.norm(p=2, dim=-1, keepdim=True)
        text_embeds = text.pooler_output / text.pooler_output.norm(p=2, dim=-1, keepdim=True)
        logits_per_text = text_embeds @ image_embeds.t() * self.logit_scale.exp()  # (texts, images)
        return CLIPOutput(
            loss=contrastive_loss(logits_per_text) if return_loss else None,
            logits_per_image=logits_per_text.t(),
            logits_per_text=logits_per_text,
            text_embeds=text_embeds,
            image_embeds=image_embeds,
            text_model_output=text,
            vision_model_output=vision,
        )
