"""T5 (Raffel et al., 2020) and T5 v1.1: an encoder-decoder transformer with relative position buckets.

What is notable, read top to bottom:

* No position embeddings: the first self-attention layer of each stack owns a learned bias per (bucket, head);
  the distance key - query falls in one of ``relative_attention_num_buckets`` buckets (exact for small
  distances, logarithmic up to ``relative_attention_max_distance``; the encoder's buckets are bidirectional,
  the decoder's look back only). That one bias is added to the scores of every layer of the stack.
* Attention is not scaled by ``1/sqrt(head_dim)`` (the init accounts for it) and has no biases.
* Pre-norm blocks with :class:`T5LayerNorm`, an RMS norm without mean subtraction or bias; each block is a list
  ``layer`` (self-attention, cross-attention in the decoder, feed-forward), as the checkpoints name it.
* ``feed_forward_proj`` is ``"ACT"`` (``wi`` -> act -> ``wo``) or ``"gated-ACT"`` (T5 v1.1, Flan-T5:
  ``act(wi_0 x) * wi_1 x`` -> ``wo``); ``"gated-gelu"`` means the tanh GELU (``gelu_new``).
* One embedding ``shared`` serves encoder and decoder. The LM head is tied to it when ``tie_word_embeddings``
  (original T5; the decoder output is then scaled by ``d_model ** -0.5`` before the head) and a separate
  ``lm_head`` otherwise (v1.1). transformers v5 writes the scaling as ``scale_decoder_outputs``; it wins
  when present.
* The decoder's input is the labels shifted right, starting with ``decoder_start_token_id`` (the pad id).
* In float16 the hidden states are clamped below the dtype's maximum after each sub-layer, as transformers
  does, since T5's activations overflow it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from xf_core.errors import XfConfigError, XfValueError
from xf_load import initialization as init
from xf_load._decoder import check_input_shape, check_token_ids, decoder_prologue, keep_logits
from xf_load.activations import get_activation
from xf_load.cache import Cache, DynamicCache, EncoderDecoderCache
from xf_load.configuration_utils import PretrainedConfig
from xf_load.generation import GenerationMixin
from xf_load.heads import HeadKind
from xf_load.losses import masked_lm_loss
from xf_load.masks import causal_mask, padding_mask
from xf_load.modeling_utils import PreTrainedModel
from xf_load.models._seq2seq import encode_decode, shift_tokens_right
from xf_load.models._t5_layers import (  # the blocks, importable from here as before the split
    T5Attention,
    T5Block,
    T5DenseActDense,
    T5DenseGatedActDense,
    T5LayerCrossAttention,  # noqa: F401
    T5LayerFF,  # noqa: F401
    T5LayerNorm,
    T5LayerSelfAttention,
    relative_position_bucket,
)
from xf_load.outputs import BaseModelOutput, Seq2SeqLMOutput, Seq2SeqModelOutput

__all__ = [
    "T5Config",
    "T5EncoderModel",
    "T5ForConditionalGeneration",
    "T5Model",
    "T5PreTrainedModel",
    "relative_position_bucket",
]

# ---------------------------------------------------------------------------------------------- config


@dataclass(kw_only=True)
class T5Config(PretrainedConfig):
    """T5's ``config.json``, field names as on the Hub (``hidden_size`` etc. are aliases of ``d_model`` etc.)."""

    model_type: ClassVar[str] = "t5"
    aliases: ClassVar[dict[str, str]] = {
        "hidden_size": "d_model",
        "num_attention_heads": "num_heads",
        "num_hidden_layers": "num_layers",
        "head_dim": "d_kv",
    }

    vocab_size: int = 32128
    d_model: int = 512
    d_kv: int = 64
    d_ff: int = 2048
    num_layers: int = 6
    num_decoder_layers: int | None = None  # None: as many as the encoder
    num_heads: int = 8
    relative_attention_num_buckets: int = 32
    relative_attention_max_distance: int = 128
    dropout_rate: float = 0.1
    layer_norm_epsilon: float = 1e-6
    initializer_factor: float = 1.0
    feed_forward_proj: str = "relu"
    is_encoder_decoder: bool = True
    pad_token_id: int | None = 0
    eos_token_id: int | list[int] | None = 1
    decoder_start_token_id: int | None = None
    # transformers v5's name for "scale the decoder output by d_model**-0.5"; None: when the head is tied.
    scale_decoder_outputs: bool | None = None

    @classmethod
    def _translate_legacy(cls, data: dict[str, Any]) -> dict[str, Any]:
        # Derived from feed_forward_proj; written back by to_dict, never read.
        return {k: v for k, v in data.items() if k not in ("dense_act_fn", "is_gated_act", "is_decoder")}

    @property
    def is_gated_act(self) -> bool:
        return self.feed_forward_proj.startswith("gated-")

    @property
    def dense_act_fn(self) -> str:
        act = self.feed_forward_proj.removeprefix("gated-")
        return "gelu_new" if self.feed_forward_proj == "gated-gelu" else act

    @property
    def decoder_layers(self) -> int:
        return self.num_layers if self.num_decoder_layers is None else self.num_decoder_layers

    @property
    def scales_decoder_output(self) -> bool:
        if self.scale_decoder_outputs is not None:
            return self.scale_decoder_outputs
        return self.tie_word_embeddings

    def validate(self) -> None:
        self.check_positive("vocab_size", "d_model", "d_kv", "d_ff", "num_layers", "num_heads")
        self.check_positive("relative_attention_max_distance")
        if self.num_decoder_layers is not None and self.num_decoder_layers < 0:
            raise XfConfigError(
                f"num_decoder_layers={self.num_decoder_layers} must be >= 0 (or null: as many as num_layers).",
                key="num_decoder_layers",
            )
        if self.relative_attention_num_buckets < 4:
            raise XfConfigError(
                f"relative_attention_num_buckets={self.relative_attention_num_buckets} is too few: the encoder "
                "splits the buckets by direction and half of each side is exact distances, so T5 needs at least "
                "4; checkpoints use 32.",
                key="relative_attention_num_buckets",
            )
        parts = self.feed_forward_proj.split("-")
        if len(parts) > 2 or (len(parts) == 2 and parts[0] != "gated") or not parts[-1]:
            raise XfConfigError(
                f"feed_forward_proj={self.feed_forward_proj!r} is not 'ACT' or 'gated-ACT' (e.g. 'relu' for T5, "
                "'gated-gelu' for T5 v1.1 and Flan-T5).",
                key="feed_forward_proj",
            )
        try:
            get_activation(self.dense_act_fn, key="feed_forward_proj")
        except XfConfigError as e:
            raise XfConfigError(
                f"feed_forward_proj={self.feed_forward_proj!r} names an unknown activation: {e}",
                key="feed_forward_proj",
            ) from None

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out["dense_act_fn"] = self.dense_act_fn
        out["is_gated_act"] = self.is_gated_act
        out["is_decoder"] = False
        out["num_decoder_layers"] = self.decoder_layers
        out["scale_decoder_outputs"] = self.scales_decoder_output  # transformers v5 reads it; v4 ignores it
        if self.decoder_start_token_id is None:
            out.pop("decoder_start_token_id")
        return out


