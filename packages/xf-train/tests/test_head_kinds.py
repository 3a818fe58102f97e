"""The Trainer decides label shifting by the model's head kind (never its class name) and resumes weights
through xf-load's public load_weights."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from xf_load import HeadKind
from xf_train import Trainer, TrainingArguments

LABELS = torch.tensor([[5, 6, 7, -100], [8, -100, -100, -100]])  # 4 targets; 2 once shifted by one


class _Recorder(nn.Module):
    """Computes its own loss; records the ``num_items_in_batch`` the Trainer hands it."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.ones(()))
        self.seen: list[int] = []

    def forward(self, input_ids, labels=None, num_items_in_batch=None):
        self.seen.append(int(num_items_in_batch))
        return {"loss": (self.w * input_ids.float()).sum() / num_items_in_batch}


class Decoder(_Recorder):  # a causal-LM head whose name does not end in ForCausalLM or LMHeadModel
    head_kind = HeadKind.CAUSAL_LM


class MisleadingForCausalLM(_Recorder):  # the name says causal LM, the declared head says masked LM
    head_kind = HeadKind.MASKED_LM


class Classifier(_Recorder):
    head_kind = HeadKind.TOKEN_CLASSIFICATION


@pytest.mark.parametrize(
    ("model_class", "targets"),
    [(Decoder, 2), (MisleadingForCausalLM, 4), (Classifier, 4), (_Recorder, 4)],
    ids=["causal-lm", "masked-lm-named-causal", "token-classification", "no-head-kind"],
)
def test_labels_are_shifted_only_for_a_causal_lm_head(tmp_path, model_class, targets):
    model = model_class()
    args = TrainingArguments(
        output_dir=str(tmp_path), max_steps=1, per_device_train_batch_size=2, save_strategy="no",
        report_to="none", disable_tqdm=True, train_sampling_strategy="sequential",
    )  # fmt: skip
    rows = [{"input_ids": torch.arange(4), "labels": LABELS[i]} for i in range(2)]
    Trainer(model, args, train_dataset=rows).train()
    assert model.seen == [targets]


def test_an_xf_causal_lm_subclass_with_another_name_shifts(tmp_path):
    from xf_load.models.llama import LlamaConfig, LlamaForCausalLM

    class TinyChat(LlamaForCausalLM):
        pass

    config = LlamaConfig(
        hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, vocab_size=32
    )
    trainer = Trainer(TinyChat(config), TrainingArguments(output_dir=str(tmp_path)))
    counted = trainer._count_items([{"input_ids": torch.ones(2, 4, dtype=torch.long), "labels": LABELS}])
    assert int(counted) == 2


def test_resume_into_a_different_model_names_the_keys_and_the_checkpoint(tmp_path):
    from xf_load.errors import CheckpointMismatchError
    from xf_load.models.llama import LlamaConfig, LlamaForCausalLM

    tiny = {"hidden_size": 16, "intermediate_size": 32, "num_attention_heads": 2, "vocab_size": 32}
    args = TrainingArguments(
        output_dir=str(tmp_path), max_steps=1, per_device_train_batch_size=2, save_steps=1,
        report_to="none", disable_tqdm=True,
    )  # fmt: skip
    rows = [{"input_ids": torch.arange(1, 5), "labels": torch.arange(1, 5)} for _ in range(2)]
    Trainer(LlamaForCausalLM(LlamaConfig(num_hidden_layers=2, **tiny)), args, train_dataset=rows).train()
    deeper = LlamaForCausalLM(LlamaConfig(num_hidden_layers=3, **tiny))
    with pytest.raises(CheckpointMismatchError, match="checkpoint-1") as info:
        Trainer(deeper, args, train_dataset=rows).train(resume_from_checkpoint=True)
    assert "model.layers.2.mlp.down_proj.weight" in info.value.missing_keys
