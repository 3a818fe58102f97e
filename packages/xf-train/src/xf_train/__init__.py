"""TrainingArguments, data collators and the Trainer for xf-load models.

``import xf_train`` is cheap: the public names load their modules (and torch) on first use.
"""

from collections.abc import Callable
from importlib import metadata as _metadata
from typing import TYPE_CHECKING, Any

from xf_core.lazy import lazy_exports

__version__ = _metadata.version("xf-train")

_EXPORTS = {
    "TrainingArguments": "xf_train._training_args",
    "DataCollatorForLanguageModeling": "xf_train._collators",
    "DataCollatorForSeq2Seq": "xf_train._collators",
    "DataCollatorForTokenClassification": "xf_train._collators",
    "DataCollatorWithPadding": "xf_train._collators",
    "default_data_collator": "xf_train._collators",
    "create_optimizer": "xf_train._optim",
    "get_decay_parameter_names": "xf_train._optim",
    "get_scheduler": "xf_train._optim",
    "DebugUnderflowOverflow": "xf_train._debug",
    "EvalPrediction": "xf_train._trainer",
    "Trainer": "xf_train._trainer",
    "TrainerState": "xf_train._trainer",
}

if TYPE_CHECKING:  # the lazily exported names, as type checkers and IDEs should see them
    from xf_train._collators import (
        DataCollatorForLanguageModeling,
        DataCollatorForSeq2Seq,
        DataCollatorForTokenClassification,
        DataCollatorWithPadding,
        default_data_collator,
    )
    from xf_train._debug import DebugUnderflowOverflow
    from xf_train._optim import create_optimizer, get_decay_parameter_names, get_scheduler
    from xf_train._trainer import EvalPrediction, Trainer, TrainerState
    from xf_train._training_args import TrainingArguments

__getattr__: Callable[[str], Any]
__dir__: Callable[[], list[str]]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

__all__ = [
    "DataCollatorForLanguageModeling",
    "DataCollatorForSeq2Seq",
    "DataCollatorForTokenClassification",
    "DataCollatorWithPadding",
    "DebugUnderflowOverflow",
    "EvalPrediction",
    "Trainer",
    "TrainerState",
    "TrainingArguments",
    "__version__",
    "create_optimizer",
    "default_data_collator",
    "get_decay_parameter_names",
    "get_scheduler",
]
