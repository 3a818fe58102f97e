"""The `pipeline()` factory, its tasks, and the `xf pipeline` command."""

__version__ = "0.1.0"

__all__ = ["__version__"]
