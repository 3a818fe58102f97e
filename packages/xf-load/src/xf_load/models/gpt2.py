"""GPT-2 (Radford et al., 2019): a decoder-only transformer with learned absolute positions.

What is notable, read top to bottom:

* Token embeddings ``wte`` plus learned position embeddings ``wpe`` (no RoPE); positions follow
  ``cache_position`` so decoding with a cache continues where the prompt stopped.
* Pre-LayerNorm blocks (``ln_1`` -> attention -> residual, ``ln_2`` -> MLP -> residual) and a final ``ln_f``.
* :class:`Conv1D` projections keep the Hub layout: weights are stored ``(in_features, out_features)``, the
  transpose of ``nn.Linear``, so checkpoints load with no key or tensor transform.
* One fused ``c_attn`` projection produces q, k and v; attention is multi-head (no GQA) and causal, scaled by
  ``1/sqrt(head_dim)`` (``scale_attn_weights``) and optionally by ``1/(layer_idx + 1)``
  (``scale_attn_by_inverse_layer_idx``); ``reorder_and_upcast_attn`` computes the scores in float32.
* ``lm_head`` is tied to ``wte`` (``tie_word_embeddings``, default True).
* Old checkpoints carry the causal-mask buffers ``attn.bias``/``attn.masked_bias``; they are not weights and are
  dropped on load.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from xf_core.errors import XfConfigError
from xf_load import initialization as init
from xf_load._decoder import check_token_ids, decoder_prologue, keep_logits
from xf_load.activations import Activation, get_activation
from xf_load.attention import AttentionFn, eager_attention, get_attention
from xf_load.cache import Cache
from xf_load.configuration_utils import PretrainedConfig
from xf_load.generation import GenerationMixin
from xf_load.heads import HeadKind
from xf_load.layers import Conv1D
from xf_load.losses import causal_lm_loss
from xf_load.modeling_utils import PreTrainedModel
from xf_load.outputs import BaseModelOutput, CausalLMOutput

__all__ = ["Conv1D", "GPT2Config", "GPT2LMHeadModel", "GPT2Model", "GPT2PreTrainedModel"]

# Tensor-parallel plan for xf-parallel (applied from outside). The MLP only: attention's fused c_attn splits
# its output into q, k, v by the full width, so it stays replicated.
TP_PLAN = {"h.*.mlp.c_fc": "colwise", "h.*.mlp.c_proj": "rowwise"}

# ---------------------------------------------------------------------------------------------- config


@dataclass(kw_only=True)
class GPT2Config(PretrainedConfig):
    """GPT-2's ``config.json``, field names as on the Hub; ``hidden_size`` etc. are aliases of ``n_embd`` etc."""

    model_type: ClassVar[str] = "gpt2"
    aliases: ClassVar[dict[str, str]] = {
        "hidden_size": "n_embd",
        "max_position_embeddings": "n_positions",
        "num_attention_heads": "n_head",
        "num_hidden_layers": "n_layer",
    }

    vocab_size: int = 50257
    n_positions: int = 1024
    n_embd: int = 768
    n_layer: int = 12
    n_head: int = 12
    n_inner: int | None = None  # MLP width; None means 4 * n_embd
    activation_function: str = "gelu_new"
    resid_pdrop: float = 0.1
    embd_pdrop: float = 0.1
    attn_pdrop: float = 0.1
    layer_norm_epsilon: float = 1e-5
    scale_attn_weights: bool = True
    scale_attn_by_inverse_layer_idx: bool = False
    reorder_and_upcast_attn: bool = False
    add_cross_attention: bool = False
    bos_token_id: int | None = 50256
    eos_token_id: int | list[int] | None = 50256
    # Read by transformers' GPT2DoubleHeadsModel only; kept so config.json round-trips.
    summary_type: str = "cls_index"
    summary_use_proj: bool = True
    summary_activation: str | None = None
    summary_proj_to_labels: bool = True
    summary_first_dropout: float = 0.1

    @property
    def num_key_value_heads(self) -> int:
        return self.n_head

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    def validate(self) -> None:
        self.check_positive("vocab_size", "n_positions", "n_embd", "n_layer", "n_head")
        if self.n_embd % self.n_head:
            raise XfConfigError(
                f"n_embd={self.n_embd} (hidden_size) is not divisible by n_head={self.n_head} "
                "(num_attention_heads); pick a head count that divides the hidden size.",
                key="n_embd",
            )
        if self.add_cross_attention:
            raise XfConfigError(
                "add_cross_attention=True (GPT-2 as a seq2seq decoder) is not supported by xf; set it to false.",
                key="add_cross_attention",
            )
        get_activation(self.activation_function, key="activation_function")


