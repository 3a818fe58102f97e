import enum
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from xf_core import ArgumentParser, XfValueError


class Scheduler(enum.Enum):
    LINEAR = "linear"
    COSINE = "cosine"


@dataclass
class ModelArgs:
    model_name: str = field(metadata={"help": "path or repo id"})
    dtype: Literal["float32", "bfloat16"] = "float32"
    trust: bool = False


@dataclass
class TrainArgs:
    learning_rate: float = 5e-5
    epochs: int = 3
    do_eval: bool = True
    scheduler: Scheduler = Scheduler.LINEAR
    tags: list[str] = field(default_factory=list)
    seed: int | None = None
    output_dir: Path = Path("out")


def parser():
    return ArgumentParser([ModelArgs, TrainArgs])


def test_parses_into_each_dataclass():
    model, train = parser().parse_args_into_dataclasses(
        [
            "--model_name",
            "gpt2",
            "--learning-rate",
            "1e-3",
            "--epochs",
            "2",
            "--tags",
            "a",
            "b",
            "--seed",
            "7",
        ]
    )
    assert model == ModelArgs(model_name="gpt2")
    assert train.learning_rate == 1e-3 and train.epochs == 2 and train.tags == ["a", "b"] and train.seed == 7
    assert train.output_dir == Path("out") and train.scheduler is Scheduler.LINEAR


def test_bools_flags_values_and_no_prefix():
    model, train = parser().parse_args_into_dataclasses(["--model_name", "m", "--trust", "--no_do_eval"])
    assert model.trust is True and train.do_eval is False
    model, train = parser().parse_args_into_dataclasses(
        ["--model_name", "m", "--trust", "false", "--do-eval", "no"]
    )
    assert model.trust is False and train.do_eval is False
    _, train = parser().parse_args_into_dataclasses(["--model_name", "m", "--no-do-eval"])
    assert train.do_eval is False


def test_choices_from_literal_and_enum(capsys):
    model, train = parser().parse_args_into_dataclasses(
        ["--model_name", "m", "--dtype", "bfloat16", "--scheduler", "cosine"]
    )
    assert model.dtype == "bfloat16" and train.scheduler is Scheduler.COSINE
    with pytest.raises(SystemExit):
        parser().parse_args_into_dataclasses(["--model_name", "m", "--dtype", "float8"])
    assert "invalid choice" in capsys.readouterr().err


def test_required_and_unknown_arguments(capsys):
    with pytest.raises(SystemExit):
        parser().parse_args_into_dataclasses([])
    assert "--model_name" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parser().parse_args_into_dataclasses(["--model_name", "m", "--bogus", "1"])
    assert "unrecognized arguments: --bogus 1" in capsys.readouterr().err
    model, _, rest = parser().parse_args_into_dataclasses(
        ["--model_name", "m", "--bogus", "1"], return_remaining_strings=True
    )
    assert model.model_name == "m" and rest == ["--bogus", "1"]


def test_dict_json_and_yaml(tmp_path):
    data = {"model_name": "bert", "epochs": 9, "do_eval": False}
    model, train = parser().parse_dict(data)
    assert model.model_name == "bert" and train.epochs == 9 and not train.do_eval
    with pytest.raises(XfValueError, match="unknown keys \\['typo'\\]"):
        parser().parse_dict({**data, "typo": 1})
    assert parser().parse_dict({**data, "typo": 1}, allow_extra_keys=True)[0].model_name == "bert"

    (tmp_path / "args.json").write_text(json.dumps(data))
    assert parser().parse_json_file(tmp_path / "args.json")[1].epochs == 9
    (tmp_path / "args.yaml").write_text("model_name: llama\nlearning_rate: 0.1\ntags: [x, y]\n")
    model, train = parser().parse_yaml_file(tmp_path / "args.yaml")
    assert model.model_name == "llama" and train.learning_rate == 0.1 and train.tags == ["x", "y"]


def test_args_file_gives_defaults_that_the_command_line_overrides(tmp_path):
    (tmp_path / "a.yaml").write_text("model_name: from-file\nepochs: 4\n")
    model, train = parser().parse_args_into_dataclasses(["--epochs", "5"], args_file=tmp_path / "a.yaml")
    assert model.model_name == "from-file" and train.epochs == 5


def test_non_dataclass_is_rejected():
    with pytest.raises(XfValueError, match="not a dataclass"):
        ArgumentParser([int])


@dataclass
class WithDict:
    options: dict[str, object] | None = None


def test_a_dict_field_takes_a_json_object(capsys):
    parser = ArgumentParser(WithDict)
    (args,) = parser.parse_args_into_dataclasses(["--options", '{"use_reentrant": false}'])
    assert args.options == {"use_reentrant": False}
    assert parser.parse_args_into_dataclasses([]) == (WithDict(),)
    for bad in ("[1, 2]", "{nope"):
        with pytest.raises(SystemExit):
            parser.parse_args_into_dataclasses(["--options", bad])
        assert "--options" in capsys.readouterr().err
