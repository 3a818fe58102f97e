"""BART (Lewis et al., 2019): a denoising encoder-decoder with learned absolute positions.

What is notable, read top to bottom:

* One token embedding ``shared`` (``padding_idx`` = the pad id) serves encoder, decoder and the LM head, scaled
  by ``sqrt(d_model)`` when ``scale_embedding``.
* Learned positions with fairseq's offset: position ``p`` reads row ``p + 2`` of a table of
  ``max_position_embeddings + 2`` rows; the decoder's positions continue from the cache. A ``layernorm_embedding``
  follows the sum.
* Post-LayerNorm layers (``LayerNorm(x + dropout(sublayer(x)))``): self-attention, in the decoder
  cross-attention over the encoder output, then ``fc1`` -> activation -> ``fc2``. Attention has biases and is
  scaled by ``1/sqrt(head_dim)``.
* The LM head is tied to ``shared`` and adds the ``final_logits_bias`` buffer (stored in checkpoints).
* Without ``decoder_input_ids``, the decoder input is built by shifting right: the labels when given, else
  (denoising) the input ids themselves; the sequence starts with ``decoder_start_token_id`` (</s>, 2).
* LayerDrop (``encoder_layerdrop``/``decoder_layerdrop``) skips whole layers at random in training.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from xf_core.errors import XfConfigError, XfValueError
from xf_load import initialization as init
from xf_load._decoder import check_input_shape, check_token_ids, decoder_prologue, keep_logits
from xf_load.activations import Activation, get_activation
from xf_load.attention import AttentionFn, get_attention
from xf_load.cache import Cache, DynamicCache, EncoderDecoderCache
from xf_load.configuration_utils import PretrainedConfig
from xf_load.generation import GenerationMixin
from xf_load.heads import HeadKind
from xf_load.losses import masked_lm_loss
from xf_load.masks import padding_mask
from xf_load.modeling_utils import PreTrainedModel
from xf_load.models._seq2seq import cross_attend, encode_decode, shift_tokens_right
from xf_load.outputs import BaseModelOutput, Seq2SeqLMOutput, Seq2SeqModelOutput

__all__ = ["BartConfig", "BartForConditionalGeneration", "BartModel", "BartPreTrainedModel"]

_POSITION_OFFSET = 2  # fairseq reserved the first two rows of the position table

# ---------------------------------------------------------------------------------------------- config


@dataclass(kw_only=True)
class BartConfig(PretrainedConfig):
    """BART's ``config.json``, field names as on the Hub."""

    model_type: ClassVar[str] = "bart"
    aliases: ClassVar[dict[str, str]] = {
        "hidden_size": "d_model",
        "num_attention_heads": "encoder_attention_heads",
        "num_hidden_layers": "encoder_layers",
    }

    vocab_size: int = 50265
    max_position_embeddings: int = 1024
    d_model: int = 1024
    encoder_layers: int = 12
    encoder_ffn_dim: int = 4096
    encoder_attention_heads: int = 16
    decoder_layers: int = 12
    decoder_ffn_dim: int = 4096
    decoder_attention_heads: int = 16
    encoder_layerdrop: float = 0.0
    decoder_layerdrop: float = 0.0
    activation_function: str = "gelu"
    dropout: float = 0.1
    attention_dropout: float = 0.0
    activation_dropout: float = 0.0
    init_std: float = 0.02
    scale_embedding: bool = False
    is_encoder_decoder: bool = True
    id2label: dict[int, str] = field(default_factory=lambda: {i: f"LABEL_{i}" for i in range(3)})
    pad_token_id: int | None = 1
    bos_token_id: int | None = 0
    eos_token_id: int | list[int] | None = 2
    decoder_start_token_id: int | None = 2
    forced_eos_token_id: int | None = 2

    def validate(self) -> None:
        self.check_positive("vocab_size", "max_position_embeddings", "d_model", "encoder_layers")
        self.check_positive(
            "encoder_ffn_dim", "encoder_attention_heads", "decoder_ffn_dim", "decoder_attention_heads"
        )
        for heads in ("encoder_attention_heads", "decoder_attention_heads"):
            if self.d_model % getattr(self, heads):
                raise XfConfigError(
                    f"d_model={self.d_model} is not divisible by {heads}={getattr(self, heads)}; pick a head count "
                    "that divides d_model.",
                    key=heads,
                )
        get_activation(self.activation_function, key="activation_function")