# ---------------------------------------------------------------------------------------------- blocks


class GPT2Attention(nn.Module):
    def __init__(self, config: GPT2Config, layer_idx: int) -> None:
        super().__init__()
        self.layer_idx = layer_idx
        self.n_head: int = config.n_head
        self.head_dim: int = config.n_embd // config.n_head
        self.scaling = self.head_dim**-0.5 if config.scale_attn_weights else 1.0
        if config.scale_attn_by_inverse_layer_idx:
            self.scaling /= layer_idx + 1
        self.upcast: bool = config.reorder_and_upcast_attn
        self.attend: AttentionFn = get_attention(config.attn_implementation)
        self.c_attn: Conv1D = Conv1D(config.n_embd, 3 * config.n_embd)
        self.c_proj: Conv1D = Conv1D(config.n_embd, config.n_embd)
        self.attn_dropout: float = config.attn_pdrop
        self.resid_dropout: nn.Dropout = nn.Dropout(config.resid_pdrop)

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None,
        cache: Cache | None,
        cache_position: torch.Tensor,
    ) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q = q.view(B, T, self.n_head, self.head_dim).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.n_head, self.head_dim).transpose(1, 2)  # (B, nh, T, hs)
        v = v.view(B, T, self.n_head, self.head_dim).transpose(1, 2)  # (B, nh, T, hs)
        if cache is not None:
            k, v = cache.update(k, v, self.layer_idx, cache_position)  # (B, nh, S, hs)
        opts = {
            "scale": self.scaling,
            "dropout": self.attn_dropout,
            "training": self.training,
            "is_causal": True,
        }
        if self.upcast:  # reorder_and_upcast_attn: scores, softmax and weighted sum in float32
            y = eager_attention(q.float(), k.float(), v.float(), mask, **opts).to(v.dtype)
        else:
            y = self.attend(q, k, v, mask, **opts)  # (B, T, nh, hs)
        y = y.reshape(B, T, C)  # (B, T, nh, hs) -> (B, T, nh * hs)
        return self.resid_dropout(self.c_proj(y))


class GPT2MLP(nn.Module):
    def __init__(self, config: GPT2Config) -> None:
        super().__init__()
        inner = config.n_inner if config.n_inner is not None else 4 * config.n_embd
        self.c_fc: Conv1D = Conv1D(config.n_embd, inner)
        self.c_proj: Conv1D = Conv1D(inner, config.n_embd)
        self.act: Activation = get_activation(config.activation_function)
        self.dropout: nn.Dropout = nn.Dropout(config.resid_pdrop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(self.act(self.c_fc(x))))


class GPT2Block(nn.Module):
    def __init__(self, config: GPT2Config, layer_idx: int) -> None:
        super().__init__()
        self.ln_1: nn.LayerNorm = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.attn: GPT2Attention = GPT2Attention(config, layer_idx)
        self.ln_2: nn.LayerNorm = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.mlp: GPT2MLP = GPT2MLP(config)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None, cache: Cache | None, cache_position: torch.Tensor
    ) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), mask, cache, cache_position)
        return x + self.mlp(self.ln_2(x))


# ---------------------------------------------------------------------------------------------- models


