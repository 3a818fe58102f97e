"""The compiled decode step: a persistent compile cache, bucketed shapes, ``compile="auto"`` and the time
compilation took.

**Persistent cache.** Inductor's FX-graph cache and AOTAutograd's cache store what a compilation produced (the
generated kernels, the compiled C++/Triton modules) on disk, keyed by the graph, the shapes and the torch
version, not by the weights. xf points both at one directory, :func:`compile_cache_dir` (``$XF_COMPILE_CACHE``,
else ``$XDG_CACHE_HOME/xf/compile``, else ``~/.cache/xf/compile``), so a second process that compiles the same
decode step loads the kernels instead of generating them again; only dynamo's tracing of the Python code is
redone. A ``TORCHINDUCTOR_CACHE_DIR`` the user set is kept when ``XF_COMPILE_CACHE`` is unset;
``XF_COMPILE_CACHE=""`` leaves torch's own cache settings alone. (Torch's "mega-cache",
``torch.compiler.save_cache_artifacts``, packs the same entries to move them to another machine; on one
machine the directory is all it would add.)

**Buckets.** A generate-made static cache gets :func:`bucket_length` slots (64, 128, 256, then multiples of
256) and, for greedy search and sampling of a decoder-only model, :func:`bucket_batch` rows (powers of two),
so prompts of other lengths, other ``max_new_tokens`` and other batch sizes reuse the compiled step. Rows
beyond the batch are padding: the step fills them with a dummy token and drops their logits; the prefill
stays eager and writes only the real rows.

**``compile="auto"``** compiles when the job is long enough to pay for it (:func:`should_compile`).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import torch

from xf_core.logging import get_logger

from ..cache import Cache, StaticCache
from ._config import GenerationConfig

__all__ = [
    "AUTO_MIN_TOKENS_COLD",
    "AUTO_MIN_TOKENS_WARM",
    "CompiledStep",
    "auto_compile",
    "bucket_batch",
    "bucket_length",
    "compile_cache_dir",
    "compiled_step",
    "enable_compile_cache",
    "should_compile",
    "step_key",
    "step_options",
]

logger = get_logger(__name__)

CACHE_ENV = "XF_COMPILE_CACHE"

# compile="auto": compile when rows x max_new_tokens reaches these. Measured on a loaded 2-core CPU with a
# 125M Llama: a first compilation costs about as much as ~1000 eager decode steps, loading it from the cache
# about ~100; a compiled step saves 20-30% of an eager one.
AUTO_MIN_TOKENS_COLD = 8192
AUTO_MIN_TOKENS_WARM = 512


# ---------------------------------------------------------------------------------------------- the cache


def compile_cache_dir() -> Path | None:
    """Where compiled decode steps are kept: ``$XF_COMPILE_CACHE``, else a ``$TORCHINDUCTOR_CACHE_DIR`` the user
    set, else ``$XDG_CACHE_HOME/xf/compile``, else ``~/.cache/xf/compile``. ``None`` when ``XF_COMPILE_CACHE``
    is set to an empty string (torch's own settings)."""
    explicit = os.environ.get(CACHE_ENV)
    if explicit is not None:
        return Path(explicit).expanduser() if explicit.strip() else None
    inductor = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    if inductor:
        from torch._inductor.runtime.cache_dir_utils import default_cache_dir

        if os.path.abspath(inductor) != os.path.abspath(default_cache_dir()):  # not the value torch filled in
            return Path(inductor)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "xf" / "compile"


def enable_compile_cache() -> Path | None:
    """Turn on inductor's FX-graph cache and AOTAutograd's cache and point them at :func:`compile_cache_dir`
    (``TORCHINDUCTOR_CACHE_DIR``); return the directory, or ``None`` when the cache is left to torch."""
    directory = compile_cache_dir()
    if directory is None:
        return None
    import torch._functorch.config as functorch_config
    import torch._inductor.config as inductor_config

    inductor_config.fx_graph_cache = True
    functorch_config.enable_autograd_cache = True
    directory.mkdir(parents=True, exist_ok=True)
    if os.environ.get("TORCHINDUCTOR_CACHE_DIR") != str(directory):
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(directory)
        logger.debug("compile cache at %s", directory)
    return directory


# ---------------------------------------------------------------------------------------------- buckets


def bucket_length(n: int) -> int:
    """The static cache length for ``n`` positions: 64, 128 or 256 when ``n`` fits, else ``n`` rounded up to a
    multiple of 256."""
    if n <= 0:
        raise ValueError(f"bucket_length({n}): needs at least one position")
    for size in (64, 128, 256):
        if n <= size:
            return size
    return -(-n // 256) * 256


def bucket_batch(rows: int) -> int:
    """The batch rows a compiled step runs for ``rows`` sequences: the next power of two."""
    if rows <= 0:
        raise ValueError(f"bucket_batch({rows}): needs at least one row")
    return 1 << (rows - 1).bit_length()


# ---------------------------------------------------------------------------------------------- auto


def should_compile(*, rows: int, max_new_tokens: int, warm: bool) -> bool:
    """``compile="auto"``'s rule: compile when ``rows * max_new_tokens`` (the most tokens the call decodes) is
    at least :data:`AUTO_MIN_TOKENS_WARM` when a compiled step for these shapes is already in the cache
    (``warm``), or :data:`AUTO_MIN_TOKENS_COLD` when it must be compiled from scratch."""
    return rows * max_new_tokens >= (AUTO_MIN_TOKENS_WARM if warm else AUTO_MIN_TOKENS_COLD)


def auto_compile(
    model: torch.nn.Module,
    config: GenerationConfig,
    past_key_values: Cache | None,
    rows: int,
    prompt_length: int,
    padded: bool,
    num_beams: int,
    encoder_decoder: bool,
) -> bool:
    """``compile="auto"``: on when the cache can be static and :func:`._compile.should_compile` says the job
    amortises the compilation (warm: a step of these bucketed shapes was compiled before, here or in the
    cache directory)."""
    assert config.max_length is not None
    if not config.use_cache or config.cache_implementation == "dynamic":
        return False
    if past_key_values is not None and not isinstance(past_key_values, StaticCache):
        return False
    if isinstance(past_key_values, StaticCache):
        cache_rows, cache_len = rows, past_key_values.max_cache_len
    else:
        pad_rows = num_beams == 1 and not encoder_decoder
        cache_rows = bucket_batch(rows) if pad_rows else rows
        cache_len = bucket_length(config.max_length)
    key = step_key(
        model, rows=cache_rows, cache_len=cache_len, padded=padded, options=step_options(model, {})
    )
    warm = is_warm(key)
    decision = should_compile(rows=rows, max_new_tokens=config.max_length - prompt_length, warm=warm)
    logger.info(
        "compile='auto': %s (%d rows x %d new tokens, %s)",
        "compiling the decode step" if decision else "eager",
        rows,
        config.max_length - prompt_length,
        "a compiled step is cached" if warm else "nothing cached",
    )
    return decision


def step_key(
    model: torch.nn.Module, *, rows: int, cache_len: int, padded: bool, options: dict[str, Any]
) -> str:
    """What identifies one compiled decode step across processes: the model's class, configuration, dtype and
    device kind, the bucketed shapes, the compile options and the torch version (not the weights)."""
    config = getattr(model, "config", None)
    fields = {k: v for k, v in vars(config).items() if not k.startswith("_")} if config is not None else {}
    param = next(model.parameters())
    text = json.dumps(
        [
            torch.__version__,
            f"{type(model).__module__}.{type(model).__qualname__}",
            sorted((k, repr(v)) for k, v in fields.items()),
            str(param.dtype),
            param.device.type,
            rows,
            cache_len,
            padded,
            repr(sorted(options.items())),
        ]
    )
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def is_warm(key: str) -> bool:
    """Whether this process or an earlier one (through the cache directory) compiled the step ``key``."""
    if key in _WARM:
        return True
    directory = compile_cache_dir()
    return directory is not None and (directory / "xf-steps" / f"{key}.json").is_file()


def _mark_warm(key: str, seconds: float) -> None:
    _WARM.add(key)
    directory = compile_cache_dir()
    if directory is None:
        return
    try:
        (directory / "xf-steps").mkdir(parents=True, exist_ok=True)
        (directory / "xf-steps" / f"{key}.json").write_text(
            json.dumps({"compile_seconds": round(seconds, 3)})
        )
    except OSError as err:  # a read-only cache only costs auto's guess
        logger.debug("could not record compiled step %s: %s", key, err)


_WARM: set[str] = set()


# ---------------------------------------------------------------------------------------------- the step


class CompiledStep:
    """``decode_one_token`` compiled as one full graph (a graph break is an error, not a slowdown), called
    like it. Pads a batch up to the cache's rows (see the module notes), and adds the wall time of the calls
    during which dynamo compiled to :attr:`compile_seconds`."""

    def __init__(self, fn: Any, key: str | None = None) -> None:
        self.fn = fn
        self.key = key
        self.compile_seconds = 0.0

    def __call__(
        self,
        model: torch.nn.Module,
        token: torch.Tensor,
        *,
        attention_mask: torch.Tensor | None,
        position_ids: torch.Tensor | None,
        cache: Any,
        cache_position: torch.Tensor,
    ) -> torch.Tensor:
        rows = token.shape[0]
        # Slices of the (rows, max_length) buffers have max_length as a stride, and dynamo guards on strides:
        # contiguous copies keep other max_new_tokens in the same compiled graph.
        token = token.contiguous()
        position_ids = None if position_ids is None else position_ids.contiguous()
        cache_rows = _cache_rows(cache)
        if cache_rows > rows:  # bucketed batch: dummy rows, whose logits are dropped
            extra = cache_rows - rows
            token = torch.cat([token, token[-1:].expand(extra, -1)])
            if attention_mask is not None:
                attention_mask = torch.cat([attention_mask, attention_mask[-1:].expand(extra, -1)])
            if position_ids is not None:
                position_ids = torch.cat([position_ids, position_ids[-1:].expand(extra, -1)])
        graphs, fx_before = _graph_count(), _fx_counts()
        start = time.perf_counter()
        logits = self.fn(
            model,
            token,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            cache_position=cache_position,
        )
        if _graph_count() != graphs:  # dynamo compiled (or loaded from the cache) during this call
            seconds = time.perf_counter() - start
            self.compile_seconds += seconds
            _report(seconds, fx_before, token.shape[0], getattr(cache, "max_cache_len", None))
            if self.key is not None:
                _mark_warm(self.key, seconds)
        return logits[:rows]


_COMPILED: dict[str, Any] = {}


def compiled_step(model: torch.nn.Module, options: dict[str, Any], key: str | None = None) -> CompiledStep:
    """The compiled step for ``options`` (extra ``torch.compile`` arguments; default inductor, with CUDA graphs
    on GPU: ``mode="reduce-overhead"``). One ``torch.compile`` per options; dynamo guards per model and shape.
    ``key`` (:func:`step_key`) is recorded in the cache directory once the step has compiled."""
    from ._decode import decode_one_token

    enable_compile_cache()
    options = step_options(model, options)
    name = repr(sorted(options.items()))
    if name not in _COMPILED:
        import torch._dynamo.config as dynamo_config

        # one entry per (model, batch bucket, length bucket, padded or not): room for a few dozen
        dynamo_config.recompile_limit = max(dynamo_config.recompile_limit, 64)
        _COMPILED[name] = torch.compile(decode_one_token, fullgraph=True, dynamic=False, **options)
    return CompiledStep(_COMPILED[name], key)


def step_options(model: torch.nn.Module, options: dict[str, Any]) -> dict[str, Any]:
    """The ``torch.compile`` arguments of the step: ``options``, or CUDA graphs (``mode="reduce-overhead"``)
    when none are given and the model is on a GPU."""
    if not options and next(model.parameters()).device.type == "cuda":
        return {"mode": "reduce-overhead"}
    return dict(options)


def _cache_rows(cache: Any) -> int:
    static = getattr(cache, "self_attention_cache", cache)
    if isinstance(static, StaticCache) and static.pad_batch and static.max_batch_size is not None:
        return static.max_batch_size
    return 0


def _graph_count() -> int:
    from torch._dynamo.utils import counters

    return counters["stats"]["unique_graphs"]


def _fx_counts() -> tuple[int, int]:
    from torch._dynamo.utils import counters

    return counters["inductor"]["fxgraph_cache_hit"], counters["inductor"]["fxgraph_cache_miss"]


def _report(seconds: float, fx_before: tuple[int, int], rows: int, cache_len: int | None) -> None:
    hits, misses = (after - before for after, before in zip(_fx_counts(), fx_before))
    source = "loaded from the compile cache" if hits and not misses else "compiled"
    logger.info(
        "decode step %s in %.1f s (batch %d, cache length %s; cache dir %s)",
        source,
        seconds,
        rows,
        cache_len,
        os.environ.get("TORCHINDUCTOR_CACHE_DIR", "torch's default"),
    )
