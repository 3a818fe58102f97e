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
    "EvalPrediction": "xf_train._trainer_eval",
    "PredictionOutput": "xf_train._trainer_eval",
    "Trainer": "xf_train._trainer",
    "DefaultFlowCallback": "xf_train._callbacks",
    "EarlyStoppingCallback": "xf_train._callbacks",
    "PrinterCallback": "xf_train._callbacks",
    "ProgressCallback": "xf_train._callbacks",
    "TrainerCallback": "xf_train._callbacks",
    "TrainerControl": "xf_train._callbacks",
    "TrainerState": "xf_train._callbacks",
    "TensorBoardCallback": "xf_train._loggers",
}

if TYPE_CHECKING:  # the lazily exported names, as type checkers and IDEs should see them
    from xf_train._callbacks import (
        DefaultFlowCallback,
        EarlyStoppingCallback,
        PrinterCallback,
        ProgressCallback,
        TrainerCallback,
        TrainerControl,
        TrainerState,
    )
    from xf_train._collators import (
        DataCollatorForLanguageModeling,
        DataCollatorForSeq2Seq,
        DataCollatorForTokenClassification,
        DataCollatorWithPadding,
        default_data_collator,
    )
    from xf_train._debug import DebugUnderflowOverflow
    from xf_train._loggers import TensorBoardCallback
    from xf_train._optim import create_optimizer, get_decay_parameter_names, get_scheduler
    from xf_train._trainer import Trainer
    from xf_train._trainer_eval import EvalPrediction, PredictionOutput
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
    "DefaultFlowCallback",
    "EarlyStoppingCallback",
    "EvalPrediction",
    "PredictionOutput",
    "PrinterCallback",
    "ProgressCallback",
    "TensorBoardCallback",
    "Trainer",
    "TrainerCallback",
    "TrainerControl",
    "TrainerState",
    "TrainingArguments",
    "__version__",
    "create_optimizer",
    "default_data_collator",
    "get_decay_parameter_names",
    "get_scheduler",
]