class GPT2PreTrainedModel(PreTrainedModel):
    config_class: ClassVar[type[PretrainedConfig]] = GPT2Config
    base_model_prefix = "transformer"
    _no_split_modules: ClassVar[list[str]] = ["GPT2Block"]
    learned_positions_key: ClassVar[str | None] = "n_positions"  # generate's length limit
    # Causal-mask buffers that old checkpoints store; not weights.
    _keys_to_ignore_on_load_unexpected: ClassVar[list[str]] = [r"\.attn\.bias$", r"\.attn\.masked_bias$"]

    def _init_weights(self, module: nn.Module) -> None:
        """The default table for Linear, Embedding and LayerNorm; a block's Conv1D layers get N(0, std), except
        the projections back into the residual stream (``c_proj``), which get std / sqrt(2 * n_layer) (GPT-2
        paper). Blocks set their own Conv1D layers because ``init_weights`` visits a parent before its children.
        """
        super()._init_weights(module)
        std = self.config.initializer_range
        if isinstance(module, (GPT2Attention, GPT2MLP)):
            first = module.c_attn if isinstance(module, GPT2Attention) else module.c_fc
            init.normal_(first.weight, std=std)
            init.normal_(module.c_proj.weight, std=std / math.sqrt(2 * self.config.n_layer))
            init.zeros_(first.bias)
            init.zeros_(module.c_proj.bias)


class GPT2Model(GPT2PreTrainedModel):
    head_kind: ClassVar[HeadKind] = HeadKind.BASE

    def __init__(self, config: GPT2Config) -> None:
        super().__init__(config)
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe: nn.Embedding = nn.Embedding(config.n_positions, config.n_embd)
        self.drop: nn.Dropout = nn.Dropout(config.embd_pdrop)
        self.h: nn.ModuleList = nn.ModuleList(GPT2Block(config, i) for i in range(config.n_layer))
        self.ln_f: nn.LayerNorm = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.wte

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.wte: nn.Embedding = value

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        past_key_values: Cache | None = None,
        use_cache: bool | None = None,
        inputs_embeds: torch.Tensor | None = None,
        cache_position: torch.Tensor | None = None,
        output_hidden_states: bool = False,
        token_type_ids: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> BaseModelOutput:
        state = decoder_prologue(
            self,
            input_ids,
            inputs_embeds,
            embed=self.wte,
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=past_key_values,
            use_cache=use_cache,
            cache_position=cache_position,
            positions_key=self.learned_positions_key,
        )
        x = state.inputs_embeds + self.wpe(state.position_ids)  # (B, T, C)
        if token_type_ids is not None:
            check_token_ids(
                token_type_ids, self.wte.num_embeddings, owner=type(self).__name__, name="token_type_ids"
            )
            x = x + self.wte(token_type_ids)
        x = self.drop(x)

        hidden_states = [x] if output_hidden_states else None
        for block in self.h:
            x = self._run_layer(block, x, state.masks[None], state.cache, state.cache_position)
            if hidden_states is not None:
                hidden_states.append(x)
        x = self.ln_f(x)
        if hidden_states is not None:
            hidden_states[-1] = x  # the last entry is the final output, after ln_f
        return BaseModelOutput(
            last_hidden_state=x,
            past_key_values=state.returned_cache,
            hidden_states=tuple(hidden_states) if hidden_states is not None else None,
        )


class GPT2LMHeadModel(GPT2PreTrainedModel, GenerationMixin):
    head_kind: ClassVar[HeadKind] = HeadKind.CAUSAL_LM
    _tied_weights_keys: ClassVar[dict[str, str]] = {"lm_head.weight": "transformer.wte.weight"}

    def __init__(self, config: GPT2Config) -> None:
        super().__init__(config)
        self.transformer: GPT2Model = GPT2Model(config)
        self.lm_head: nn.Linear = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.post_init()

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        past_key_values: Cache | None = None,
        use_cache: bool | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        cache_position: torch.Tensor | None = None,
        output_hidden_states: bool = False,
        token_type_ids: torch.Tensor | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        num_items_in_batch: int | torch.Tensor | None = None,
        **kwargs: Any,
    ) -> CausalLMOutput:
        out = self.transformer(
            input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=past_key_values,
            use_cache=use_cache,
            inputs_embeds=inputs_embeds,
            cache_position=cache_position,
            output_hidden_states=output_hidden_states,
            token_type_ids=token_type_ids,
        )
        logits = self.lm_head(keep_logits(out.last_hidden_state, logits_to_keep))  # (B, T, V)
        loss = None
        if labels is not None:
            loss = causal_lm_loss(logits, labels, num_items_in_batch=num_items_in_batch)
        return CausalLMOutput(
            loss=loss, logits=logits, past_key_values=out.past_key_values, hidden_states=out.hidden_states
        )
