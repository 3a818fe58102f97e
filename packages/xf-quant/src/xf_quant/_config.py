"""``BitsAndBytesConfig``: transformers' field names and JSON layout, validated when it is built.

The dict it writes (``to_dict``) has exactly the keys transformers writes into ``config.json`` under
``quantization_config``, so a checkpoint saved by either library loads in the other. Unlike transformers,
a wrong value fails here, naming the field, instead of being silently replaced or failing deep in loading.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from xf_core.logging import get_logger
from xf_quant.errors import QuantizationConfigError

if TYPE_CHECKING:
    import torch

__all__ = ["BitsAndBytesConfig"]

logger = get_logger(__name__)

_QUANT_TYPES = ("fp4", "nf4")
_COMPUTE_DTYPES = ("float32", "float16", "bfloat16")
_STORAGE_DTYPES = ("uint8", "int8", "float16", "bfloat16", "float32", "float64")
# Keys transformers writes besides the fields: the private mirrors of the two flags and the method.
_DERIVED_KEYS = ("_load_in_4bit", "_load_in_8bit", "quant_method")


def _dtype(value: Any, *, name: str, allowed: tuple[str, ...], default: str) -> torch.dtype:
    """``value`` (a torch.dtype, its name, or None for ``default``) as a torch.dtype in ``allowed``."""
    import torch

    if value is None:
        value = default
    if isinstance(value, torch.dtype):
        text = str(value).removeprefix("torch.")
    elif isinstance(value, str):
        text = value.removeprefix("torch.")
    else:
        raise QuantizationConfigError(
            f"BitsAndBytesConfig.{name} must be a torch.dtype or its name (one of {', '.join(allowed)}), "
            f"got {value!r} of type {type(value).__name__}.",
            key=name,
        )
    if text not in allowed:
        raise QuantizationConfigError(
            f"BitsAndBytesConfig.{name}={value!r} is not supported; use one of {', '.join(allowed)}.",
            key=name,
        )
    return getattr(torch, text)


@dataclass(kw_only=True)
class BitsAndBytesConfig:
    """How to quantize a model with bitsandbytes: 4-bit (``load_in_4bit``, NF4 or FP4) or 8-bit LLM.int8().

    Exactly one of ``load_in_4bit`` and ``load_in_8bit`` must be True. ``llm_int8_skip_modules`` names
    modules to keep in full precision *in addition to* the output head (transformers replaces the default
    instead); a name matches whole components of a module path (``"mlp"`` matches ``layers.0.mlp.down_proj``).

    >>> BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4").quantization_method()
    'nf4'
    """

    quant_method: ClassVar[str] = "bitsandbytes"

    load_in_8bit: bool = False
    load_in_4bit: bool = False
    llm_int8_threshold: float = 6.0
    llm_int8_skip_modules: list[str] | None = None
    llm_int8_enable_fp32_cpu_offload: bool = False
    llm_int8_has_fp16_weight: bool = False
    bnb_4bit_compute_dtype: torch.dtype | str | None = None
    bnb_4bit_quant_type: Literal["fp4", "nf4"] = "fp4"
    bnb_4bit_use_double_quant: bool = False
    bnb_4bit_quant_storage: torch.dtype | str | None = None
    # Keys of a config.json this version does not know; written back unchanged by ``to_dict``.
    extra: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in (
            "load_in_8bit",
            "load_in_4bit",
            "llm_int8_enable_fp32_cpu_offload",
            "llm_int8_has_fp16_weight",
            "bnb_4bit_use_double_quant",
        ):
            if not isinstance(getattr(self, name), bool):
                raise QuantizationConfigError(
                    f"BitsAndBytesConfig.{name} must be True or False, got {getattr(self, name)!r}.", key=name
                )
        if self.load_in_4bit and self.load_in_8bit:
            raise QuantizationConfigError(
                "BitsAndBytesConfig has both load_in_4bit=True and load_in_8bit=True; set only one of them.",
                key="load_in_4bit",
            )
        if not (self.load_in_4bit or self.load_in_8bit):
            raise QuantizationConfigError(
                "BitsAndBytesConfig has neither load_in_4bit nor load_in_8bit set; pass load_in_4bit=True "
                "(NF4/FP4) or load_in_8bit=True (LLM.int8()).",
                key="load_in_4bit",
            )
        if isinstance(self.llm_int8_threshold, bool) or not isinstance(self.llm_int8_threshold, int | float):
            raise QuantizationConfigError(
                f"BitsAndBytesConfig.llm_int8_threshold must be a number, got {self.llm_int8_threshold!r}.",
                key="llm_int8_threshold",
            )
        self.llm_int8_threshold = float(self.llm_int8_threshold)
        skip = self.llm_int8_skip_modules
        if skip is not None:
            if isinstance(skip, str) or not all(isinstance(s, str) for s in skip):
                raise QuantizationConfigError(
                    "BitsAndBytesConfig.llm_int8_skip_modules must be a list of module names such as "
                    f"['lm_head', 'mlp'], got {skip!r}.",
                    key="llm_int8_skip_modules",
                )
            self.llm_int8_skip_modules = list(skip)
        if self.bnb_4bit_quant_type not in _QUANT_TYPES:
            raise QuantizationConfigError(
                f"BitsAndBytesConfig.bnb_4bit_quant_type={self.bnb_4bit_quant_type!r} is not a 4-bit type; "
                f"use one of {', '.join(_QUANT_TYPES)}.",
                key="bnb_4bit_quant_type",
            )
        self.bnb_4bit_compute_dtype = _dtype(
            self.bnb_4bit_compute_dtype,
            name="bnb_4bit_compute_dtype",
            allowed=_COMPUTE_DTYPES,
            default="float32",
        )
        self.bnb_4bit_quant_storage = _dtype(
            self.bnb_4bit_quant_storage,
            name="bnb_4bit_quant_storage",
            allowed=_STORAGE_DTYPES,
            default="uint8",
        )

    def quantization_method(self) -> Literal["llm_int8", "nf4", "fp4"]:
        """``"llm_int8"`` for 8-bit, else the 4-bit type."""
        return "llm_int8" if self.load_in_8bit else self.bnb_4bit_quant_type

    @property
    def bits(self) -> Literal[4, 8]:
        return 8 if self.load_in_8bit else 4

    def to_dict(self) -> dict[str, Any]:
        """The ``quantization_config`` entry of config.json, key for key as transformers writes it."""
        out: dict[str, Any] = dict(self.extra)
        for f in dataclasses.fields(self):
            if f.name != "extra":
                out[f.name] = getattr(self, f.name)
        out["llm_int8_skip_modules"] = (
            list(self.llm_int8_skip_modules) if self.llm_int8_skip_modules else None
        )
        out["bnb_4bit_compute_dtype"] = str(self.bnb_4bit_compute_dtype).removeprefix("torch.")
        out["bnb_4bit_quant_storage"] = str(self.bnb_4bit_quant_storage).removeprefix("torch.")
        out["_load_in_4bit"] = self.load_in_4bit
        out["_load_in_8bit"] = self.load_in_8bit
        out["quant_method"] = self.quant_method
        return dict(sorted(out.items()))

    def to_json_string(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BitsAndBytesConfig:
        """Build from a ``quantization_config`` dict (config.json, or transformers' ``to_dict()``).

        Unknown keys are kept in ``extra`` and written back by :meth:`to_dict`; they change nothing.
        """
        data = dict(data)
        method = data.get("quant_method", cls.quant_method)
        if str(method).lower() not in ("bitsandbytes", "quantizationmethod.bits_and_bytes"):
            raise QuantizationConfigError(
                f"quantization_config has quant_method={method!r}, not 'bitsandbytes'; "
                "BitsAndBytesConfig cannot read it.",
                key="quant_method",
            )
        for private in ("_load_in_4bit", "_load_in_8bit"):
            public = private[1:]
            if private in data and public not in data:
                data[public] = data[private]
            elif private in data and data[private] != data[public]:
                raise QuantizationConfigError(
                    f"quantization_config has {public}={data[public]!r} but {private}={data[private]!r}; "
                    f"remove {private} or make the two agree.",
                    key=public,
                )
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        known = {k: v for k, v in data.items() if k in names}
        extra = {k: v for k, v in data.items() if k not in names and k not in _DERIVED_KEYS}
        if extra:
            logger.info(
                "quantization_config keys not used by BitsAndBytesConfig (kept as is): %s", sorted(extra)
            )
        return cls(**known, extra=extra)

    def __repr__(self) -> str:
        return f"BitsAndBytesConfig {self.to_json_string()}"
