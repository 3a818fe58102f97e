"""``xf train``: fine-tune a causal LM or a sequence classifier on a local JSONL, JSON, CSV/TSV or text file.

Options are the fields of :class:`TrainCommandArguments` (``--learning_rate 1e-4`` or ``--learning-rate``),
read by xf-core's :class:`~xf_core.ArgumentParser`; ``--config FILE`` (YAML or JSON, the same names as keys)
supplies values that flags given on the command line override. Cheap to import: torch, the model and the
tokenizer load only when the command runs. The tokenizer is read with xf-tokenize, which xf-train does not
depend on (the two sit side by side in the layer order): ``xf train`` says to install it when it is missing.

Data: ``.jsonl`` (or ``.json``, one object per line or one array of objects) and ``.csv``/``.tsv`` rows give
the text from ``--text_column`` and, for ``--task sequence-classification``, the label from ``--label_column``
(integers, or names that become ``id2label`` sorted by name); a ``.txt`` file is one example per non-blank
line (causal LM only). Each example is tokenized alone and truncated to ``--max_length`` tokens.

The run saves checkpoints to ``--output_dir`` as the Trainer schedules them; ``--resume`` continues from the
newest one. At the end the model and tokenizer are saved to ``--output_dir`` (with a model card) and the paths
of the model, the JSONL log and the loss plot (when the Trainer wrote them) are printed. Mistakes in the
options or the data end as one line (``xf train: error: ...``), as every ``xf`` command.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from xf_core.argparser import ArgumentParser
from xf_core.cli import write_output
from xf_core.errors import XfFileNotFoundError, XfValueError

__all__ = ["TrainCommandArguments", "read_examples", "setup", "train_command"]

Task = Literal["causal-lm", "sequence-classification"]
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
_DATA_SUFFIXES = (".jsonl", ".json", ".csv", ".tsv", ".txt")
_NUMBER_TYPES: dict[str, Callable[[str], Any]] = {
    "int": int,
    "float": float,
    "int | None": int,
    "float | None": float,
}


def _help(text: str, **extra: Any) -> dict[str, Any]:
    return {"help": text, **extra}


@dataclass
class TrainCommandArguments:
    """The options of ``xf train``; the training ones keep :class:`~xf_train.TrainingArguments`' names and
    defaults."""

    model: str | None = field(default=None, metadata=_help("model directory or Hub repo id (required)"))
    train_file: str | None = field(
        default=None, metadata=_help("training data: .jsonl, .json, .csv, .tsv or .txt (required)")
    )
    task: Task = field(default="causal-lm", metadata=_help("what to fine-tune the model for"))
    validation_file: str | None = field(
        default=None, metadata=_help("evaluation data (same format); evaluated at the end")
    )
    output_dir: str = field(default="trainer_output", metadata=_help("checkpoints and the final model"))
    tokenizer: str | None = field(
        default=None, metadata=_help("tokenizer directory or repo id (default: --model)")
    )
    text_column: str = field(default="text", metadata=_help("the text's key or CSV column"))
    label_column: str = field(
        default="label", metadata=_help("the label's key or CSV column (classification)")
    )
    max_length: int = field(
        default=512, metadata=_help("tokens kept per example (longer ones are truncated)")
    )
    num_train_epochs: float = 3.0
    max_steps: int = field(default=-1, metadata=_help("optimizer steps; > 0 overrides num_train_epochs"))
    learning_rate: float = 5e-5
    per_device_train_batch_size: int = 8
    per_device_eval_batch_size: int = 8
    gradient_accumulation_steps: int = 1
    weight_decay: float = 0.0
    warmup_steps: float = field(default=0, metadata=_help("warmup steps; below 1: a ratio of all steps"))
    lr_scheduler_type: Literal["linear", "cosine", "constant", "constant_with_warmup", "polynomial"] = (
        "linear"
    )
    logging_steps: float = 500
    save_steps: float = 500
    eval_strategy: Literal["no", "steps", "epoch"] = field(
        default="no",
        metadata=_help("evaluate --validation_file during training too: every eval_steps, or epoch"),
    )
    eval_steps: float | None = field(
        default=None, metadata=_help("evaluate every N steps (default: logging_steps)")
    )
    save_total_limit: int | None = field(default=None, metadata=_help("keep at most this many checkpoints"))
    seed: int = 42
    bf16: bool = field(default=False, metadata=_help("bfloat16 autocast"))
    ignore_mismatched_sizes: bool = field(
        default=False, metadata=_help("re-initialise a classifier head whose size differs from the labels'")
    )
    resume: bool = field(default=False, metadata=_help("continue from the newest checkpoint in --output_dir"))
    resume_from_checkpoint: str | None = field(
        default=None, metadata=_help("continue from this checkpoint folder")
    )
    disable_tqdm: bool = field(default=False, metadata=_help("no progress bar", aliases=["--no-progress"]))
    nproc: int = field(
        default=1,
        metadata=_help(
            "processes: above 1, the run is relaunched under torchrun --standalone (data parallel)"
        ),
    )
    fsdp: str | None = field(
        default=None, metadata=_help("with --nproc: shard the model with FSDP (full_shard or shard_grad_op)")
    )

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):  # a YAML 1e-4 is a string; numbers from a file may be text
            value = getattr(self, f.name)
            number = _NUMBER_TYPES.get(str(f.type))
            if isinstance(value, str) and number is not None:
                try:
                    setattr(self, f.name, number(value))
                except ValueError as e:
                    raise XfValueError(f"--{f.name}: {value!r} is not a number.") from e
        if self.task not in ("causal-lm", "sequence-classification"):
            raise XfValueError(f"--task {self.task!r}: use causal-lm or sequence-classification.")
        if self.max_length < 1:
            raise XfValueError(f"--max_length must be at least 1, got {self.max_length}.")
        if self.nproc < 1:
            raise XfValueError(f"--nproc must be at least 1, got {self.nproc}.")


def setup(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    """Fine-tune a causal LM or a sequence classifier on a local JSONL/JSON/CSV/text file.

    Examples:
      xf train --model ./tiny-llama --train_file notes.txt --output_dir out --max_steps 100
      xf train --model ./minilm --task sequence-classification --train_file reviews.csv --output_dir out
      xf train --config train.yaml --resume
      xf train --model ./tiny-llama --train_file notes.txt --output_dir out --nproc 2
    """
    fields = ArgumentParser(TrainCommandArguments, add_help=False)
    defaults = {f.name: _default(f) for f in dataclasses.fields(TrainCommandArguments)}
    for action in fields._actions:
        if action.dest in defaults:
            # SUPPRESS: a flag not given leaves no value, so --config's value (or the default) stands
            if defaults[action.dest] is not None and action.default is not False:
                shown = f"default: {defaults[action.dest]}"
                action.help = f"{action.help} ({shown})" if action.help else shown
            action.default = argparse.SUPPRESS
            action.required = False
    parser._add_container_actions(fields)  # what argparse's parents=[...] does, on a parser made by `xf`
    parser.add_argument("--config", metavar="FILE", help="YAML or JSON file of options; flags override it")

    def run(args: argparse.Namespace) -> int:
        return train_command(_arguments(fields, args))

    return run


def _launch(cmd: TrainCommandArguments) -> int:
    """Run this command in ``cmd.nproc`` processes: ``python -m torch.distributed.run --standalone
    --nproc_per_node N -m xf_core.cli train --config <the options as JSON>``; returns torchrun's exit code.
    Process 0 prints the summary; a failing process's traceback is on stderr."""
    import subprocess
    import sys
    import tempfile

    with tempfile.TemporaryDirectory(prefix="xf-train-") as tmp:
        config = Path(tmp) / "train.json"
        config.write_text(json.dumps(dataclasses.asdict(cmd)))
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
        command = [
            *launcher,
            f"--nproc_per_node={cmd.nproc}",
            "-m",
            "xf_core.cli",
            "train",
            "--config",
            str(config),
        ]
        return subprocess.run(command, check=False).returncode


