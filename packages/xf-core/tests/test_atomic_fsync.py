"""What atomic_directory flushes: every file of the stage (also in subfolders), then its folders, before the
swap; a save nested in a stage flushes nothing itself (the enclosing swap flushes it), and after the swap
only the parent's entry is flushed, not the other files beside the target."""

from __future__ import annotations

from pathlib import Path

from xf_core import _atomic, atomic_directory


def test_fsync_order_and_nesting(tmp_path, monkeypatch):
    flushed: list[Path] = []
    real = _atomic._fsync_path
    monkeypatch.setattr(_atomic, "_fsync_path", lambda p: (flushed.append(Path(p)), real(p)))
    (tmp_path / "logs.jsonl").write_text("{}\n")  # beside the target: not this save's business
    target = tmp_path / "checkpoint-1"
    with atomic_directory(target) as stage:
        with atomic_directory(stage) as inner:  # a model saved into the staged checkpoint
            (inner / "model.safetensors").write_bytes(b"x" * 1000)
        assert flushed == []  # nested: left to the enclosing save
        (stage / "sub").mkdir()
        (stage / "sub" / "state.json").write_text("{}")
        (stage / "optimizer.safetensors").write_bytes(b"y" * 1000)
    names = [p.name for p in flushed]
    files = {"model.safetensors", "state.json", "optimizer.safetensors"}
    assert set(names[:3]) == files and "logs.jsonl" not in names
    assert names[3] == "sub" and names[4].startswith(".checkpoint-1.xf-stage-") and flushed[5] == tmp_path
    assert len(flushed) == 6
    assert (target / "model.safetensors").read_bytes() == b"x" * 1000 and (
        target / "sub" / "state.json"
    ).is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-1", "logs.jsonl"]
