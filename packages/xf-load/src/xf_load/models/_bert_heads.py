"""BERT's and RoBERTa's task heads (masked LM, sequence and token classification, extractive QA), on the
encoder of :mod:`xf_load.models.bert`, which re-exports every class here: import them from there.

The masked-LM head is a transform (dense, activation, LayerNorm) and a decoder tied to the word embeddings,
whose bias is the head's ``bias`` parameter; RoBERTa's is ``lm_head.{dense,layer_norm,decoder,bias}`` (always
GELU), and its sequence classifier is ``classifier.{dense,out_proj}`` on the first token instead of the pooler.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from xf_load.activations import Activation, get_activation
from xf_load.configuration_utils import PretrainedConfig
from xf_load.heads import HeadKind
from xf_load.losses import (
    masked_lm_loss,
    question_answering_loss,
    sequence_classification_loss,
    token_classification_loss,
)
from xf_load.models.bert import (
    BertConfig,
    BertModel,
    BertPreTrainedModel,
    RobertaConfig,
    RobertaModel,
    _classifier_dropout,
)
from xf_load.outputs import (
    BaseModelOutput,
    MaskedLMOutput,
    ModelOutput,
    QuestionAnsweringOutput,
    SequenceClassifierOutput,
    TokenClassifierOutput,
)

__all__ = [
    "BertForMaskedLM",
    "BertForQuestionAnswering",
    "BertForSequenceClassification",
    "BertForTokenClassification",
    "BertLMPredictionHead",
    "BertPredictionHeadTransform",
    "RobertaClassificationHead",
    "RobertaForMaskedLM",
    "RobertaForQuestionAnswering",
    "RobertaForSequenceClassification",
    "RobertaForTokenClassification",
    "RobertaLMHead",
]

# ---------------------------------------------------------------------------------------------- blocks


class BertPredictionHeadTransform(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.dense: nn.Linear = nn.Linear(config.hidden_size, config.hidden_size)
        self.act: Activation = get_activation(config.hidden_act)
        self.LayerNorm: nn.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.act(self.dense(x)))


class BertLMPredictionHead(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.transform: BertPredictionHeadTransform = BertPredictionHeadTransform(config)
        self.decoder: nn.Linear = nn.Linear(config.hidden_size, config.vocab_size)
        self.bias: nn.Parameter = nn.Parameter(torch.empty(config.vocab_size))  # decoder.bias when tied

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.transform(x))


class RobertaLMHead(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.dense: nn.Linear = nn.Linear(config.hidden_size, config.hidden_size)
        self.layer_norm: nn.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.decoder: nn.Linear = nn.Linear(config.hidden_size, config.vocab_size)
        self.bias: nn.Parameter = nn.Parameter(torch.empty(config.vocab_size))  # decoder.bias when tied

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.layer_norm(F.gelu(self.dense(x))))  # GELU whatever hidden_act says


class RobertaClassificationHead(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.dense: nn.Linear = nn.Linear(config.hidden_size, config.hidden_size)
        self.dropout: nn.Dropout = nn.Dropout(_classifier_dropout(config))
        self.out_proj: nn.Linear = nn.Linear(config.hidden_size, config.num_labels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dropout(x[:, 0])  # the first (<s>) token
        return self.out_proj(self.dropout(torch.tanh(self.dense(x))))


# ---------------------------------------------------------------------------------------------- models


class _BertHead(BertPreTrainedModel):
    """A task head on the encoder, which is stored under ``base_model_prefix`` (``bert`` or ``roberta``) as
    checkpoints name it. A head adds its modules in ``_add_head`` and turns the encoder's output and the
    labels into its output in ``_predict``; ``forward`` is the same for every head."""

    _uses_pooler: ClassVar[bool] = False

    def __init__(self, config: BertConfig) -> None:
        super().__init__(config)
        base_class = RobertaModel if self.base_model_prefix == "roberta" else BertModel
        self.add_module(self.base_model_prefix, base_class(config, add_pooling_layer=self._uses_pooler))
        self._add_head(config)
        self.post_init()

    def _add_head(self, config: BertConfig) -> None:
        raise NotImplementedError(f"{type(self).__name__} must define _add_head(config)")

    def _predict(self, out: BaseModelOutput, labels: torch.Tensor | None) -> ModelOutput:
        raise NotImplementedError(f"{type(self).__name__} must define _predict(out, labels)")

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool = False,
        **kwargs: Any,
    ) -> ModelOutput:
        out = self.base_model(
            input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds, output_hidden_states
        )
        return self._predict(out, labels)


class BertForMaskedLM(_BertHead):
    head_kind: ClassVar[HeadKind] = HeadKind.MASKED_LM
    _tied_weights_keys: ClassVar[dict[str, str]] = {
        "cls.predictions.decoder.weight": "bert.embeddings.word_embeddings.weight",
        "cls.predictions.decoder.bias": "cls.predictions.bias",
    }

    def _add_head(self, config: BertConfig) -> None:
        self.cls: nn.ModuleDict = nn.ModuleDict(
            {"predictions": BertLMPredictionHead(config)}
        )  # cls.predictions.* keys

    def _head(self) -> BertLMPredictionHead | RobertaLMHead:
        """The module holding ``decoder`` and ``bias``."""
        return self.cls.predictions

    def get_output_embeddings(self) -> nn.Linear:
        return self._head().decoder

    def set_output_embeddings(self, value: nn.Linear) -> None:
        self._head().decoder = value

    @torch.no_grad()
    def resize_token_embeddings(
        self,
        new_num_tokens: int | None = None,
        *,
        pad_to_multiple_of: int | None = None,
        mean_resizing: bool = True,
    ) -> nn.Embedding:
        """As :meth:`PreTrainedModel.resize_token_embeddings`, and the head's ``bias`` follows (new tokens: 0)."""
        new = super().resize_token_embeddings(
            new_num_tokens, pad_to_multiple_of=pad_to_multiple_of, mean_resizing=mean_resizing
        )
        head, n = self._head(), new.num_embeddings
        old = head.bias
        if old.shape[0] != n:
            bias = torch.zeros(n, dtype=old.dtype, device=old.device)
            keep = min(n, old.shape[0])
            bias[:keep] = old[:keep]
            head.bias = nn.Parameter(bias)
            self.tie_weights()
        return new

    def _predict(self, out: BaseModelOutput, labels: torch.Tensor | None) -> MaskedLMOutput:
        logits = self._head()(out.last_hidden_state)
        loss = masked_lm_loss(logits, labels) if labels is not None else None  # -100: unmasked positions
        return MaskedLMOutput(loss=loss, logits=logits, hidden_states=out.hidden_states)


