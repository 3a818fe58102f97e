"""AutoTokenizer and the tokenization workflow on the Rust `tokenizers` library; no torch needed."""

__version__ = "0.1.0"

__all__ = ["__version__"]
