"""modular_<name>.py -> generated modeling_<name>.py (libcst), the stale check, and the similarity detector."""

import subprocess
import sys

import pytest

from xf_repotools.__main__ import main
from xf_repotools.testing import write_files

PARENT = '''
"""Llama."""

import math

from lib.shared import Base

LLAMA_SCALE = 2.0


def rotate(x):
    return x * LLAMA_SCALE


def unused_helper():
    return 0


class LlamaConfig:
    """Config of Llama."""

    hidden = 4


class LlamaMLP(Base):
    def __init__(self, config: LlamaConfig):
        self.width = config.hidden

    def forward(self, x):
        return rotate(x) + math.pi


class LlamaModel(Base):
    """The Llama model."""

    def __init__(self, config: LlamaConfig):
        self.mlp = LlamaMLP(config)

    def forward(self, x):
        return self.mlp.forward(x)

    def name(self):
        return "llama"
'''

MODULAR = '''
"""Tiny: Llama with one more config field and its own name."""

from lib.models.modeling_llama import LlamaConfig, LlamaModel


class TinyConfig(LlamaConfig):
    extra = 3


class TinyModel(LlamaModel):
    def name(self):
        return "tiny"

    def extra(self):
        return 1
'''


@pytest.fixture
def repo(tmp_path, monkeypatch):
    monkeypatch.setenv("XF_REPOTOOLS_CACHE", str(tmp_path / "cache"))
    return write_files(
        tmp_path / "repo",
        {
            "lib/__init__.py": "",
            "lib/shared.py": "class Base:\n    pass\n",
            "lib/models/__init__.py": "",
            "lib/models/modeling_llama.py": PARENT,
            "lib/models/modular_tiny.py": MODULAR,
        },
    )


def test_generated_file_is_standalone_renamed_and_merged(repo, capsys):
    assert main(["check", "modular", "--root", str(repo)]) == 1
    assert (
        "lib/models/modeling_tiny.py:1: missing: generate it from lib/models/modular_tiny.py"
        in capsys.readouterr().out
    )
    assert main(["check", "modular", "--root", str(repo), "--fix"]) == 0
    generated = (repo / "lib/models/modeling_tiny.py").read_text()
    assert generated.startswith("# This file was generated from modular_tiny.py")
    assert "do not edit it" in generated
    code = generated.split('"""', 2)[2]  # after the module docstring (which is the modular file's)
    assert "Llama" not in code and "llama" not in code
    assert "unused_helper" not in generated  # only what the modular code needs
    assert "class TinyMLP(Base):" in generated and "TINY_SCALE = 2.0" in generated
    run = subprocess.run(
        [
            sys.executable,
            "-c",
            "from lib.models.modeling_tiny import *; m = TinyModel(TinyConfig());"
            "print(m.forward(1.0), m.name(), m.extra(), TinyConfig.extra, TinyConfig.hidden)",
        ],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    )
    assert run.stdout.split() == ["5.141592653589793", "tiny", "1", "3", "4"]
    assert main(["check", "modular", "--root", str(repo)]) == 0


def test_stale_generated_file_fails_and_fix_regenerates(repo, capsys):
    assert main(["modular-convert", str(repo / "lib/models/modular_tiny.py"), "--root", str(repo)]) == 0
    fresh = (repo / "lib/models/modeling_tiny.py").read_text()
    (repo / "lib/models/modeling_tiny.py").write_text(fresh.replace('return "tiny"', 'return "edited"'))
    capsys.readouterr()
    assert main(["check", "modular", "--root", str(repo)]) == 1
    out = capsys.readouterr().out
    assert "lib/models/modeling_tiny.py:1: stale: it is generated from lib/models/modular_tiny.py" in out
    assert "(fix: xf-repotools check modular --fix)" in out
    # a change in the parent makes the generated file stale too
    assert main(["check", "modular", "--root", str(repo), "--fix"]) == 0
    (repo / "lib/models/modeling_llama.py").write_text(PARENT.replace("+ math.pi", "- math.pi"))
    assert main(["check", "modular", "--root", str(repo)]) == 1
    assert main(["modular-convert", "lib/models/modular_tiny.py", "--root", str(repo), "--check"]) == 1


def test_detector_ranks_the_family_the_file_was_copied_from(repo, capsys):
    write_files(
        repo,
        {
            "lib/models/modeling_gpt.py": "class GPTConfig:\n    n = 1\n\n\nclass GPTModel:\n    def f(self):\n        return [1, 2]\n",
            "new_model.py": PARENT.replace("Llama", "Fresh")
            .replace("llama", "fresh")
            .replace("LLAMA", "FRESH"),
        },
    )
    assert main(["modular-detect", str(repo / "new_model.py"), "--root", str(repo)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["1.000", "lib/models/modeling_llama.py"]
    assert any(line.split()[-1] == "lib/models/modeling_gpt.py" for line in lines[1:])