class BertForSequenceClassification(_BertHead):
    """Classifies (or, with one label, regresses) a whole sequence from the pooled first token."""

    head_kind: ClassVar[HeadKind] = HeadKind.SEQUENCE_CLASSIFICATION
    _uses_pooler: ClassVar[bool] = True

    def _add_head(self, config: BertConfig) -> None:
        self.dropout: nn.Dropout = nn.Dropout(_classifier_dropout(config))
        self.classifier: nn.Linear = nn.Linear(config.hidden_size, config.num_labels)

    def _classify(self, out: BaseModelOutput) -> torch.Tensor:
        return self.classifier(self.dropout(out.pooler_output))

    def _predict(self, out: BaseModelOutput, labels: torch.Tensor | None) -> SequenceClassifierOutput:
        logits = self._classify(out)
        loss = None
        if labels is not None:
            loss = sequence_classification_loss(
                logits, labels, num_labels=self.config.num_labels, problem_type=self.config.problem_type
            )
        return SequenceClassifierOutput(loss=loss, logits=logits, hidden_states=out.hidden_states)


class BertForTokenClassification(_BertHead):
    head_kind: ClassVar[HeadKind] = HeadKind.TOKEN_CLASSIFICATION
    _add_head = BertForSequenceClassification._add_head  # the same dropout + linear classifier, per token

    def _predict(self, out: BaseModelOutput, labels: torch.Tensor | None) -> TokenClassifierOutput:
        logits = self.classifier(self.dropout(out.last_hidden_state))
        loss = token_classification_loss(logits, labels) if labels is not None else None  # -100: ignored
        return TokenClassifierOutput(loss=loss, logits=logits, hidden_states=out.hidden_states)


class BertForQuestionAnswering(_BertHead):
    """Extractive QA: a start and an end logit per token (``qa_outputs`` has ``num_labels`` = 2 outputs)."""

    head_kind: ClassVar[HeadKind] = HeadKind.QUESTION_ANSWERING

    def _add_head(self, config: BertConfig) -> None:
        self.qa_outputs: nn.Linear = nn.Linear(config.hidden_size, config.num_labels)

    def forward(  # the targets are start_positions and end_positions, not labels
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        start_positions: torch.Tensor | None = None,
        end_positions: torch.Tensor | None = None,
        output_hidden_states: bool = False,
        **kwargs: Any,
    ) -> QuestionAnsweringOutput:
        out = self.base_model(
            input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds, output_hidden_states
        )
        start_logits, end_logits = self.qa_outputs(out.last_hidden_state).split(1, dim=-1)
        start_logits, end_logits = start_logits.squeeze(-1).contiguous(), end_logits.squeeze(-1).contiguous()
        loss = None
        if start_positions is not None and end_positions is not None:
            loss = question_answering_loss(start_logits, end_logits, start_positions, end_positions)
        return QuestionAnsweringOutput(
            loss=loss, start_logits=start_logits, end_logits=end_logits, hidden_states=out.hidden_states
        )


# ---------------------------------------------------------------------------------------------- RoBERTa


class RobertaForMaskedLM(BertForMaskedLM):
    config_class: ClassVar[type[PretrainedConfig]] = RobertaConfig
    base_model_prefix = "roberta"
    _tied_weights_keys: ClassVar[dict[str, str]] = {
        "lm_head.decoder.weight": "roberta.embeddings.word_embeddings.weight",
        "lm_head.decoder.bias": "lm_head.bias",
    }

    def _add_head(self, config: BertConfig) -> None:
        self.lm_head: RobertaLMHead = RobertaLMHead(config)

    def _head(self) -> BertLMPredictionHead | RobertaLMHead:
        return self.lm_head


class RobertaForSequenceClassification(BertForSequenceClassification):
    """Classifies from the first token through ``classifier.dense`` + tanh + ``classifier.out_proj`` (no pooler)."""

    config_class: ClassVar[type[PretrainedConfig]] = RobertaConfig
    base_model_prefix = "roberta"
    _uses_pooler: ClassVar[bool] = False

    def _add_head(self, config: BertConfig) -> None:
        self.classifier: RobertaClassificationHead = RobertaClassificationHead(config)

    def _classify(self, out: BaseModelOutput) -> torch.Tensor:
        return self.classifier(out.last_hidden_state)


class RobertaForTokenClassification(BertForTokenClassification):
    config_class: ClassVar[type[PretrainedConfig]] = RobertaConfig
    base_model_prefix = "roberta"


class RobertaForQuestionAnswering(BertForQuestionAnswering):
    config_class: ClassVar[type[PretrainedConfig]] = RobertaConfig
    base_model_prefix = "roberta"
