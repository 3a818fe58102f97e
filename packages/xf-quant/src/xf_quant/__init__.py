"""bitsandbytes 4-bit and 8-bit quantization for xf-load models."""

__version__ = "0.1.0"

__all__ = ["__version__"]
