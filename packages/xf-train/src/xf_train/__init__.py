"""TrainingArguments, data collators and the Trainer for xf-load models."""

__version__ = "0.1.0"

__all__ = ["__version__"]
