"""TrainingArguments, data collators and the Trainer for xf-load models.

``import xf_train`` is cheap: the public names load their modules (and torch) on first use.
"""

from collections.abc import Callable
from typing import Any

from xf_core.lazy import lazy_exports

__version__ = "0.2.0"

_EXPORTS = {
    "TrainingArguments": "xf_train._training_args",
    "DataCollatorForLanguageModeling": "xf_train._collators",
    "DataCollatorWithPadding": "xf_train._collators",
    "default_data_collator": "xf_train._collators",
    "create_optimizer": "xf_train._optim",
    "get_decay_parameter_names": "xf_train._optim",
    "get_scheduler": "xf_train._optim",
    "DebugUnderflowOverflow": "xf_train._debug",
    "EvalPrediction": "xf_train._trainer",
    "PredictionOutput": "xf_train._trainer",
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

__getattr__: Callable[[str], Any]
__dir__: Callable[[], list[str]]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

__all__ = ["__version__", *sorted(_EXPORTS)]
