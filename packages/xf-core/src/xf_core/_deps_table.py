"""Version ranges of every third-party dependency of the xf packages.

Generated from packages/*/pyproject.toml by `uv run xf-repotools deps-table --fix`; do not edit by hand.
"""

DEPS: dict[str, str] = {
    "accelerate": ">=1.0",
    "bitsandbytes": ">=0.43,>=0.45",
    "huggingface-hub": ">=0.34",
    "jinja2": ">=3.1",
    "libcst": ">=1.4",
    "matplotlib": ">=3.8",
    "numpy": ">=1.26",
    "onnx": ">=1.17",
    "onnxruntime": ">=1.20",
    "onnxscript": ">=0.3",
    "packaging": ">=23",
    "pillow": ">=10",
    "pytest": ">=8.3",
    "pyyaml": ">=6",
    "ruff": ">=0.12",
    "safetensors": ">=0.4.3",
    "tensorboard": ">=2.14",
    "tokenizers": ">=0.21",
    "torch": ">=2.4,>=2.7",
    "tqdm": ">=4.66",
}
