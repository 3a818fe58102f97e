"""The task of a checkpoint or a loaded model comes from head kinds (xf-load's auto tables), not name suffixes."""

from __future__ import annotations

import pytest

from xf_load.auto import FAMILIES
from xf_load.errors import UnknownModelTypeError
from xf_load.heads import HEAD_TASKS, HeadKind
from xf_pipeline._registry import TASKS, task_from_architecture, task_from_model

# A class listed under two kinds (CLIPModel: zero-shot, and what AutoModel gives) serves the first one listed.
_FIRST_KIND: dict[str, HeadKind] = {}
for _family in FAMILIES.values():
    for _kind, _name in _family.heads.items():
        _FIRST_KIND.setdefault(_name, HeadKind(_kind))
ARCHITECTURES = list(_FIRST_KIND.items())


def test_every_head_kind_serves_a_known_task():
    assert set(HEAD_TASKS) == set(HeadKind)
    assert set(HEAD_TASKS.values()) <= set(TASKS)


@pytest.mark.parametrize(("name", "kind"), ARCHITECTURES, ids=[name for name, _ in ARCHITECTURES])
def test_every_xf_load_architecture_maps_through_its_head_kind(name, kind):
    assert task_from_architecture([name]) == HEAD_TASKS[kind]


def test_examples():
    assert task_from_architecture(["RobertaForQuestionAnswering"]) == "question-answering"
    assert task_from_architecture(["Qwen2ForSequenceClassification"]) == "text-classification"
    assert task_from_architecture(["RobertaForMaskedLM"]) == "fill-mask"
    assert task_from_architecture(["Qwen3Model"]) == "feature-extraction"
    assert task_from_architecture([]) == "feature-extraction"
    assert task_from_architecture(["ViTForImageClassification"]) == "image-classification"
    assert task_from_architecture(["CLIPModel"]) == "zero-shot-image-classification"
    # the first architecture xf-load has decides
    assert task_from_architecture(["BertForPreTraining", "BertForMaskedLM"]) == "fill-mask"


def test_an_architecture_xf_load_lacks_is_named_not_guessed():
    # by suffix this would be text-classification, but gpt2 has no such head in xf-load
    with pytest.raises(UnknownModelTypeError, match="GPT2ForSequenceClassification") as info:
        task_from_architecture(["GPT2ForSequenceClassification"])
    assert info.value.key == "architectures" and "text-classification" in str(info.value)


def test_a_loaded_model_is_mapped_by_the_kind_its_class_declares():
    class Chat:  # no suffix at all
        head_kind = HeadKind.CAUSAL_LM

    class Tagger:
        head_kind = "token_classification"

    assert task_from_model(Chat()) == "text-generation"
    assert task_from_model(Tagger()) == "token-classification"


def test_the_task_table_stays_torch_free():
    from xf_core.testing import imported_modules

    modules = imported_modules(
        "from xf_pipeline._registry import task_from_architecture\n"
        "assert task_from_architecture(['LlamaForCausalLM']) == 'text-generation'"
    )
    assert "torch" not in modules