# ---------------------------------------------------------------------------------------------- blocks


class BartAttention(nn.Module):
    """Multi-head attention with biases; self-attention (cached in the decoder) or cross-attention over the
    encoder output (keys and values computed once per generation)."""

    def __init__(self, config: BartConfig, *, num_heads: int, layer_idx: int, is_causal: bool) -> None:
        super().__init__()
        C = config.d_model
        self.num_heads = num_heads
        self.head_dim: int = C // num_heads
        self.layer_idx = layer_idx
        self.is_causal = is_causal
        self.dropout: float = config.attention_dropout
        self.k_proj: nn.Linear = nn.Linear(C, C)
        self.v_proj: nn.Linear = nn.Linear(C, C)
        self.q_proj: nn.Linear = nn.Linear(C, C)
        self.out_proj: nn.Linear = nn.Linear(C, C)
        self.attend: AttentionFn = get_attention(config.attn_implementation)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        B, S, _ = x.shape
        return x.view(B, S, self.num_heads, self.head_dim).transpose(1, 2)  # (B, nh, S, hs)

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None,
        cache: Cache | None = None,
        cache_position: torch.Tensor | None = None,
        encoder_states: torch.Tensor | None = None,
    ) -> torch.Tensor:
        B, T, C = x.shape
        q = self._heads(self.q_proj(x))  # (B, nh, T, hs)
        if encoder_states is None:
            k, v = self._heads(self.k_proj(x)), self._heads(self.v_proj(x))
            if cache is not None:
                k, v = cache.update(k, v, self.layer_idx, cache_position)  # (B, nh, S, hs)
        elif isinstance(cache, EncoderDecoderCache):
            k, v = cache.cross_attention(
                self.layer_idx,
                lambda: (self._heads(self.k_proj(encoder_states)), self._heads(self.v_proj(encoder_states))),
            )
        else:
            k, v = self._heads(self.k_proj(encoder_states)), self._heads(self.v_proj(encoder_states))
        y = cross_attend(
            self.attend,
            q,
            k,
            v,
            mask,
            scale=self.head_dim**-0.5,
            dropout=self.dropout,
            training=self.training,
            is_causal=self.is_causal,
        )
        return self.out_proj(y.reshape(B, T, C))  # (B, T, nh, hs) -> (B, T, C)


class BartEncoderLayer(nn.Module):
    def __init__(self, config: BartConfig, layer_idx: int) -> None:
        super().__init__()
        C = config.d_model
        self.self_attn: BartAttention = BartAttention(
            config, num_heads=config.encoder_attention_heads, layer_idx=layer_idx, is_causal=False
        )
        self.self_attn_layer_norm: nn.LayerNorm = nn.LayerNorm(C)
        self.fc1: nn.Linear = nn.Linear(C, config.encoder_ffn_dim)
        self.fc2: nn.Linear = nn.Linear(config.encoder_ffn_dim, C)
        self.final_layer_norm: nn.LayerNorm = nn.LayerNorm(C)
        self.act: Activation = get_activation(config.activation_function)
        self.dropout: float = config.dropout
        self.activation_dropout: float = config.activation_dropout

    def _mlp(self, x: torch.Tensor) -> torch.Tensor:
        h = F.dropout(self.act(self.fc1(x)), p=self.activation_dropout, training=self.training)
        return F.dropout(self.fc2(h), p=self.dropout, training=self.training)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        x = self.self_attn_layer_norm(
            x + F.dropout(self.self_attn(x, mask), p=self.dropout, training=self.training)
        )
        x = self.final_layer_norm(x + self._mlp(x))
        if x.dtype == torch.float16 and not torch.isfinite(x).all():
            limit = torch.finfo(x.dtype).max - 1000
            x = x.clamp(min=-limit, max=limit)
        return x