# ---------------------------------------------------------------------------------------------- models


def _additive(bias: torch.Tensor, visible: torch.Tensor | None) -> torch.Tensor:
    """The position bias with hidden keys at the dtype's minimum: one float mask for the attention."""
    if visible is None:
        return bias
    return torch.where(visible, bias, torch.finfo(bias.dtype).min)  # (B or 1, nh, T, S)


class T5PreTrainedModel(PreTrainedModel):
    config_class: ClassVar[type[PretrainedConfig]] = T5Config
    base_model_prefix = ""  # the heads keep shared/encoder/decoder at the top level, as the checkpoints do
    _no_split_modules: ClassVar[list[str]] = ["T5Block"]
    # The decoder's cross-attention lets consecutive rows share one encoder row (models/_seq2seq.cross_attend):
    # generate then keeps one encoder output per prompt, not one per beam.
    shares_encoder_rows: ClassVar[bool] = True
    _keys_to_ignore_on_load_unexpected: ClassVar[list[str]] = [
        r"^decoder\.block\.0\.layer\.1\.EncDecAttention\.relative_attention_bias\.weight$"
    ]
    # Ties that hold whatever tie_word_embeddings says: the stacks' embeddings are ``shared``.
    _always_tied: ClassVar[dict[str, str]] = {}

    def _tie_pairs(self) -> dict[str, str]:
        pairs = dict(self._always_tied)
        if getattr(self.config, "tie_word_embeddings", False):
            pairs.update(self._tied_weights_keys)
        return pairs

    def _init_weights(self, module: nn.Module) -> None:
        """T5's table: every weight N(0, factor * fan-in ** -0.5), which is why attention needs no scaling."""
        c = self.config
        f = c.initializer_factor
        if isinstance(module, T5LayerNorm):
            init.constant_(module.weight, f)
        elif isinstance(module, (T5Model, T5ForConditionalGeneration, T5EncoderModel)):
            init.normal_(module.shared.weight, std=f)
            head = getattr(module, "lm_head", None)
            if head is not None and not c.tie_word_embeddings:
                init.normal_(head.weight, std=f)
        elif isinstance(module, T5DenseActDense):
            init.normal_(module.wi.weight, std=f * c.d_model**-0.5)
            init.normal_(module.wo.weight, std=f * c.d_ff**-0.5)
        elif isinstance(module, T5DenseGatedActDense):
            init.normal_(module.wi_0.weight, std=f * c.d_model**-0.5)
            init.normal_(module.wi_1.weight, std=f * c.d_model**-0.5)
            init.normal_(module.wo.weight, std=f * c.d_ff**-0.5)
        elif isinstance(module, T5Attention):
            init.normal_(module.q.weight, std=f * (c.d_model * c.d_kv) ** -0.5)
            init.normal_(module.k.weight, std=f * c.d_model**-0.5)
            init.normal_(module.v.weight, std=f * c.d_model**-0.5)
            init.normal_(module.o.weight, std=f * (c.num_heads * c.d_kv) ** -0.5)
            if hasattr(module, "relative_attention_bias"):
                init.normal_(module.relative_attention_bias.weight, std=f * c.d_model**-0.5)


