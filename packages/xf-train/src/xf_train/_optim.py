"""AdamW with transformers' parameter groups, and the learning-rate schedules of ``get_scheduler``.

Schedules are plain functions ``step -> factor`` in :data:`SCHEDULES`, wrapped in ``LambdaLR`` so the
scheduler's ``state_dict`` checkpoints like any torch scheduler. Factors are transformers' formulas.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable

import torch
from torch import nn

from xf_train.errors import TrainingArgumentsError

__all__ = ["SCHEDULES", "create_optimizer", "get_decay_parameter_names", "get_scheduler"]

# Parameters whose (lower-cased) name matches one of these get no weight decay, nor do LayerNorm parameters.
_NO_DECAY = [
    re.compile(p) for p in (r"bias", r"layernorm", r"rmsnorm", r"(?:^|\.)norm(?:$|\.)", r"_norm(?:$|\.)")
]


def get_decay_parameter_names(model: nn.Module) -> list[str]:
    """Names of the parameters that weight decay applies to: all but biases, norm weights and LayerNorms."""
    in_layernorm = {
        f"{prefix}.{name}" if prefix else name
        for prefix, module in model.named_modules()
        if isinstance(module, nn.LayerNorm)
        for name, _ in module.named_parameters(recurse=False)
    }
    return [
        name
        for name, _ in model.named_parameters()
        if name not in in_layernorm and not any(p.search(name.lower()) for p in _NO_DECAY)
    ]


def create_optimizer(
    model: nn.Module,
    *,
    lr: float,
    weight_decay: float = 0.0,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    fused: bool = False,
    optim: str = "adamw_torch",
) -> torch.optim.Optimizer:
    """The optimizer ``optim`` (transformers' ``TrainingArguments.optim`` names) over two groups: decayed
    weights, then everything else with no decay.

    ``adamw_torch``/``adamw_torch_fused``: ``torch.optim.AdamW``; ``sgd``: ``torch.optim.SGD``;
    ``adafactor``: ``torch.optim.Adafactor`` with the given learning rate (torch's Adafactor, not
    transformers' relative-step variant); ``adamw_bnb_8bit`` (alias ``adamw_8bit``): bitsandbytes'
    ``AdamW8bit``."""
    decay = set(get_decay_parameter_names(model))
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups = [
        {"params": [p for n, p in params if n in decay], "weight_decay": weight_decay},
        {"params": [p for n, p in params if n not in decay], "weight_decay": 0.0},
    ]
    if optim in ("adamw_torch", "adamw_torch_fused"):
        return torch.optim.AdamW(
            groups, lr=lr, betas=betas, eps=eps, fused=fused or optim == "adamw_torch_fused" or None
        )
    if optim == "sgd":
        return torch.optim.SGD(groups, lr=lr)
    if optim == "adafactor":
        return torch.optim.Adafactor(groups, lr=lr)
    if optim in ("adamw_bnb_8bit", "adamw_8bit"):
        try:
            from bitsandbytes.optim.adamw import AdamW8bit
        except ImportError as e:
            raise TrainingArgumentsError(
                f"optim={optim!r} needs bitsandbytes, which is not installed; pip install bitsandbytes or use "
                "adamw_torch.",
                key="optim",
            ) from e
        return AdamW8bit(groups, lr=lr, betas=betas, eps=eps)
    raise TrainingArgumentsError(
        f"optim={optim!r} is not one of adamw_torch, adamw_torch_fused, sgd, adafactor, adamw_bnb_8bit.",
        key="optim",
    )


def _warmup(step: int, warmup: int) -> float:
    return float(step) / float(max(1, warmup))


def _linear(step: int, *, warmup: int, total: int) -> float:
    if step < warmup:
        return _warmup(step, warmup)
    return max(0.0, float(total - step) / float(max(1, total - warmup)))


def _cosine(step: int, *, warmup: int, total: int, num_cycles: float = 0.5) -> float:
    if step < warmup:
        return _warmup(step, warmup)
    progress = float(step - warmup) / float(max(1, total - warmup))
    return max(0.0, 0.5 * (1.0 + math.cos(math.pi * float(num_cycles) * 2.0 * progress)))


def _constant(step: int, *, warmup: int, total: int) -> float:
    return 1.0


def _constant_with_warmup(step: int, *, warmup: int, total: int) -> float:
    return _warmup(step, warmup) if step < warmup else 1.0


def _polynomial(
    step: int, *, warmup: int, total: int, lr_init: float, lr_end: float = 1e-7, power: float = 1.0
) -> float:
    if step < warmup:
        return _warmup(step, warmup)
    if step > total:
        return lr_end / lr_init
    remaining = 1 - (step - warmup) / (total - warmup)
    return ((lr_init - lr_end) * remaining**power + lr_end) / lr_init


SCHEDULES: dict[str, Callable[..., float]] = {
    "linear": _linear,
    "cosine": _cosine,
    "constant": _constant,
    "constant_with_warmup": _constant_with_warmup,
    "polynomial": _polynomial,
}


def get_scheduler(
    name: str,
    optimizer: torch.optim.Optimizer,
    *,
    num_warmup_steps: int = 0,
    num_training_steps: int | None = None,
    scheduler_specific_kwargs: dict[str, float] | None = None,
) -> torch.optim.lr_scheduler.LambdaLR:
    """The ``LambdaLR`` of schedule ``name`` (one of :data:`SCHEDULES`), as transformers' ``get_scheduler``."""
    if name not in SCHEDULES:
        raise TrainingArgumentsError(
            f"lr_scheduler_type={name!r} is not one of {', '.join(SCHEDULES)}.", key="lr_scheduler_type"
        )
    if num_training_steps is None and name not in ("constant", "constant_with_warmup"):
        raise TrainingArgumentsError(
            f"the {name!r} schedule needs num_training_steps; pass it (max_steps or epochs x steps per epoch).",
            key="num_training_steps",
        )
    kwargs = dict(scheduler_specific_kwargs or {})
    if name == "polynomial":
        lr_init = optimizer.defaults["lr"]
        lr_end = kwargs.get("lr_end", 1e-7)
        if not lr_init > lr_end:
            raise TrainingArgumentsError(
                f"the polynomial schedule needs learning_rate ({lr_init}) > lr_end ({lr_end}).", key="lr_end"
            )
        kwargs["lr_init"] = lr_init
    factor = functools.partial(
        SCHEDULES[name], warmup=num_warmup_steps, total=num_training_steps or 0, **kwargs
    )
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