class BartDecoderLayer(BartEncoderLayer):
    def __init__(self, config: BartConfig, layer_idx: int) -> None:
        nn.Module.__init__(self)
        C = config.d_model
        heads = config.decoder_attention_heads
        self.self_attn: BartAttention = BartAttention(
            config, num_heads=heads, layer_idx=layer_idx, is_causal=True
        )
        self.self_attn_layer_norm: nn.LayerNorm = nn.LayerNorm(C)
        self.encoder_attn: BartAttention = BartAttention(
            config, num_heads=heads, layer_idx=layer_idx, is_causal=False
        )
        self.encoder_attn_layer_norm: nn.LayerNorm = nn.LayerNorm(C)
        self.fc1: nn.Linear = nn.Linear(C, config.decoder_ffn_dim)
        self.fc2: nn.Linear = nn.Linear(config.decoder_ffn_dim, C)
        self.final_layer_norm: nn.LayerNorm = nn.LayerNorm(C)
        self.act: Activation = get_activation(config.activation_function)
        self.dropout: float = config.dropout
        self.activation_dropout: float = config.activation_dropout

    def forward(  # type: ignore[override]
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None,
        cache: Cache | None,
        cache_position: torch.Tensor,
        encoder_states: torch.Tensor,
        encoder_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        drop = self.dropout if self.training else 0.0
        x = self.self_attn_layer_norm(x + F.dropout(self.self_attn(x, mask, cache, cache_position), p=drop))
        y = self.encoder_attn(x, encoder_mask, cache, encoder_states=encoder_states)
        x = self.encoder_attn_layer_norm(x + F.dropout(y, p=drop))
        return self.final_layer_norm(x + self._mlp(x))


# ---------------------------------------------------------------------------------------------- models


class BartPreTrainedModel(PreTrainedModel):
    config_class: ClassVar[type[PretrainedConfig]] = BartConfig
    base_model_prefix = "model"
    _no_split_modules: ClassVar[list[str]] = ["BartEncoderLayer", "BartDecoderLayer"]
    learned_positions_key: ClassVar[str | None] = "max_position_embeddings"  # generate's length limit
    # The decoder's cross-attention lets consecutive rows share one encoder row (models/_seq2seq.cross_attend):
    # generate then keeps one encoder output per prompt, not one per beam.
    shares_encoder_rows: ClassVar[bool] = True
    # Ties that hold whatever tie_word_embeddings says: the encoder's and decoder's embeddings are ``shared``.
    _always_tied: ClassVar[dict[str, str]] = {}

    def _tie_pairs(self) -> dict[str, str]:
        pairs = dict(self._always_tied)
        if getattr(self.config, "tie_word_embeddings", False):
            pairs.update(self._tied_weights_keys)
        return pairs

    def _init_weights(self, module: nn.Module) -> None:
        """N(0, init_std) for Linear and Embedding (padding row zero), LayerNorm to identity."""
        std = self.config.init_std
        if isinstance(module, nn.Linear):
            init.normal_(module.weight, std=std)
            init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            init.normal_(module.weight, std=std)
            if module.padding_idx is not None and module.weight.device.type != "meta":
                init.zeros_(module.weight[module.padding_idx])
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        elif (
            isinstance(module, BartForConditionalGeneration)
            and module.final_logits_bias.device.type != "meta"
        ):
            module.final_logits_bias.zero_()


class _BartStack(BartPreTrainedModel):
    """What the encoder and decoder share: scaled token embeddings, offset learned positions, a LayerNorm."""

    def __init__(self, config: BartConfig) -> None:
        super().__init__(config)
        self.embed_scale: float = math.sqrt(config.d_model) if config.scale_embedding else 1.0
        self.embed_tokens = nn.Embedding(config.vocab_size, config.d_model, padding_idx=config.pad_token_id)
        self.embed_positions: nn.Embedding = nn.Embedding(
            config.max_position_embeddings + _POSITION_OFFSET, config.d_model
        )
        self.layernorm_embedding: nn.LayerNorm = nn.LayerNorm(config.d_model)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embed_tokens

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embed_tokens: nn.Embedding = value

    def _embed(self, tokens: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        x = tokens + self.embed_positions(positions + _POSITION_OFFSET)  # (B, T, C)
        x = self.layernorm_embedding(x)
        return F.dropout(x, p=self.config.dropout, training=self.training)

    def _dropped(self, layerdrop: float) -> bool:
        return self.training and layerdrop > 0.0 and bool(torch.rand([]) < layerdrop)


class BartEncoder(_BartStack):
    def __init__(self, config: BartConfig) -> None:
        super().__init__(config)
        self.layers: nn.ModuleList = nn.ModuleList(
            BartEncoderLayer(config, i) for i in range(config.encoder_layers)
        )

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        output_hidden_states: bool = False,
        **kwargs: Any,
    ) -> BaseModelOutput:
        if (input_ids is None) == (inputs_embeds is None):
            raise XfValueError("pass exactly one of input_ids or inputs_embeds to the BART encoder.")
        check_input_shape(input_ids, inputs_embeds)
        if input_ids is not None:
            check_token_ids(input_ids, self.embed_tokens.num_embeddings, owner="BART encoder")
            inputs_embeds = self.embed_tokens(input_ids) * self.embed_scale
        assert inputs_embeds is not None
        S = inputs_embeds.shape[1]
        limit = self.config.max_position_embeddings
        if limit < S:
            raise XfValueError(
                f"the input has {S} tokens but BART has max_position_embeddings={limit} learned positions; "
                f"truncate it to {limit} tokens (tokenizer(..., truncation=True))."
            )
        x = self._embed(inputs_embeds, torch.arange(S, device=inputs_embeds.device))
        mask = padding_mask(attention_mask, query_length=S)
        hidden_states = [x] if output_hidden_states else None
        for layer in self.layers:
            if self._dropped(self.config.encoder_layerdrop):
                continue
            x = self._run_layer(layer, x, mask)
            if hidden_states is not None:
                hidden_states.append(x)
        return BaseModelOutput(
            last_hidden_state=x, hidden_states=tuple(hidden_states) if hidden_states is not None else None
        )


class BartDecoder(_BartStack):
    def __init__(self, config: BartConfig) -> None:
        super().__init__(config)
        self.layers: nn.ModuleList = nn.ModuleList(
            BartDecoderLayer(config, i) for i in range(config.decoder_layers)
        )

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        encoder_hidden_states: torch.Tensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        past_key_values: Cache | None = None,
        use_cache: bool | None = None,
        cache_position: torch.Tensor | None = None,
        output_hidden_states: bool = False,
        **kwargs: Any,
    ) -> BaseModelOutput:
        if encoder_hidden_states is None:
            raise XfValueError("the BART decoder needs encoder_hidden_states (the encoder's output).")
        if past_key_values is not None and not isinstance(past_key_values, EncoderDecoderCache):
            past_key_values = EncoderDecoderCache(past_key_values)
        state = decoder_prologue(
            self,
            input_ids,
            inputs_embeds,
            embed=lambda ids: self.embed_tokens(ids) * self.embed_scale,
            attention_mask=attention_mask,
            position_ids=None,
            past_key_values=past_key_values,
            use_cache=use_cache,
            cache_position=cache_position,
            positions_key=self.learned_positions_key,
        )
        cache = state.cache
        if cache is not None and not isinstance(cache, EncoderDecoderCache):  # the prologue made a fresh one
            cache = EncoderDecoderCache(cache, DynamicCache())
        x = self._embed(state.inputs_embeds, state.cache_position[None])
        T = x.shape[1]
        cross_mask = padding_mask(encoder_attention_mask, query_length=T)
        hidden_states = [x] if output_hidden_states else None
        for layer in self.layers:
            if self._dropped(self.config.decoder_layerdrop):
                continue
            x = self._run_layer(
                layer, x, state.masks[None], cache, state.cache_position, encoder_hidden_states, cross_mask
            )
            if hidden_states is not None:
                hidden_states.append(x)
        return BaseModelOutput(
            last_hidden_state=x,
            past_key_values=cache if state.use_cache else None,
            hidden_states=tuple(hidden_states) if hidden_states is not None else None,
        )


