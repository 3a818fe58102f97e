"""Configs, checkpoint discovery, fast weight loading and saving, model families and generation."""

__version__ = "0.1.0"

__all__ = ["__version__"]
