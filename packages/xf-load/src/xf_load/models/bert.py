"""BERT (Devlin et al., 2018) and RoBERTa (Liu et al., 2019): bidirectional post-LayerNorm encoders.

What is notable, read top to bottom:

* Embeddings are word + learned absolute position + token-type (segment), then LayerNorm and dropout.
* Post-LayerNorm layers: ``LayerNorm(x + dropout(attention(x)))``, then ``LayerNorm(x + dropout(mlp(x)))``;
  attention is bidirectional; padding is the only mask.
* Checkpoint names keep the original TensorFlow layout (``attention.self.query``, ``attention.output.dense``,
  ``intermediate.dense``, ``output.LayerNorm``); very old checkpoints call LayerNorm parameters
  ``gamma``/``beta``, renamed on load by :data:`CHECKPOINT_RENAMES`.
* ``BertModel`` has a pooler (``tanh(dense(h[:, 0]))``) used by sequence classification; the masked-LM head
  is a transform (dense, activation, LayerNorm) and a decoder tied to the word embeddings, whose bias is the
  head's ``bias`` parameter (the heads are in :mod:`xf_load.models._bert_heads`, re-exported here).
* Inference (no autograd) projects q, k and v with one matmul of the three weights concatenated, built on
  first use and rebuilt when a weight changes; the checkpoint keeps the three separate ``query``/``key``/
  ``value`` keys, and training runs the three layers as they are.
* RoBERTa is the same network; the differences are data: position ids count only non-padding tokens and start
  at ``pad_token_id + 1`` (fairseq's convention, :attr:`RobertaConfig.positions_from_padding`), the base model
  is stored under ``roberta.``, the masked-LM head is ``lm_head.{dense,layer_norm,decoder,bias}`` (always
  GELU), and the sequence classifier is ``classifier.{dense,out_proj}`` on the first token instead of the pooler.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from xf_core.errors import XfConfigError, XfValueError
from xf_load import initialization as init
from xf_load._decoder import check_input_shape, check_token_ids
from xf_load._fusing import fused_linear
from xf_load.activations import Activation, get_activation
from xf_load.attention import AttentionFn, get_attention
from xf_load.configuration_utils import PretrainedConfig
from xf_load.heads import HeadKind
from xf_load.masks import padding_mask
from xf_load.modeling_utils import PreTrainedModel
from xf_load.outputs import BaseModelOutput

# The task heads live in _bert_heads (they build on the classes here); __getattr__ below serves them.
if TYPE_CHECKING:
    from xf_load.models._bert_heads import (
        BertForMaskedLM,
        BertForQuestionAnswering,
        BertForSequenceClassification,
        BertForTokenClassification,
        RobertaForMaskedLM,
        RobertaForQuestionAnswering,
        RobertaForSequenceClassification,
        RobertaForTokenClassification,
    )

__all__ = [
    "CHECKPOINT_RENAMES",
    "BertConfig",
    "BertForMaskedLM",
    "BertForQuestionAnswering",
    "BertForSequenceClassification",
    "BertForTokenClassification",
    "BertModel",
    "BertPreTrainedModel",
    "RobertaConfig",
    "RobertaForMaskedLM",
    "RobertaForQuestionAnswering",
    "RobertaForSequenceClassification",
    "RobertaForTokenClassification",
    "RobertaModel",
]

# Tensor-parallel plan for xf-parallel (applied from outside). The MLP only: self-attention reshapes to the
# full hidden size, so it stays replicated.
TP_PLAN = {"encoder.layer.*.intermediate.dense": "colwise", "encoder.layer.*.output.dense": "rowwise"}

# Legacy checkpoint keys, {regex: replacement} applied on load: TensorFlow-era LayerNorm parameter names.
CHECKPOINT_RENAMES: dict[str, str] = {
    r"LayerNorm\.gamma$": "LayerNorm.weight",
    r"LayerNorm\.beta$": "LayerNorm.bias",
}

# ---------------------------------------------------------------------------------------------- config


@dataclass(kw_only=True)
class BertConfig(PretrainedConfig):
    """BERT's ``config.json``, field names and defaults as transformers writes them."""

    model_type: ClassVar[str] = "bert"
    # RoBERTa numbers positions from pad_token_id + 1 and skips padding; BERT counts 0, 1, 2, ...
    positions_from_padding: ClassVar[bool] = False

    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    pad_token_id: int | None = 0
    classifier_dropout: float | None = None
    is_decoder: bool = False
    add_cross_attention: bool = False

    def validate(self) -> None:
        self.check_positive(
            "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size"
        )
        if self.hidden_size % self.num_attention_heads:
            raise XfConfigError(
                f"hidden_size={self.hidden_size} is not divisible by num_attention_heads="
                f"{self.num_attention_heads}; pick a head count that divides the hidden size.",
                key="hidden_size",
            )
        get_activation(self.hidden_act)
        position_type = self.extra.get("position_embedding_type", "absolute")
        if position_type != "absolute":
            raise XfConfigError(
                f"position_embedding_type={position_type!r} is not supported by xf (only 'absolute', as in "
                "transformers v5).",
                key="position_embedding_type",
            )
        for name in ("is_decoder", "add_cross_attention"):
            if getattr(self, name):
                raise XfConfigError(
                    f"{name}=True (BERT as a causal or seq2seq decoder) is not supported by xf; set it to false.",
                    key=name,
                )
        if self.positions_from_padding and self.pad_token_id is None:
            raise XfConfigError(
                f"pad_token_id is None, but {self.model_type} numbers positions from it; set pad_token_id.",
                key="pad_token_id",
            )