class T5Stack(T5PreTrainedModel):
    """The encoder or the decoder: embeddings (shared with the other stack), blocks, a final norm."""

    def __init__(self, config: T5Config, *, is_decoder: bool) -> None:
        super().__init__(config)
        self.is_decoder = is_decoder
        self.embed_tokens = nn.Embedding(config.vocab_size, config.d_model)
        n = config.decoder_layers if is_decoder else config.num_layers
        self.block: nn.ModuleList = nn.ModuleList(
            T5Block(config, is_decoder=is_decoder, layer_idx=i) for i in range(n)
        )
        self.final_layer_norm: T5LayerNorm = T5LayerNorm(config.d_model, eps=config.layer_norm_epsilon)
        self.dropout: nn.Dropout = nn.Dropout(config.dropout_rate)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embed_tokens

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embed_tokens: nn.Embedding = value

    def _bias_layer(self) -> T5Attention:
        """The first block's self-attention, which owns the stack's relative position bias."""
        first = self.block[0]
        assert isinstance(first, T5Block)
        layer = first.layer[0]
        assert isinstance(layer, T5LayerSelfAttention)
        return layer.SelfAttention

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
        if self.is_decoder:
            x, bias, cache, cache_position, returned = self._decoder_inputs(
                input_ids, inputs_embeds, attention_mask, past_key_values, use_cache, cache_position
            )
            if encoder_hidden_states is None:
                raise XfValueError("the T5 decoder needs encoder_hidden_states (the encoder's output).")
            cross_mask = padding_mask(encoder_attention_mask, query_length=x.shape[1])
        else:
            if (input_ids is None) == (inputs_embeds is None):
                raise XfValueError("pass exactly one of input_ids or inputs_embeds to the T5 encoder.")
            check_input_shape(input_ids, inputs_embeds)
            if input_ids is not None:
                check_token_ids(input_ids, self.embed_tokens.num_embeddings, owner="T5 encoder")
            x = self.embed_tokens(input_ids) if inputs_embeds is None else inputs_embeds  # (B, S, C)
            S = x.shape[1]
            positions = torch.arange(S, device=x.device)
            bias = _additive(
                self._bias_layer().compute_bias(positions, S), padding_mask(attention_mask, query_length=S)
            )
            cache, cache_position, returned, cross_mask = None, None, None, None

        x = self.dropout(x)
        hidden_states = [x] if output_hidden_states else None
        for block in self.block:
            x = self._run_layer(block, x, bias, cache, cache_position, encoder_hidden_states, cross_mask)
            if hidden_states is not None:
                hidden_states.append(x)
        x = self.dropout(self.final_layer_norm(x))
        if hidden_states is not None:
            hidden_states[-1] = x
        return BaseModelOutput(
            last_hidden_state=x,
            past_key_values=returned,
            hidden_states=tuple(hidden_states) if hidden_states is not None else None,
        )

    def _decoder_inputs(
        self,
        input_ids: torch.Tensor | None,
        inputs_embeds: torch.Tensor | None,
        attention_mask: torch.Tensor | None,
        past_key_values: Cache | None,
        use_cache: bool | None,
        cache_position: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor, Cache | None, torch.Tensor, Cache | None]:
        """Embeddings, the causal mask folded into the position bias, and the cache of one decoder forward."""
        if past_key_values is not None and not isinstance(past_key_values, EncoderDecoderCache):
            past_key_values = EncoderDecoderCache(past_key_values)
        state = decoder_prologue(
            self,
            input_ids,
            inputs_embeds,
            embed=self.embed_tokens,
            attention_mask=attention_mask,
            position_ids=None,
            past_key_values=past_key_values,
            use_cache=use_cache,
            cache_position=cache_position,
        )
        cache = state.cache
        if cache is not None and not isinstance(cache, EncoderDecoderCache):  # the prologue made a fresh one
            cache = EncoderDecoderCache(cache, DynamicCache())
        T = state.inputs_embeds.shape[1]
        kv_length = cache.kv_length(T) if cache is not None else T
        visible = state.masks[None]
        if visible is None and T > 1:  # plain causal: the bias needs it spelled out
            visible = causal_mask(None, state.cache_position, kv_length, allow_none=False)
        bias = _additive(self._bias_layer().compute_bias(state.cache_position, kv_length), visible)
        return state.inputs_embeds, bias, cache, state.cache_position, cache if state.use_cache else None