class BartModel(BartPreTrainedModel):
    head_kind: ClassVar[HeadKind] = HeadKind.BASE
    base_model_prefix = "model"
    _always_tied: ClassVar[dict[str, str]] = {
        "encoder.embed_tokens.weight": "shared.weight",
        "decoder.embed_tokens.weight": "shared.weight",
    }

    def __init__(self, config: BartConfig) -> None:
        super().__init__(config)
        self.shared = nn.Embedding(config.vocab_size, config.d_model, padding_idx=config.pad_token_id)
        self.encoder: BartEncoder = BartEncoder(config)
        self.decoder: BartDecoder = BartDecoder(config)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.shared

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.shared: nn.Embedding = value
        self.tie_weights()

    def get_encoder(self) -> BartEncoder:
        return self.encoder

    def get_decoder(self) -> BartDecoder:
        return self.decoder

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.Tensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        encoder_outputs: BaseModelOutput | tuple[torch.Tensor, ...] | None = None,
        past_key_values: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        decoder_inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        output_hidden_states: bool = False,
        cache_position: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> Seq2SeqModelOutput:
        if decoder_input_ids is None and decoder_inputs_embeds is None:
            if input_ids is None:
                raise XfValueError(
                    "BART needs decoder_input_ids (or input_ids to build them from by shifting right)."
                )
            decoder_input_ids = shift_tokens_right(
                input_ids,
                pad_token_id=self.config.pad_token_id,
                decoder_start_token_id=self.config.decoder_start_token_id,
            )
        return encode_decode(
            self,
            input_ids,
            attention_mask,
            decoder_input_ids,
            decoder_attention_mask,
            encoder_outputs,
            past_key_values,
            inputs_embeds,
            decoder_inputs_embeds,
            use_cache,
            output_hidden_states,
            cache_position,
        )