def _default(f: dataclasses.Field) -> Any:
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


def _arguments(fields: ArgumentParser, args: argparse.Namespace) -> TrainCommandArguments:
    given = {
        k: v
        for k, v in vars(args).items()
        if k in {f.name for f in dataclasses.fields(TrainCommandArguments)}
    }
    if args.config is None:
        return TrainCommandArguments(**given)
    path = Path(args.config)
    read = fields.parse_yaml_file if path.suffix.lower() in (".yaml", ".yml") else fields.parse_json_file
    try:
        (from_file,) = read(path)
    except XfValueError as e:
        message = str(e)
        raise XfValueError(message if message.startswith(str(path)) else f"{path}: {message}") from e
    return dataclasses.replace(from_file, **given)


def train_command(cmd: TrainCommandArguments) -> int:
    """Run ``xf train`` with ``cmd``; return the exit code (errors are raised as xf errors)."""
    if cmd.model is None or cmd.train_file is None:
        missing = "--model" if cmd.model is None else "--train_file"
        raise XfValueError(f"{missing} is required (a flag, or a key of the --config file).")
    if cmd.eval_strategy != "no" and cmd.validation_file is None:
        raise XfValueError(f"--eval_strategy {cmd.eval_strategy} needs a --validation_file to evaluate on.")
    if cmd.nproc > 1 and "WORLD_SIZE" not in os.environ:
        return _launch(cmd)
    output_dir = Path(cmd.output_dir)
    resume = _resume_point(cmd, output_dir)
    tokenizer = _load_tokenizer(cmd)
    classify = cmd.task == "sequence-classification"
    train_rows = read_examples(cmd.train_file, cmd, labelled=classify)
    eval_rows = read_examples(cmd.validation_file, cmd, labelled=classify) if cmd.validation_file else None
    labels = _label_names(train_rows + (eval_rows or [])) if classify else None
    num_labels = (
        (len(labels) if labels else max(r["label"] for r in train_rows + (eval_rows or [])) + 1)
        if classify
        else 0
    )
    model = _load_model(cmd, tokenizer, labels, num_labels)

    import inspect

    from xf_train import DataCollatorForLanguageModeling, DataCollatorWithPadding, Trainer, TrainingArguments
    from xf_train._callbacks import PrinterCallback

    accepted = set(inspect.signature(model.forward).parameters)
    encode = _encoder(tokenizer, cmd.max_length, accepted, labels)
    train_dataset = [encode(row) for row in train_rows]
    eval_dataset = [encode(row) for row in eval_rows] if eval_rows is not None else None
    args = TrainingArguments(
        output_dir=str(output_dir),
        num_train_epochs=cmd.num_train_epochs,
        max_steps=cmd.max_steps,
        learning_rate=cmd.learning_rate,
        per_device_train_batch_size=cmd.per_device_train_batch_size,
        per_device_eval_batch_size=cmd.per_device_eval_batch_size,
        gradient_accumulation_steps=cmd.gradient_accumulation_steps,
        weight_decay=cmd.weight_decay,
        warmup_steps=cmd.warmup_steps,
        lr_scheduler_type=cmd.lr_scheduler_type,
        logging_steps=cmd.logging_steps,
        save_steps=cmd.save_steps,
        eval_strategy=cmd.eval_strategy,
        eval_steps=cmd.eval_steps,
        save_total_limit=cmd.save_total_limit,
        seed=cmd.seed,
        bf16=cmd.bf16,
        disable_tqdm=cmd.disable_tqdm,
        fsdp=cmd.fsdp,
    )
    collator = (
        DataCollatorWithPadding(tokenizer)
        if classify
        else DataCollatorForLanguageModeling(tokenizer, mlm=False)
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        data_collator=collator,
        processing_class=tokenizer,
        compute_metrics=_accuracy if classify else None,
    )
    # stdout holds the summary below; without a progress bar the logs are in logs.jsonl, not printed
    trainer.remove_callback(PrinterCallback)
    trainer.train(resume_from_checkpoint=resume)
    trainer.save_model()
    lines = [f"model saved to {output_dir}"]
    history = trainer.state.log_history
    mean = [entry["train_loss"] for entry in history if "train_loss" in entry]  # the end-of-run summary
    losses = [entry["loss"] for entry in history if "loss" in entry]
    summary = f"trained {trainer.state.global_step} steps"
    if mean:
        summary += f", mean training loss {mean[-1]:.4f}"
    if losses:
        summary += f", last logged loss {losses[-1]:.4f}"
    lines.insert(0, summary)
    if eval_dataset is not None:
        metrics = trainer.evaluate()
        lines += [f"{key}: {value:.4f}" for key, value in metrics.items() if isinstance(value, float)]
    if not args.should_save:  # under torchrun, process 0 writes the card and the summary
        return 0
    _write_card(trainer, cmd, output_dir)
    for name, what in (("logs.jsonl", "training log"), ("training_curves.png", "training curves")):
        if (output_dir / name).is_file():
            lines.append(f"{what}: {output_dir / name}")
    write_output("".join(line + "\n" for line in lines))
    return 0


