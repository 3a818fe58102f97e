"""The Llama family: Llama, Mistral, Qwen2 and Qwen3 in one file.

* Pre-norm decoder: RMSNorm -> attention -> residual, RMSNorm -> SwiGLU MLP -> residual; final RMSNorm.
* Grouped-query attention (``num_key_value_heads`` divides ``num_attention_heads``), ``head_dim`` may differ
  from ``hidden_size / num_attention_heads``.
* RoPE of every type in :data:`xf_load.rope.ROPE_INIT` (default, linear, dynamic, yarn, longrope, llama3).
* The variants are config flags: Mistral = sliding-window attention on every layer; Qwen2 = q/k/v biases and
  sliding windows on layers >= ``max_window_layers`` when ``use_sliding_window``; Qwen3 = RMSNorm over each
  head of q and k before RoPE. ``MistralForCausalLM`` etc. are plain subclasses of the Llama classes that
  only name their config class (so AutoConfig and ``save_pretrained`` see the right ``model_type``).
* The forward's set-up (cache, positions, masks, ``logits_to_keep``) is the shared decoder prologue,
  :mod:`xf_load._decoder`.
* The LM head may be tied to the input embeddings (``tie_word_embeddings``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from xf_core.errors import XfConfigError
from xf_load import initialization as init
from xf_load._decoder import decoder_prologue, keep_logits
from xf_load._fusing import fused_linear
from xf_load.activations import Activation, get_activation
from xf_load.attention import AttentionFn, get_attention
from xf_load.cache import Cache
from xf_load.configuration_utils import PretrainedConfig
from xf_load.generation import GenerationMixin
from xf_load.heads import HeadKind
from xf_load.losses import causal_lm_loss, sequence_classification_loss
from xf_load.modeling_utils import PreTrainedModel
from xf_load.outputs import BaseModelOutput, CausalLMOutput, SequenceClassifierOutput
from xf_load.rope import RotaryEmbedding, apply_rotary_pos_emb, standardize_rope_parameters

__all__ = [
    "LlamaConfig",
    "LlamaForCausalLM",
    "LlamaForSequenceClassification",
    "LlamaModel",
    "MistralConfig",
    "MistralForCausalLM",
    "MistralForSequenceClassification",
    "MistralModel",
    "Qwen2Config",
    "Qwen2ForCausalLM",
    "Qwen2ForSequenceClassification",
    "Qwen2Model",
    "Qwen3Config",
    "Qwen3ForCausalLM",
    "Qwen3ForSequenceClassification",
    "Qwen3Model",
]

# Tensor-parallel plan for xf-parallel (applied from outside; the model knows nothing of it).
TP_PLAN = {
    "layers.*.self_attn.q_proj": "colwise",
    "layers.*.self_attn.k_proj": "colwise",
    "layers.*.self_attn.v_proj": "colwise",
    "layers.*.self_attn.o_proj": "rowwise",
    "layers.*.mlp.gate_proj": "colwise",
    "layers.*.mlp.up_proj": "colwise",
    "layers.*.mlp.down_proj": "rowwise",
}


# Linears that read the same input, run as one matmul at inference (xf_load._fusing); modules and
# state-dict keys stay transformers'.
QKV = ("q_proj", "k_proj", "v_proj")
GATE_UP = ("gate_proj", "up_proj")


# ---- configs ----------------------------------------------------------------------------------------------
@dataclass(kw_only=True)
class LlamaConfig(PretrainedConfig):
    model_type: ClassVar[str] = "llama"
    # Fields this variant does not have in transformers, so they are not written to config.json.
    omitted_fields: ClassVar[frozenset[str]] = frozenset(
        {"sliding_window", "use_sliding_window", "max_window_layers", "layer_types"}
    )
    qkv_bias: ClassVar[bool] = False  # q/k/v projections always biased (Qwen2), whatever attention_bias says
    qk_norm: ClassVar[bool] = False  # RMSNorm over each head of q and k (Qwen3)

    vocab_size: int = 32000
    hidden_size: int = 4096
    intermediate_size: int = 11008
    num_hidden_layers: int = 32
    num_attention_heads: int = 32
    num_key_value_heads: int | None = None
    head_dim: int | None = None
    hidden_act: str = "silu"
    max_position_embeddings: int = 2048
    rms_norm_eps: float = 1e-6
    rope_parameters: dict[str, Any] | None = None
    attention_bias: bool = False
    attention_dropout: float = 0.0
    mlp_bias: bool = False
    pretraining_tp: int | None = 1
    sliding_window: int | None = None
    use_sliding_window: bool = False
    max_window_layers: int = 28
    layer_types: list[str] | None = None
    bos_token_id: int | None = 1
    eos_token_id: int | list[int] | None = 2
    tie_word_embeddings: bool = False

    @classmethod
    def _translate_legacy(cls, data: dict[str, Any]) -> dict[str, Any]:
        data = dict(data)
        rope_scaling = data.pop("rope_scaling", None)
        rope_theta = data.pop("rope_theta", None)
        if rope_scaling is not None or rope_theta is not None:
            params = dict(rope_scaling or data.get("rope_parameters") or {})
            if rope_theta is not None:
                params.setdefault("rope_theta", rope_theta)
            data["rope_parameters"] = params
        return data

    def __post_init__(self) -> None:
        if self.num_key_value_heads is None:
            self.num_key_value_heads = self.num_attention_heads
        if self.head_dim is None:
            self.head_dim = self.hidden_size // max(self.num_attention_heads, 1)
        self.rope_parameters = standardize_rope_parameters(
            self.rope_parameters, max_position_embeddings=self.max_position_embeddings
        )
        self._set_layer_types()
        super().__post_init__()

    def _set_layer_types(self) -> None:
        pass

    def validate(self) -> None:
        self.check_positive(
            "hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size", "intermediate_size"
        )
        if self.hidden_size % self.num_attention_heads:
            raise XfConfigError(
                f"hidden_size={self.hidden_size} is not divisible by num_attention_heads="
                f"{self.num_attention_heads}; change one of them.",
                key="hidden_size",
            )
        if self.num_key_value_heads <= 0 or self.num_attention_heads % self.num_key_value_heads:
            raise XfConfigError(
                f"num_key_value_heads={self.num_key_value_heads} must divide num_attention_heads="
                f"{self.num_attention_heads} (each kv head serves a group of query heads).",
                key="num_key_value_heads",
            )
        if self.layer_types is not None and len(self.layer_types) != self.num_hidden_layers:
            raise XfConfigError(
                f"layer_types has {len(self.layer_types)} entries but num_hidden_layers={self.num_hidden_layers}.",
                key="layer_types",
            )
        get_activation(self.hidden_act)

    @property
    def rope_head_dim(self) -> int:
        return self.head_dim or self.hidden_size // self.num_attention_heads

    def layer_sliding_window(self, layer_idx: int) -> int | None:
        """The attention window of layer ``layer_idx`` (None = full attention)."""
        if self.layer_types is not None:
            return self.sliding_window if self.layer_types[layer_idx] == "sliding_attention" else None
        return self.sliding_window

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        for name in self.omitted_fields:
            if name not in self.extra:
                out.pop(name, None)
        return out


@dataclass(kw_only=True)
class MistralConfig(LlamaConfig):
    model_type: ClassVar[str] = "mistral"
    omitted_fields: ClassVar[frozenset[str]] = frozenset(
        {
            "use_sliding_window",
            "max_window_layers",
            "layer_types",
            "attention_bias",
            "mlp_bias",
            "pretraining_tp",
        }
    )

    intermediate_size: int = 14336
    num_key_value_heads: int | None = 8
    max_position_embeddings: int = 4096 * 32
    sliding_window: int | None = 4096


@dataclass(kw_only=True)
class Qwen2Config(LlamaConfig):
    model_type: ClassVar[str] = "qwen2"
    omitted_fields: ClassVar[frozenset[str]] = frozenset(
        {"head_dim", "attention_bias", "mlp_bias", "pretraining_tp"}
    )
    qkv_bias: ClassVar[bool] = True

    vocab_size: int = 151936
    intermediate_size: int = 22016
    num_key_value_heads: int | None = 32
    max_position_embeddings: int = 32768
    sliding_window: int | None = 4096
    bos_token_id: int | None = None
    eos_token_id: int | list[int] | None = None

    def _set_layer_types(self) -> None:
        if not self.use_sliding_window:
            self.sliding_window = None
        if self.layer_types is None:
            self.layer_types: list[str] | None = [
                "sliding_attention"
                if self.sliding_window is not None and i >= self.max_window_layers
                else "full_attention"
                for i in range(self.num_hidden_layers)
            ]


@dataclass(kw_only=True)
class Qwen3Config(Qwen2Config):
    model_type: ClassVar[str] = "qwen3"
    omitted_fields: ClassVar[frozenset[str]] = frozenset({"mlp_bias", "pretraining_tp"})
    qkv_bias: ClassVar[bool] = False
    qk_norm: ClassVar[bool] = True

    head_dim: int | None = 128


# ---- blocks -----------------------------------------------------------------------------------------------
class LlamaRMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight: nn.Parameter = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        x = x.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x.to(dtype)


class LlamaAttention(nn.Module):
    _fused_linears: ClassVar[tuple[tuple[str, ...], ...]] = (QKV,)

    def __init__(self, config: LlamaConfig, layer_idx: int) -> None:
        super().__init__()
        self.layer_idx = layer_idx
        self.n_head: int = config.num_attention_heads
        self.n_kv: int | None = config.num_key_value_heads
        self.head_dim: int = config.rope_head_dim
        self.scale: Any = self.head_dim**-0.5
        self.dropout: float = config.attention_dropout
        self.sliding_window: int | None = config.layer_sliding_window(layer_idx)
        self.attention: AttentionFn = get_attention(config.attn_implementation)
        qkv_bias = config.attention_bias or config.qkv_bias
        H, hs = config.hidden_size, self.head_dim
        self.q_proj: nn.Linear = nn.Linear(H, self.n_head * hs, bias=qkv_bias)
        self.k_proj: nn.Linear = nn.Linear(H, self.n_kv * hs, bias=qkv_bias)
        self.v_proj: nn.Linear = nn.Linear(H, self.n_kv * hs, bias=qkv_bias)
        self.o_proj: nn.Linear = nn.Linear(self.n_head * hs, H, bias=config.attention_bias)
        if config.qk_norm:
            self.q_norm: LlamaRMSNorm = LlamaRMSNorm(hs, eps=config.rms_norm_eps)
            self.k_norm: LlamaRMSNorm = LlamaRMSNorm(hs, eps=config.rms_norm_eps)

    def forward(
        self,
        x: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor],
        mask: torch.Tensor | None,
        cache: Cache | None,
        cache_position: torch.Tensor,
    ) -> torch.Tensor:
        B, T, _ = x.shape
        q, k, v = fused_linear(self, QKV, x) or (self.q_proj(x), self.k_proj(x), self.v_proj(x))
        q = q.view(B, T, self.n_head, self.head_dim)
        k = k.view(B, T, self.n_kv, self.head_dim)
        v = v.view(B, T, self.n_kv, self.head_dim).transpose(1, 2)  # (B, nkv, T, hs)
        if hasattr(self, "q_norm"):
            q, k = self.q_norm(q), self.k_norm(k)
        q, k = apply_rotary_pos_emb(
            q.transpose(1, 2), k.transpose(1, 2), *rope
        )  # (B, nh, T, hs), (B, nkv, T, hs)
        if cache is not None:
            k, v = cache.update(k, v, self.layer_idx, cache_position)
        y = self.attention(
            q, k, v, mask, scale=self.scale, dropout=self.dropout, is_causal=True, training=self.training
        )  # (B, T, nh, hs)
        return self.o_proj(y.reshape(B, T, -1))


class LlamaMLP(nn.Module):
    _fused_linears: ClassVar[tuple[tuple[str, ...], ...]] = (GATE_UP,)

    def __init__(self, config: LlamaConfig) -> None:
        super().__init__()
        H, inner, bias = config.hidden_size, config.intermediate_size, config.mlp_bias
        self.gate_proj: nn.Linear = nn.Linear(H, inner, bias=bias)
        self.up_proj: nn.Linear = nn.Linear(H, inner, bias=bias)
        self.down_proj: nn.Linear = nn.Linear(inner, H, bias=bias)
        self.act: Activation = get_activation(config.hidden_act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = fused_linear(self, GATE_UP, x) or (self.gate_proj(x), self.up_proj(x))
        return self.down_proj(self.act(gate) * up)


class LlamaDecoderLayer(nn.Module):
    def __init__(self, config: LlamaConfig, layer_idx: int) -> None:
        super().__init__()
        self.input_layernorm: LlamaRMSNorm = LlamaRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.self_attn: LlamaAttention = LlamaAttention(config, layer_idx)
        self.post_attention_layernorm: LlamaRMSNorm = LlamaRMSNorm(
            config.hidden_size, eps=config.rms_norm_eps
        )
        self.mlp: LlamaMLP = LlamaMLP(config)

    def forward(
        self,
        x: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor],
        mask: torch.Tensor | None,
        cache: Cache | None,
        cache_position: torch.Tensor,
    ) -> torch.Tensor:
        x = x + self.self_attn(self.input_layernorm(x), rope, mask, cache, cache_position)
        return x + self.mlp(self.post_attention_layernorm(x))


# ---- models -----------------------------------------------------------------------------------------------
class LlamaPreTrainedModel(PreTrainedModel):
    config_class: ClassVar[type[PretrainedConfig]] = LlamaConfig
    base_model_prefix = "model"
    _no_split_modules: ClassVar[list[str]] = ["LlamaDecoderLayer"]

    def _init_weights(self, module: nn.Module) -> None:
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            init.normal_(module.weight, std=std)
            init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            init.normal_(module.weight, std=std)
            if module.padding_idx is not None and module.weight.device.type != "meta":
                init.zeros_(module.weight[module.padding_idx])
        elif isinstance(module, LlamaRMSNorm):
            init.ones_(module.weight)


class LlamaModel(LlamaPreTrainedModel):
    head_kind: ClassVar[HeadKind] = HeadKind.BASE

    def __init__(self, config: LlamaConfig) -> None:
        super().__init__(config)
        self.padding_idx: int | None = config.pad_token_id
        self.embed_tokens = nn.Embedding(
            config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id
        )
        self.layers: nn.ModuleList = nn.ModuleList(
            LlamaDecoderLayer(config, i) for i in range(config.num_hidden_layers)
        )
        self.norm: LlamaRMSNorm = LlamaRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.rotary_emb: RotaryEmbedding = RotaryEmbedding(
            config.rope_parameters,
            head_dim=config.rope_head_dim,
            max_position_embeddings=config.max_position_embeddings,
        )
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embed_tokens

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embed_tokens: nn.Embedding = value

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        past_key_values: Cache | None = None,
        use_cache: bool | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        cache_position: torch.LongTensor | None = None,
        output_hidden_states: bool = False,
        **kwargs: Any,
    ) -> BaseModelOutput:
        state = decoder_prologue(
            self,
            input_ids,
            inputs_embeds,
            embed=self.embed_tokens,
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=past_key_values,
            use_cache=use_cache,
            cache_position=cache_position,
            sliding_windows=[layer.self_attn.sliding_window for layer in self.layers],
        )
        x = state.inputs_embeds  # (B, T, H)
        rope = self.rotary_emb(x, state.position_ids)
        hidden_states = [x] if output_hidden_states else None
        for layer in self.layers:
            mask = state.masks[layer.self_attn.sliding_window]
            x = self._run_layer(layer, x, rope, mask, state.cache, state.cache_position)
            if hidden_states is not None:
                hidden_states.append(x)
        x = self.norm(x)
        if hidden_states is not None:
            hidden_states[-1] = x
        return BaseModelOutput(
            last_hidden_state=x,
            past_key_values=state.returned_cache,
            hidden_states=tuple(hidden_states) if hidden_states is not None else None,
        )


class LlamaForCausalLM(LlamaPreTrainedModel, GenerationMixin):
    head_kind: ClassVar[HeadKind] = HeadKind.CAUSAL_LM
    _tied_weights_keys: ClassVar[dict[str, str]] = {"lm_head.weight": "model.embed_tokens.weight"}

    def __init__(self, config: LlamaConfig) -> None:
        super().__init__(config)
        self.model: LlamaModel = LlamaModel(config)
        self.lm_head: nn.Linear = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        past_key_values: Cache | None = None,
        use_cache: bool | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        cache_position: torch.LongTensor | None = None,
        output_hidden_states: bool = False,
        logits_to_keep: int | torch.Tensor = 0,
        num_items_in_batch: int | torch.Tensor | None = None,
        **kwargs: Any,
    ) -> CausalLMOutput:
        out = self.model(
            input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=past_key_values,
            use_cache=use_cache,
            inputs_embeds=inputs_embeds,
            cache_position=cache_position,
            output_hidden_states=output_hidden_states,
        )
        logits = self.lm_head(keep_logits(out.last_hidden_state, logits_to_keep))  # (B, T, V)
        loss = None
        if labels is not None:
            loss = causal_lm_loss(logits, labels, num_items_in_batch=num_items_in_batch)
        return CausalLMOutput(
            loss=loss, logits=logits, past_key_values=out.past_key_values, hidden_states=out.hidden_states
        )


class LlamaForSequenceClassification(LlamaPreTrainedModel):
    """Classifies a sequence from the hidden state of its last non-padding token."""

    head_kind: ClassVar[HeadKind] = HeadKind.SEQUENCE_CLASSIFICATION

    def __init__(self, config: LlamaConfig) -> None:
        super().__init__(config)
        self.num_labels: int = config.num_labels
        self.model: LlamaModel = LlamaModel(config)
        self.score: nn.Linear = nn.Linear(config.hidden_size, config.num_labels, bias=False)
        self.post_init()

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        past_key_values: Cache | None = None,
        use_cache: bool | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        cache_position: torch.LongTensor | None = None,
        output_hidden_states: bool = False,
        **kwargs: Any,
    ) -> SequenceClassifierOutput:
        out = self.model(
            input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=past_key_values,
            use_cache=use_cache,
            inputs_embeds=inputs_embeds,
            cache_position=cache_position,
            output_hidden_states=output_hidden_states,
        )
        logits = self.score(out.last_hidden_state)  # (B, T, num_labels)
        B = logits.shape[0]
        pad = self.config.pad_token_id
        if pad is None and B != 1:
            raise ValueError(
                "sequence classification of a batch needs config.pad_token_id to find each sequence's last token; "
                "set it (e.g. to the tokenizer's pad token id)."
            )
        if pad is None or input_ids is None:
            last = torch.full((B,), -1, device=logits.device)
        else:
            not_pad = (input_ids != pad).to(logits.device, torch.int32)
            idx = torch.arange(input_ids.shape[-1], device=logits.device, dtype=torch.int32)
            last = (idx * not_pad).argmax(-1)  # rightmost non-pad token
        pooled = logits[torch.arange(B, device=logits.device), last]  # (B, num_labels)
        loss = None
        if labels is not None:
            loss = sequence_classification_loss(
                pooled, labels, num_labels=self.num_labels, problem_type=self.config.problem_type
            )
        return SequenceClassifierOutput(
            loss=loss, logits=pooled, past_key_values=out.past_key_values, hidden_states=out.hidden_states
        )


# ---- variants: the same modules, each with its own config class (its model_type) ------------------------
class MistralModel(LlamaModel):
    config_class: ClassVar[type[PretrainedConfig]] = MistralConfig


class MistralForCausalLM(LlamaForCausalLM):
    config_class: ClassVar[type[PretrainedConfig]] = MistralConfig


class MistralForSequenceClassification(LlamaForSequenceClassification):
    config_class: ClassVar[type[PretrainedConfig]] = MistralConfig


class Qwen2Model(LlamaModel):
    config_class: ClassVar[type[PretrainedConfig]] = Qwen2Config


class Qwen2ForCausalLM(LlamaForCausalLM):
    config_class: ClassVar[type[PretrainedConfig]] = Qwen2Config


class Qwen2ForSequenceClassification(LlamaForSequenceClassification):
    config_class: ClassVar[type[PretrainedConfig]] = Qwen2Config


class Qwen3Model(LlamaModel):
    config_class: ClassVar[type[PretrainedConfig]] = Qwen3Config


class Qwen3ForCausalLM(LlamaForCausalLM):
    config_class: ClassVar[type[PretrainedConfig]] = Qwen3Config


class Qwen3ForSequenceClassification(LlamaForSequenceClassification):
    config_class: ClassVar[type[PretrainedConfig]] = Qwen3Config