class BartForConditionalGeneration(BartPreTrainedModel, GenerationMixin):
    """BART with its LM head (summarization, translation). ``labels`` give the loss (teacher forcing)."""

    head_kind: ClassVar[HeadKind] = HeadKind.SEQ2SEQ_LM
    _always_tied: ClassVar[dict[str, str]] = {
        f"model.{k}": f"model.{v}" for k, v in BartModel._always_tied.items()
    }
    _tied_weights_keys: ClassVar[dict[str, str]] = {"lm_head.weight": "model.shared.weight"}
    _keys_to_ignore_on_load_missing: ClassVar[list[str]] = [r"^final_logits_bias$"]

    def __init__(self, config: BartConfig) -> None:
        super().__init__(config)
        self.model: BartModel = BartModel(config)
        self.register_buffer("final_logits_bias", torch.zeros(1, config.vocab_size, device="cpu"))
        self.lm_head: nn.Linear = nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.post_init()

    def reset_buffers(self) -> None:
        self.final_logits_bias.zero_()

    def get_encoder(self) -> BartEncoder:
        return self.model.encoder

    def get_decoder(self) -> BartDecoder:
        return self.model.decoder

    def prepare_decoder_input_ids_from_labels(self, labels: torch.Tensor) -> torch.Tensor:
        return shift_tokens_right(
            labels,
            pad_token_id=self.config.pad_token_id,
            decoder_start_token_id=self.config.decoder_start_token_id,
        )

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.Tensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        encoder_outputs: BaseModelOutput | tuple[torch.Tensor, ...] | None = None,
        past_key_values: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        decoder_inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        use_cache: bool | None = None,
        output_hidden_states: bool = False,
        cache_position: torch.Tensor | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        num_items_in_batch: int | torch.Tensor | None = None,
        **kwargs: Any,
    ) -> Seq2SeqLMOutput:
        if labels is not None and decoder_input_ids is None and decoder_inputs_embeds is None:
            decoder_input_ids = self.prepare_decoder_input_ids_from_labels(labels)
        out = self.model(
            input_ids,
            attention_mask=attention_mask,
            decoder_input_ids=decoder_input_ids,
            decoder_attention_mask=decoder_attention_mask,
            encoder_outputs=encoder_outputs,
            past_key_values=past_key_values,
            inputs_embeds=inputs_embeds,
            decoder_inputs_embeds=decoder_inputs_embeds,
            use_cache=use_cache,
            output_hidden_states=output_hidden_states,
            cache_position=cache_position,
        )
        h = keep_logits(out.last_hidden_state, logits_to_keep)  # (B, T, C)
        logits = self.lm_head(h) + self.final_logits_bias.to(h.dtype)  # (B, T, V)
        loss = None
        if labels is not None:
            loss = masked_lm_loss(logits, labels, num_items_in_batch=num_items_in_batch)
        return Seq2SeqLMOutput(
            loss=loss,
            logits=logits,
            past_key_values=out.past_key_values,
            decoder_hidden_states=out.decoder_hidden_states,
            encoder_last_hidden_state=out.encoder_last_hidden_state,
            encoder_hidden_states=out.encoder_hidden_states,
        )