@dataclass(kw_only=True)
class RobertaConfig(BertConfig):
    """RoBERTa's ``config.json``: BERT's fields with RoBERTa's defaults."""

    model_type: ClassVar[str] = "roberta"
    positions_from_padding: ClassVar[bool] = True

    vocab_size: int = 50265
    pad_token_id: int | None = 1
    bos_token_id: int | None = 0
    eos_token_id: int | list[int] | None = 2


# ---------------------------------------------------------------------------------------------- blocks


class BertEmbeddings(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.positions_from_padding: bool = config.positions_from_padding
        self.pad_token_id: int | None = config.pad_token_id
        self.max_positions: int = config.max_position_embeddings
        position_padding = config.pad_token_id if config.positions_from_padding else None
        self.word_embeddings: nn.Embedding = nn.Embedding(
            config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id
        )
        self.position_embeddings: nn.Embedding = nn.Embedding(
            config.max_position_embeddings, config.hidden_size, padding_idx=position_padding
        )
        self.token_type_embeddings: nn.Embedding = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.LayerNorm: nn.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout: nn.Dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(
        self,
        input_ids: torch.Tensor | None,
        inputs_embeds: torch.Tensor | None,
        token_type_ids: torch.Tensor | None,
        position_ids: torch.Tensor | None,
    ) -> torch.Tensor:
        check_input_shape(input_ids, inputs_embeds)
        if inputs_embeds is None:
            check_token_ids(input_ids, self.word_embeddings.num_embeddings, owner=type(self).__name__)
            inputs_embeds = self.word_embeddings(input_ids)
        if token_type_ids is not None:
            vocab = self.token_type_embeddings.num_embeddings
            check_token_ids(
                token_type_ids,
                vocab,
                owner=type(self).__name__,
                name="token_type_ids",
                limit_name="type_vocab_size",
            )
        B, T = inputs_embeds.shape[:2]
        if position_ids is None:
            first = self.pad_token_id + 1 if self.positions_from_padding else 0
            if first + T > self.max_positions:
                raise XfValueError(
                    f"a sequence of {T} tokens needs {first + T} position embeddings but the model has "
                    f"max_position_embeddings={self.max_positions}; truncate inputs to {self.max_positions - first} "
                    "tokens (tokenizer(..., truncation=True))."
                )
            position_ids = self.position_ids(input_ids, B, T, inputs_embeds.device)
        if token_type_ids is None:
            token_type_ids = torch.zeros(B, T, dtype=torch.long, device=inputs_embeds.device)
        x = (
            inputs_embeds
            + self.token_type_embeddings(token_type_ids)
            + self.position_embeddings(position_ids)
        )
        return self.dropout(self.LayerNorm(x))

    def position_ids(
        self, input_ids: torch.Tensor | None, B: int, T: int, device: torch.device
    ) -> torch.Tensor:
        """BERT: 0..T-1. RoBERTa: pad + 1, pad + 2, ... over non-padding tokens; padding keeps ``pad``."""
        if not self.positions_from_padding:
            return torch.arange(T, device=device).expand(B, T)
        pad = self.pad_token_id
        if input_ids is None:  # embeddings given: padding cannot be seen, so count every position
            return torch.arange(pad + 1, pad + 1 + T, device=device).expand(B, T)
        real = input_ids.ne(pad).long()
        return torch.cumsum(real, dim=1) * real + pad


QKV = ("query", "key", "value")  # read the same input: one matmul after fuse_projections()


class BertSelfAttention(nn.Module):
    _fused_linears: ClassVar[tuple[tuple[str, ...], ...]] = (QKV,)  # fuse_projections() runs them as one

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.n_head: int = config.num_attention_heads
        self.head_dim: int = config.hidden_size // config.num_attention_heads
        self.query: nn.Linear = nn.Linear(config.hidden_size, config.hidden_size)
        self.key: nn.Linear = nn.Linear(config.hidden_size, config.hidden_size)
        self.value: nn.Linear = nn.Linear(config.hidden_size, config.hidden_size)
        self.dropout: float = config.attention_probs_dropout_prob
        self.attend: AttentionFn = get_attention(config.attn_implementation)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = fused_linear(self, QKV, x) or (self.query(x), self.key(x), self.value(x))
        q = q.view(B, T, self.n_head, self.head_dim).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.n_head, self.head_dim).transpose(1, 2)  # (B, nh, T, hs)
        v = v.view(B, T, self.n_head, self.head_dim).transpose(1, 2)  # (B, nh, T, hs)
        y = self.attend(
            q, k, v, mask, scale=self.head_dim**-0.5, dropout=self.dropout, training=self.training
        )  # (B, T, nh, hs)
        return y.reshape(B, T, C)