class _T5SharedEmbeddings(T5PreTrainedModel):
    """What the models holding ``shared`` (the token embeddings their stacks tie to) and an ``encoder`` share."""

    shared: nn.Embedding
    encoder: T5Stack

    def get_input_embeddings(self) -> nn.Embedding:
        return self.shared

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.shared = value
        self.tie_weights()

    def get_encoder(self) -> T5Stack:
        return self.encoder


class T5Model(_T5SharedEmbeddings):
    """Encoder and decoder; returns the decoder's hidden states."""

    head_kind: ClassVar[HeadKind] = HeadKind.BASE
    _always_tied: ClassVar[dict[str, str]] = {
        "encoder.embed_tokens.weight": "shared.weight",
        "decoder.embed_tokens.weight": "shared.weight",
    }

    def __init__(self, config: T5Config) -> None:
        super().__init__(config)
        self.shared: nn.Embedding = nn.Embedding(config.vocab_size, config.d_model)
        self.encoder: T5Stack = T5Stack(config, is_decoder=False)
        self.decoder: T5Stack = T5Stack(config, is_decoder=True)
        self.post_init()

    def get_decoder(self) -> T5Stack:
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


class T5ForConditionalGeneration(_T5SharedEmbeddings, GenerationMixin):
    """T5 with its LM head: text to text. ``labels`` give the loss (teacher forcing, no shift in the loss)."""

    head_kind: ClassVar[HeadKind] = HeadKind.SEQ2SEQ_LM
    _always_tied: ClassVar[dict[str, str]] = T5Model._always_tied
    _tied_weights_keys: ClassVar[dict[str, str]] = {"lm_head.weight": "shared.weight"}

    def __init__(self, config: T5Config) -> None:
        super().__init__(config)
        self.shared: nn.Embedding = nn.Embedding(config.vocab_size, config.d_model)
        self.encoder: T5Stack = T5Stack(config, is_decoder=False)
        self.decoder: T5Stack = T5Stack(config, is_decoder=True)
        self.lm_head: nn.Linear = nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.post_init()

    def get_decoder(self) -> T5Stack:
        return self.decoder

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
        out = encode_decode(
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
        h = keep_logits(out.last_hidden_state, logits_to_keep)  # (B, T, C)
        if self.config.scales_decoder_output:
            h = h * (self.config.d_model**-0.5)
        logits = self.lm_head(h)  # (B, T, V)
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


class T5EncoderModel(_T5SharedEmbeddings):
    """The encoder alone (sentence-T5, Flan-T5 as a text encoder)."""

    head_kind: ClassVar[HeadKind] = HeadKind.BASE
    _always_tied: ClassVar[dict[str, str]] = {"encoder.embed_tokens.weight": "shared.weight"}
    _keys_to_ignore_on_load_unexpected: ClassVar[list[str]] = [r"^decoder\.", r"^lm_head\."]

    def __init__(self, config: T5Config) -> None:
        super().__init__(config)
        self.shared: nn.Embedding = nn.Embedding(config.vocab_size, config.d_model)
        self.encoder: T5Stack = T5Stack(config, is_decoder=False)
        self.post_init()

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        output_hidden_states: bool = False,
        **kwargs: Any,
    ) -> BaseModelOutput:
        return self.encoder(
            input_ids,
            attention_mask=attention_mask,
            inputs_embeds=inputs_embeds,
            output_hidden_states=output_hidden_states,
        )