def _resume_point(cmd: TrainCommandArguments, output_dir: Path) -> str | None:
    """The checkpoint to resume from: the given one, the newest in ``output_dir`` with --resume, or None. A
    fresh run into a folder that already holds checkpoints is refused: it would mix two runs' saves."""
    if cmd.resume_from_checkpoint is not None:
        if not Path(cmd.resume_from_checkpoint).is_dir():
            raise XfFileNotFoundError(
                f"--resume_from_checkpoint {cmd.resume_from_checkpoint}: no such checkpoint folder.",
                path=cmd.resume_from_checkpoint,
            )
        return cmd.resume_from_checkpoint
    steps = sorted(
        int(m.group(1))
        for p in (output_dir.iterdir() if output_dir.is_dir() else ())
        if p.is_dir() and (m := _CHECKPOINT.match(p.name))
    )
    if cmd.resume:
        if not steps:
            raise XfFileNotFoundError(
                f"--resume: {output_dir} holds no checkpoint-<step> folder to continue from; run without "
                "--resume to start training.",
                path=str(output_dir),
            )
        return str(output_dir / f"checkpoint-{steps[-1]}")
    if steps:
        raise XfValueError(
            f"{output_dir} already holds checkpoints (checkpoint-{steps[-1]}); pass --resume to continue that "
            "run, or choose another --output_dir."
        )
    return None


