"""save_pretrained is all-or-nothing: a save killed at any moment, or stopped by a full disk or a permission
error, leaves exactly the previous save (or exactly the new one) loadable — never a mix of the two."""

from __future__ import annotations

import errno
import multiprocessing
import os
import random
import shutil
import signal
import time
from multiprocessing.connection import Connection
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from xf_core.errors import XfOSError
from xf_load import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

# ~6.6M parameters (26 MB in fp32), saved in 4 MB shards: a real sharded save (7 shards and an index) that
# takes long enough to be killed in the middle. The writers are forked from a server that has imported torch
# and xf_load once, so each of the 20 kills costs a fork, not a fresh interpreter.
CONFIG = {
    "hidden_size": 256,
    "intermediate_size": 512,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "vocab_size": 8000,
    "max_position_embeddings": 128,
    "tie_word_embeddings": False,
}
SHARD = "4MB"


def _writer(target: str, first: int, saves: int, conn: Connection) -> None:
    """Save over ``target`` ``saves`` times, each save with every weight equal to its generation number, then
    wait to be killed: a kill that lands late finds the last save complete, never a later one."""
    model = LlamaForCausalLM(LlamaConfig(**CONFIG))
    for generation in range(first, first + saves):
        with torch.no_grad():
            for p in model.parameters():
                p.fill_(generation)
        conn.send(("saving", generation, time.monotonic()))
        model.save_pretrained(target, max_shard_size=SHARD)
        conn.send(("saved", generation, time.monotonic()))
    time.sleep(3600)


def _next(conn: Connection, what: str) -> tuple[int, float]:
    while True:
        assert conn.poll(120), f"the writer sent no {what!r} within 120 s"
        kind, generation, when = conn.recv()
        if kind == what:
            return generation, when


def _generations(path: Path) -> set[float]:
    """The distinct values in every weight file of a saved directory (each save fills all with one value)."""
    values: set[float] = set()
    for file in sorted(path.glob("*.safetensors")):
        for tensor in load_file(file).values():
            values.update((tensor.min().item(), tensor.max().item()))  # one value per save: min == max
    return values


def test_sigkill_during_a_sharded_save_never_mixes_two_saves(tmp_path):
    target = tmp_path / "model"
    rng = random.Random(0)
    context = multiprocessing.get_context("forkserver")
    # The server imports everything a writer needs (this module too), so a writer starts in a fraction of a second.
    context.set_forkserver_preload(["torch", "pytest", "xf_load.models.llama", "xf_load._saving", __name__])
    first, save_seconds, mid_save = 1, 1.0, 0
    for attempt in range(20):
        receive, send = context.Pipe(duplex=False)
        fresh = not target.exists()
        proc = context.Process(
            target=_writer, args=(str(target), first, 3 if fresh else 1, send), daemon=True
        )
        proc.start()
        send.close()
        if fresh:  # a first save, then one over it timed: the kills land within such a save
            _next(receive, "saved")
            _, started = _next(receive, "saving")
            _, finished = _next(receive, "saved")
            save_seconds = finished - started
        generation, _ = _next(receive, "saving")  # now a save over the previous one is under way
        time.sleep(rng.uniform(0, 1.2 * save_seconds))
        os.kill(proc.pid, signal.SIGKILL)
        proc.join()
        receive.close()
        model = AutoModelForCausalLM.from_pretrained(target)  # loads, and is one save
        found = _generations(target)
        assert len(found) == 1, f"attempt {attempt}: files from saves {sorted(found)} are mixed"
        assert found <= {generation - 1, generation}, f"attempt {attempt}: {found} is neither save"
        assert {p.item() for p in model.model.embed_tokens.weight.unique()} == found
        mid_save += found == {generation - 1}
        for leftover in tmp_path.glob(".model.xf-*"):  # a killed save's stage: only wasted space
            shutil.rmtree(leftover)
        first = int(found.pop()) + 1
    assert [p.name for p in tmp_path.iterdir()] == ["model"]
    assert mid_save, "no kill landed in the middle of a save; the test proved nothing"


def _small(value: float) -> LlamaForCausalLM:
    model = LlamaForCausalLM(
        LlamaConfig(
            hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, vocab_size=96
        )
    )
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(value)
    return model


@pytest.mark.parametrize(
    ("code", "words"),
    [(errno.ENOSPC, "disk is full"), (errno.EACCES, "permission denied"), (errno.EROFS, "read-only")],
)
def test_a_failed_write_leaves_the_previous_save_and_names_the_directory(tmp_path, monkeypatch, code, words):
    import xf_load._saving as saving

    target = tmp_path / "model"
    _small(1.0).save_pretrained(target, max_shard_size="20KB")
    (target / "tokenizer.json").write_text("{}")  # someone else's file in the same directory
    before = {p.name: p.read_bytes() for p in target.iterdir()}

    real = saving.save_safetensors
    calls = {"n": 0}

    def failing(tensors, path):
        calls["n"] += 1
        if calls["n"] == 3:  # the third shard: part written, then the disk fills up
            Path(path).write_bytes(b"partial")
            raise OSError(code, os.strerror(code), str(path))
        return real(tensors, path)

    monkeypatch.setattr(saving, "save_safetensors", failing)
    with pytest.raises(XfOSError, match=words) as info:
        _small(2.0).save_pretrained(target, max_shard_size="20KB")
    assert str(target) in str(info.value)
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before  # untouched, config included
    assert _generations(target) == {1.0}
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no staging directory left

    monkeypatch.setattr(saving, "save_safetensors", real)
    _small(3.0).save_pretrained(target)  # a later save works and keeps the foreign file
    assert _generations(target) == {3.0} and (target / "tokenizer.json").read_text() == "{}"
    assert not list(target.glob("model-0000*"))  # the old shards are gone with the old save


def test_loading_where_a_save_was_interrupted_between_its_renames_says_how_to_recover(tmp_path):
    from xf_core.errors import XfFileNotFoundError

    target = tmp_path / "model"
    _small(1.0).save_pretrained(target)
    parked = tmp_path / ".model.xf-old-0123abcd"  # what the two-rename fallback leaves if killed between them
    target.rename(parked)
    with pytest.raises(XfFileNotFoundError, match="interrupted") as info:
        AutoModelForCausalLM.from_pretrained(target)
    assert f"mv '{parked}' '{target}'" in str(info.value)
    parked.rename(target)
    assert _generations(target) == {1.0} and AutoModelForCausalLM.from_pretrained(target) is not None
