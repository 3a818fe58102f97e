import os
import subprocess
import sys
from pathlib import Path

import pytest

from xf_core import XfFileNotFoundError, resolve_file, resolve_files
from xf_core.testing import make_hf_cache, patch_env


def _no_network(monkeypatch):
    import huggingface_hub

    def boom(*args, **kwargs):
        raise AssertionError("network call attempted")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", boom)


def test_local_directory_first(tmp_path, monkeypatch):
    _no_network(monkeypatch)
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "tokenizer.json").write_text("{}")
    assert resolve_file(tmp_path, "config.json") == tmp_path / "config.json"
    assert (
        resolve_file(str(tmp_path), "tokenizer.json", subfolder="sub") == tmp_path / "sub" / "tokenizer.json"
    )
    assert resolve_files(tmp_path, ["config.json", "nope.json"], missing_ok=True) == [
        tmp_path / "config.json",
        None,
    ]


def test_missing_local_directory_says_so(tmp_path):
    missing = tmp_path / "does-not-exist"
    with pytest.raises(XfFileNotFoundError, match="no such directory: .*does-not-exist") as info:
        resolve_file(missing, "config.json")
    assert isinstance(info.value, FileNotFoundError)
    with pytest.raises(FileNotFoundError, match="no such directory: ./relative/model/dir"):
        resolve_file("./relative/model/dir", "config.json")


def test_missing_file_names_directory_and_file(tmp_path):
    with pytest.raises(XfFileNotFoundError) as info:
        resolve_file(tmp_path, "model.safetensors")
    message = str(info.value)
    assert str(tmp_path) in message and "model.safetensors" in message
    assert info.value.filename == "model.safetensors"
    assert resolve_file(tmp_path, "model.safetensors", missing_ok=True) is None


def test_cached_file_resolves_offline_without_network(tmp_path, monkeypatch):
    _no_network(monkeypatch)
    hub = tmp_path / "hub"
    snapshot = make_hf_cache(hub, "org/tiny", {"config.json": '{"a": 1}', "sub/vocab.txt": "x\n"})
    with patch_env(HF_HUB_OFFLINE="1"):
        path = resolve_file("org/tiny", "config.json", cache_dir=hub)
        assert path == snapshot / "config.json"
        assert path.read_text() == '{"a": 1}'
        assert resolve_file("org/tiny", "vocab.txt", subfolder="sub", cache_dir=hub).read_text() == "x\n"
        assert resolve_file("org/tiny", "absent.json", cache_dir=hub, missing_ok=True) is None


def test_cached_file_found_through_hf_home(tmp_path):
    # HF_HOME is read by huggingface_hub at import, so prove it in a fresh interpreter.
    snapshot = make_hf_cache(tmp_path / "home" / "hub", "org/tiny", {"config.json": "{}"})
    code = "from xf_core import resolve_file; print(resolve_file('org/tiny', 'config.json'))"
    env = {**os.environ, "HF_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1"}
    env.pop("HF_HUB_CACHE", None)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(snapshot / "config.json")


def test_cache_hit_makes_no_network_call_even_online(tmp_path, monkeypatch):
    _no_network(monkeypatch)
    hub = tmp_path / "hub"
    make_hf_cache(hub, "org/tiny", {"config.json": "{}"})
    with patch_env(HF_HUB_OFFLINE=None, TRANSFORMERS_OFFLINE=None):
        assert resolve_file("org/tiny", "config.json", cache_dir=hub).is_file()


def test_offline_miss_fails_fast_naming_file_and_setting(tmp_path, monkeypatch):
    _no_network(monkeypatch)
    hub = tmp_path / "hub"
    make_hf_cache(hub, "org/tiny", {"config.json": "{}"})
    with patch_env(HF_HUB_OFFLINE="1"), pytest.raises(XfFileNotFoundError) as info:
        resolve_file("org/tiny", "model.safetensors", cache_dir=hub)
    assert "model.safetensors" in str(info.value) and "HF_HUB_OFFLINE" in str(info.value)
    with patch_env(HF_HUB_OFFLINE=None), pytest.raises(XfFileNotFoundError, match="local_files_only"):
        resolve_file("org/other", "config.json", cache_dir=hub, local_files_only=True)


def test_invalid_repo_id_reads_as_missing_directory(tmp_path):
    with (
        patch_env(HF_HUB_OFFLINE="1"),
        pytest.raises(XfFileNotFoundError, match="no such directory: bad repo!"),
    ):
        resolve_file("bad repo!", "config.json", cache_dir=tmp_path)


def test_path_objects_are_always_local(tmp_path):
    with pytest.raises(XfFileNotFoundError, match="no such directory"):
        resolve_file(Path("org-name"), "config.json")


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        ("LocalEntryNotFoundError", "could not reach the Hub to download config.json of org/tiny"),
        ("RemoteEntryNotFoundError", "org/tiny has no file named config.json"),
    ],
)
def test_download_failures_say_which_kind(tmp_path, monkeypatch, raised, expected):
    import huggingface_hub
    from huggingface_hub import errors

    def fail(*args, **kwargs):
        if raised == "LocalEntryNotFoundError":
            raise errors.LocalEntryNotFoundError("offline")
        raise errors.EntryNotFoundError("404")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fail)
    with patch_env(HF_HUB_OFFLINE=None, TRANSFORMERS_OFFLINE=None):
        with pytest.raises(XfFileNotFoundError, match=expected):
            resolve_file("org/tiny", "config.json", cache_dir=tmp_path)
        assert resolve_file("org/tiny", "config.json", cache_dir=tmp_path, missing_ok=True) is None


def test_hub_options_pop_from_kwargs_and_override(tmp_path):
    from xf_core import HubOptions

    kwargs = {"revision": "v1", "token": False, "num_labels": 3}
    opts = HubOptions.pop_from(kwargs, base=HubOptions(subfolder="sub"))
    assert opts == HubOptions(revision="v1", token=False, subfolder="sub")
    assert kwargs == {"num_labels": 3}  # only the Hub keywords are taken
    with pytest.raises(Exception, match="frozen|cannot assign"):
        opts.revision = "v2"  # type: ignore[misc]

    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "config.json").write_text("{}")
    assert resolve_file(tmp_path, "config.json", hub=opts) == tmp_path / "sub" / "config.json"
    # a keyword overrides the options object; a misspelt one is named
    assert resolve_file(tmp_path, "config.json", hub=opts, subfolder=None, missing_ok=True) is None
    with pytest.raises(ValueError, match="revison"):
        resolve_file(tmp_path, "config.json", revison="v1")
