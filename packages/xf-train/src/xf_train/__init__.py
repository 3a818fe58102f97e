"""TrainingArguments, data collators and the Trainer for xf-load models.

``import xf_train`` is cheap: the public names load their modules (and torch) on first use.
"""

from collections.abc import Callable
from importlib import metadata as _metadata
from typing import Any

from xf_core.lazy import lazy_exports

__version__ = _metadata.version("xf-train")

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
    "Trainer": "xf_train._trainer",
    "TrainerState": "xf_train._trainer",
}

__getattr__: Callable[[str], Any]
__dir__: Callable[[], list[str]]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

__all__ = ["__version__", *sorted(_EXPORTS)]
