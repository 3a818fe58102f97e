"""atomic_directory: a save replaces its target in one step or not at all (kill, disk full, permission)."""

from __future__ import annotations

import errno
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from xf_core import XfOSError, _atomic, atomic_directory, check_interrupted_save


def _write(folder: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)


def _read(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): p.read_text() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_creates_then_replaces_keeping_only_what_it_does_not_own(tmp_path):
    target = tmp_path / "model"
    with atomic_directory(target) as stage:
        _write(stage, {"config.json": "1", "model-00001-of-00002.safetensors": "a", "tok/vocab.txt": "v"})
    _write(target, {"README.md": "card"})  # written later by someone else into the same directory

    owned = lambda name: not (name.startswith("model") or name == "config.json")  # noqa: E731
    with atomic_directory(target, keep=owned) as stage:
        _write(stage, {"config.json": "2", "model.safetensors": "b"})
    # the stale shard is gone, the new files are in, the tokenizer folder and the card survived
    assert _read(target) == {
        "README.md": "card",
        "config.json": "2",
        "model.safetensors": "b",
        "tok/vocab.txt": "v",
    }
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no stage left behind


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "two-renames"])
def test_a_failing_save_leaves_the_previous_one_untouched(tmp_path, monkeypatch, exchange):
    if not exchange:
        monkeypatch.setattr(_atomic, "_exchange", lambda a, b: False)
    target = tmp_path / "model"
    with atomic_directory(target) as stage:
        _write(stage, {"config.json": "old", "w": "old"})
    with pytest.raises(RuntimeError, match="boom"), atomic_directory(target) as stage:
        _write(stage, {"config.json": "new"})
        raise RuntimeError("boom")
    assert _read(target) == {"config.json": "old", "w": "old"}
    with atomic_directory(target) as stage:
        _write(stage, {"w": "new"})
    assert _read(target) == {"config.json": "old", "w": "new"}
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_disk_full_and_permission_errors_are_typed_and_name_the_directory(tmp_path, monkeypatch):
    target = tmp_path / "model"
    with atomic_directory(target) as stage:
        _write(stage, {"w": "old"})
    with (
        pytest.raises(XfOSError, match=r"model failed: the disk is full") as info,
        atomic_directory(target, action="saving the model to") as stage,
    ):
        raise OSError(errno.ENOSPC, "No space left on device", str(stage / "w"))
    assert info.value.path == str(target) and info.value.errno == errno.ENOSPC
    assert isinstance(info.value, OSError) and str(target) in str(info.value)
    assert _read(target) == {"w": "old"}

    def refuse(path, *args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(Path, "mkdir", refuse)
    with pytest.raises(XfOSError, match="permission denied"), atomic_directory(tmp_path / "elsewhere"):
        pass


def test_interrupted_two_rename_swap_is_explained(tmp_path, caplog):
    target = tmp_path / "model"
    parked = tmp_path / ".model.xf-old-1234"
    parked.mkdir()
    with pytest.raises(FileNotFoundError, match=r"interrupted.*mv") as info:
        check_interrupted_save(target)
    assert str(parked) in str(info.value)
    target.mkdir()
    (tmp_path / ".model.xf-stage-1-ab").mkdir()
    check_interrupted_save(target)  # intact target: a warning only
    assert ".model.xf-stage-1-ab" in caplog.text


WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from xf_core import atomic_directory
    target = Path(sys.argv[1])
    generation = 0
    while True:
        generation += 1
        with atomic_directory(target, keep=lambda name: False) as stage:
            for i in range(40):
                (stage / f"shard-{i}").write_text(str(generation) * 2000)
        print(generation, flush=True)
    """
)


def test_sigkill_at_random_moments_never_leaves_a_mix(tmp_path):
    target = tmp_path / "model"
    rng = random.Random(0)
    for _ in range(20):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(target)], stdout=subprocess.PIPE)
        assert proc.stdout is not None
        proc.stdout.readline()  # at least one complete save exists
        time.sleep(rng.uniform(0, 0.05))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        check_interrupted_save(target)
        contents = set(_read(target).values())
        assert len(_read(target)) == 40 and len(contents) == 1, "files from two saves are mixed"


def test_dotdot_target_and_a_process_standing_inside(tmp_path, monkeypatch):
    target = tmp_path / "model"
    with atomic_directory(tmp_path / "model" / "sub" / "..") as stage:  # names "model" itself
        _write(stage, {"a": "1"})
    assert _read(target) == {"a": "1"} and sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    monkeypatch.chdir(target)
    with atomic_directory(target) as stage:
        _write(stage, {"a": "2"})
    assert Path(os.getcwd()) == target and Path("a").read_text() == "2"  # the new directory, same path