class BertOutput(nn.Module):
    """``LayerNorm(residual + dropout(dense(x)))``: back into the residual stream after attention
    (``attention.output``) and after the MLP (``output``)."""

    def __init__(self, config: BertConfig, in_features: int) -> None:
        super().__init__()
        self.dense: nn.Linear = nn.Linear(in_features, config.hidden_size)
        self.LayerNorm: nn.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout: nn.Dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(residual + self.dropout(self.dense(x)))


class BertAttention(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.self: BertSelfAttention = BertSelfAttention(config)
        self.output: BertOutput = BertOutput(config, config.hidden_size)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        return self.output(self.self(x, mask), x)


class BertIntermediate(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.dense: nn.Linear = nn.Linear(config.hidden_size, config.intermediate_size)
        self.act: Activation = get_activation(config.hidden_act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.dense(x))


class BertLayer(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.attention: BertAttention = BertAttention(config)
        self.intermediate: BertIntermediate = BertIntermediate(config)
        self.output: BertOutput = BertOutput(config, config.intermediate_size)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        x = self.attention(x, mask)
        return self.output(self.intermediate(x), x)


class BertEncoder(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.layer: nn.ModuleList = nn.ModuleList(BertLayer(config) for _ in range(config.num_hidden_layers))


class BertPooler(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.dense: nn.Linear = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.dense(x[:, 0]))  # the first ([CLS]) token


def _classifier_dropout(config: BertConfig) -> float:
    return config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob


# ---------------------------------------------------------------------------------------------- models


class BertPreTrainedModel(PreTrainedModel):
    config_class: ClassVar[type[PretrainedConfig]] = BertConfig
    base_model_prefix = "bert"
    _no_split_modules: ClassVar[list[str]] = ["BertEmbeddings", "BertLayer"]
    _checkpoint_renames: ClassVar[dict[str, str]] = CHECKPOINT_RENAMES
    # Position ids were a persistent buffer in older checkpoints; they are computed now.
    _keys_to_ignore_on_load_unexpected: ClassVar[list[str]] = [r"embeddings\.position_ids$"]

    def _init_weights(self, module: nn.Module) -> None:
        """The default table (Linear and Embedding ~ N(0, initializer_range), padding row 0, LayerNorm 1/0),
        plus a zero masked-LM bias."""
        from xf_load.models._bert_heads import BertLMPredictionHead, RobertaLMHead

        super()._init_weights(module)
        if isinstance(module, (BertLMPredictionHead, RobertaLMHead)):
            init.zeros_(module.bias)


class BertModel(BertPreTrainedModel):
    head_kind: ClassVar[HeadKind] = HeadKind.BASE

    def __init__(self, config: BertConfig, add_pooling_layer: bool = True) -> None:
        super().__init__(config)
        self.embeddings: BertEmbeddings = BertEmbeddings(config)
        self.encoder: BertEncoder = BertEncoder(config)
        self.pooler: BertPooler | None = BertPooler(config) if add_pooling_layer else None
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embeddings.word_embeddings

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embeddings.word_embeddings = value

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        output_hidden_states: bool = False,
        **kwargs: Any,
    ) -> BaseModelOutput:
        if (input_ids is None) == (inputs_embeds is None):
            raise XfValueError("pass exactly one of input_ids or inputs_embeds.")
        x = self.embeddings(input_ids, inputs_embeds, token_type_ids, position_ids)
        mask = padding_mask(attention_mask)
        hidden_states = [x] if output_hidden_states else None
        for layer in self.encoder.layer:
            x = self._run_layer(layer, x, mask)
            if hidden_states is not None:
                hidden_states.append(x)
        return BaseModelOutput(
            last_hidden_state=x,
            pooler_output=self.pooler(x) if self.pooler is not None else None,
            hidden_states=tuple(hidden_states) if hidden_states is not None else None,
        )


# ---------------------------------------------------------------------------------------------- RoBERTa


class RobertaModel(BertModel):
    config_class: ClassVar[type[PretrainedConfig]] = RobertaConfig
    base_model_prefix = "roberta"


_HEADS = frozenset(name for name in __all__ if "For" in name)


def __getattr__(name: str) -> Any:
    """The task heads, from :mod:`xf_load.models._bert_heads` (imported on first use: it imports this module)."""
    if name in _HEADS:
        from xf_load.models import _bert_heads

        return getattr(_bert_heads, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