def read_examples(path: str, cmd: TrainCommandArguments, *, labelled: bool) -> list[dict[str, Any]]:
    """The examples of a data file as ``{"text": ..., "label": ...}`` dicts; a malformed line, a missing
    column or an empty file is an :class:`~xf_core.errors.XfValueError` naming the file (and line)."""
    file = Path(path)
    suffix = file.suffix.lower()
    if suffix not in _DATA_SUFFIXES:
        raise XfValueError(
            f"{file}: unsupported data file type {suffix or '(none)'!r}; use {', '.join(_DATA_SUFFIXES)}."
        )
    if suffix == ".txt" and labelled:
        raise XfValueError(
            f"{file}: a text file has no labels; give sequence-classification data as JSONL or CSV with a "
            f"{cmd.label_column!r} column."
        )
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError as e:
        raise XfFileNotFoundError(f"no such data file: {file}", path=str(file)) from e
    except UnicodeDecodeError as e:
        raise XfValueError(f"{file} is not UTF-8 text (byte {e.start}: {e.reason}).") from e
    if suffix == ".txt":
        rows = [(n, {cmd.text_column: line}) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    elif suffix in (".csv", ".tsv"):
        reader = csv.DictReader(text.splitlines(), delimiter="\t" if suffix == ".tsv" else ",")
        rows = [(n, row) for n, row in enumerate(reader, 2)]  # line 1 is the header
    else:
        rows = list(_json_rows(file, text))
    if not rows:
        raise XfValueError(f"{file} holds no examples.")
    return [_example(file, n, row, cmd, labelled) for n, row in rows]


def _json_rows(file: Path, text: str) -> Iterator[tuple[int, Any]]:
    if text.lstrip().startswith("["):  # one JSON array of objects
        try:
            yield from enumerate(json.loads(text), 1)
        except json.JSONDecodeError as e:
            raise XfValueError(f"{file}:{e.lineno}: not valid JSON ({e.msg}).") from e
        return
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                yield n, json.loads(line)
            except json.JSONDecodeError as e:
                raise XfValueError(
                    f"{file}:{n}: not a JSON object ({e.msg}); JSONL has one object a line."
                ) from e


def _example(file: Path, n: int, row: Any, cmd: TrainCommandArguments, labelled: bool) -> dict[str, Any]:
    where = (
        f"{file}:{n}" if file.suffix.lower() != ".json" or not isinstance(row, dict) else f"{file} (row {n})"
    )
    if not isinstance(row, dict):
        raise XfValueError(f"{where}: an example must be an object with a {cmd.text_column!r} key.")
    text = row.get(cmd.text_column)
    if not isinstance(text, str):
        found = f"keys {sorted(row)}" if cmd.text_column not in row else f"a {type(text).__name__}"
        raise XfValueError(f"{where}: no text under {cmd.text_column!r} ({found}); set --text_column.")
    if not labelled:
        return {"text": text}
    label = row.get(cmd.label_column)
    if (
        isinstance(label, str)
        and label.strip().lstrip("-").isdigit()
        and file.suffix.lower() in (".csv", ".tsv")
    ):
        label = int(label)
    if label is None or label == "" or isinstance(label, (bool, float, list, dict)):
        raise XfValueError(
            f"{where}: no usable label under {cmd.label_column!r} (got {label!r}); labels are integers or "
            "names. Set --label_column."
        )
    if isinstance(label, int) and label < 0:
        raise XfValueError(f"{where}: label {label} is negative; integer labels count from 0.")
    return {"text": text, "label": label}


def _label_names(rows: list[dict[str, Any]]) -> list[str] | None:
    """Names of string labels, sorted (their ids); None when the labels are integers (ids already)."""
    kinds = {type(row["label"]) for row in rows}
    if kinds == {int}:
        return None
    if kinds == {str}:
        return sorted({row["label"] for row in rows})
    raise XfValueError("the labels mix integers and names; use one kind for every example.")


def _load_tokenizer(cmd: TrainCommandArguments) -> Any:
    try:
        from xf_tokenize import AutoTokenizer
    except ImportError as e:
        raise XfValueError(
            "xf train reads the tokenizer with xf-tokenize; install it: pip install xf-tokenize"
        ) from e
    source = cmd.tokenizer or cmd.model
    assert source is not None  # checked with the arguments
    tokenizer = AutoTokenizer.from_pretrained(source)
    if tokenizer.pad_token is None:  # batches need padding; a decoder's usual choice is its EOS token
        if tokenizer.eos_token is None:
            raise XfValueError(
                f"the tokenizer of {cmd.tokenizer or cmd.model} has neither a pad nor an EOS token to pad "
                "batches with; add a pad_token to its tokenizer_config.json."
            )
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _load_model(cmd: TrainCommandArguments, tokenizer: Any, labels: list[str] | None, num_labels: int) -> Any:
    from xf_load import AutoConfig, AutoModelForCausalLM, AutoModelForSequenceClassification

    assert cmd.model is not None  # checked by train_command
    if cmd.task == "causal-lm":
        return AutoModelForCausalLM.from_pretrained(cmd.model, dtype="float32")
    config = AutoConfig.from_pretrained(cmd.model)
    overrides: dict[str, Any] = {"num_labels": num_labels}
    if labels is not None:
        overrides["id2label"] = dict(enumerate(labels))
        overrides["label2id"] = {name: i for i, name in enumerate(labels)}
    if getattr(config, "pad_token_id", None) is None:  # decoders find each row's last token by the pad id
        overrides["pad_token_id"] = tokenizer.pad_token_id
    model = AutoModelForSequenceClassification.from_pretrained(
        cmd.model, dtype="float32", ignore_mismatched_sizes=cmd.ignore_mismatched_sizes, **overrides
    )
    return model


def _encoder(
    tokenizer: Any, max_length: int, accepted: set[str], labels: list[str] | None
) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """example -> features: the tokenizer's outputs the model's forward takes, and ``labels`` (an id)."""

    def encode(example: dict[str, Any]) -> dict[str, Any]:
        features = tokenizer(example["text"], truncation=True, max_length=max_length)
        out = {k: v for k, v in dict(features).items() if k in accepted}
        if "label" in example:
            label = example["label"]
            out["labels"] = labels.index(label) if labels is not None else label
        return out

    return encode


def _accuracy(prediction: Any) -> dict[str, float]:
    import torch

    logits = (
        prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
    )
    predicted = torch.as_tensor(logits).argmax(-1)
    return {"accuracy": (predicted == torch.as_tensor(prediction.label_ids)).float().mean().item()}


def _write_card(trainer: Any, cmd: TrainCommandArguments, output_dir: Path) -> None:
    from xf_train._modelcard import model_card

    base = None if cmd.model is None or Path(cmd.model).is_dir() else cmd.model  # a Hub id, not a local path
    text = model_card(
        trainer, model_name=output_dir.name, finetuned_from=base, dataset=Path(cmd.train_file or "").name
    )
    (output_dir / "README.md").write_text(text, encoding="utf-8")
