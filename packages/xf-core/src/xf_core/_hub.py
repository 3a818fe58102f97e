"""Find a model's files: a local directory first, else the Hugging Face cache, else the Hub.

``huggingface_hub`` does the cache layout and the downloads; this module decides where to look and turns
its exceptions into messages that say what is missing and how to get it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from xf_core.constants import hf_hub_offline
from xf_core.errors import XfConfigError, XfFileNotFoundError, XfValueError

__all__ = ["HubOptions", "is_local_path", "resolve_file", "resolve_files"]


def is_local_path(path_or_repo_id: str | os.PathLike[str]) -> bool:
    """True when the argument can only mean a local path (it is not shaped like ``org/name``)."""
    if isinstance(path_or_repo_id, os.PathLike):
        return True
    text = str(path_or_repo_id)
    if os.path.exists(text):
        return True
    return (
        text.startswith(("/", "./", "../", "~", "\\"))
        or text in (".", "..")
        or text.count("/") > 1
        or text.endswith("/")
        or (os.sep != "/" and os.sep in text)
    )


@dataclass(frozen=True, kw_only=True)
class HubOptions:
    """Where and how to fetch a repo's files; one object handed to every resolver and loader.

    The fields are the Hub keywords transformers users pass to ``from_pretrained``. Build it once from
    those keywords (:meth:`pop_from`) and pass it down, so config, weights and tokenizer all come from the
    same revision.
    """

    revision: str | None = None
    subfolder: str | None = None
    cache_dir: str | os.PathLike[str] | None = None
    local_files_only: bool = False
    token: str | bool | None = None

    def __post_init__(self) -> None:
        kinds: dict[str, tuple[Any, str]] = {
            "revision": (str, "a branch, tag or commit"),
            "subfolder": (str, "a folder inside the repo"),
            "cache_dir": (str | os.PathLike, "a directory"),
            "token": (str | bool, "a token string, or True for the saved login"),
        }
        for name, (kind, what) in kinds.items():
            value = getattr(self, name)
            if value is not None and not isinstance(value, kind):
                raise XfConfigError(f"{name}={value!r} must be {what}, not {type(value).__name__}.", key=name)
        if not isinstance(self.local_files_only, bool):
            raise XfConfigError(
                f"local_files_only={self.local_files_only!r} must be True or False.", key="local_files_only"
            )

    @classmethod
    def pop_from(cls, kwargs: dict[str, Any], base: HubOptions | None = None) -> HubOptions:
        """Take the Hub keywords out of ``kwargs`` (a ``**kwargs`` dict) into options over ``base``."""
        found = {name: kwargs.pop(name) for name in _HUB_FIELDS if name in kwargs}
        return replace(base or cls(), **found)

    def with_subfolder(self, subfolder: str | None) -> HubOptions:
        return replace(self, subfolder=subfolder)


_HUB_FIELDS = tuple(f.name for f in fields(HubOptions))


def _options(hub: HubOptions | None, legacy: dict[str, Any]) -> HubOptions:
    unknown = sorted(set(legacy) - set(_HUB_FIELDS))
    if unknown:
        raise XfValueError(f"unknown Hub option(s) {unknown}; the options are {', '.join(_HUB_FIELDS)}.")
    return replace(hub or HubOptions(), **legacy)


def resolve_file(
    path_or_repo_id: str | os.PathLike[str],
    filename: str,
    *,
    hub: HubOptions | None = None,
    missing_ok: bool = False,
    **hub_kwargs: Any,
) -> Path | None:
    """Return the local path of ``filename`` from a directory or a Hub repo.

    A local directory is used as is. Otherwise the file comes from the Hugging Face cache (no network call
    when it is there) or is downloaded. With ``missing_ok=True`` a file the directory or repo does not have
    gives ``None``; every other failure raises :class:`XfFileNotFoundError` that says what to do.
    ``hub_kwargs`` (the fields of :class:`HubOptions`) override ``hub``.
    """
    opts = _options(hub, hub_kwargs)
    subfolder = opts.subfolder or ""
    if is_local_path(path_or_repo_id):
        return _resolve_local(str(path_or_repo_id), filename, subfolder, missing_ok)
    return _resolve_hub(str(path_or_repo_id), filename, opts, missing_ok=missing_ok)


def resolve_files(
    path_or_repo_id: str | os.PathLike[str],
    filenames: Iterable[str],
    *,
    hub: HubOptions | None = None,
    missing_ok: bool = False,
    **hub_kwargs: Any,
) -> list[Path | None]:
    """:func:`resolve_file` for several names, in order (e.g. the shards of a checkpoint)."""
    opts = _options(hub, hub_kwargs)
    return [resolve_file(path_or_repo_id, name, hub=opts, missing_ok=missing_ok) for name in filenames]


def _resolve_local(given: str, filename: str, subfolder: str, missing_ok: bool) -> Path | None:
    directory = Path(os.path.expanduser(given))
    if not directory.is_dir():
        what = "not a directory" if directory.exists() else "no such directory"
        raise XfFileNotFoundError(
            f"{what}: {given}; pass a directory holding the model files or a Hub repo id like 'org/name'.",
            path=str(directory),
            filename=filename,
        )
    folder = directory / subfolder if subfolder else directory
    path = folder / filename
    if path.is_file():
        return path
    if missing_ok:
        return None
    raise XfFileNotFoundError(
        f"{folder} has no file named {filename}; check the directory or save the model there again.",
        path=str(folder),
        filename=filename,
    )


def _resolve_hub(repo_id: str, filename: str, opts: HubOptions, *, missing_ok: bool) -> Path | None:
    from huggingface_hub import errors as hub_errors
    from huggingface_hub import hf_hub_download, try_to_load_from_cache
    from huggingface_hub.file_download import _CACHED_NO_EXIST

    subfolder, revision, cache_dir = opts.subfolder or "", opts.revision, opts.cache_dir
    local_files_only, token = opts.local_files_only, opts.token
    offline = local_files_only or hf_hub_offline()
    repo_file = f"{subfolder}/{filename}" if subfolder else filename
    where = f"{repo_id}@{revision}" if revision else repo_id

    def missing(message: str) -> XfFileNotFoundError:
        return XfFileNotFoundError(message, path=repo_id, filename=filename)

    try:  # validates the repo id too (hf_hub_download would fail the same way)
        cached = try_to_load_from_cache(repo_id, repo_file, cache_dir=cache_dir, revision=revision)
    except hub_errors.HFValidationError as e:
        raise missing(f"no such directory: {repo_id}, and it is not a valid Hub repo id either ({e}).") from e
    if isinstance(cached, str):
        return Path(cached)
    if cached is _CACHED_NO_EXIST and missing_ok:
        return None  # the cache remembers the repo has no such file
    if offline:
        if missing_ok:
            return None
        setting = "local_files_only=True" if local_files_only else "HF_HUB_OFFLINE=1"
        raise missing(
            f"{repo_file} of {where} is not in the Hugging Face cache and {setting} forbids downloading it; "
            f"download it once while online (or pass a local directory), or unset {setting.split('=')[0]}."
        )
    try:
        path = hf_hub_download(
            repo_id,
            filename,
            subfolder=subfolder or None,
            revision=revision,
            cache_dir=cache_dir,
            token=token,
            library_name="xf",
        )
    except hub_errors.RepositoryNotFoundError as e:
        raise missing(
            f"no such directory: {repo_id}, and the Hub has no repo {repo_id} you can read; check the name, "
            "or log in with `hf auth login` if it is private or gated."
        ) from e
    except hub_errors.RevisionNotFoundError as e:
        raise missing(
            f"{repo_id} has no revision {revision!r}; pass an existing branch, tag or commit."
        ) from e
    except hub_errors.LocalEntryNotFoundError as e:  # before EntryNotFoundError, its base class
        if missing_ok:
            return None
        raise missing(
            f"could not reach the Hub to download {repo_file} of {where}, and it is not in the cache; "
            "check your connection, or set HF_HUB_OFFLINE=1 and pass a local directory."
        ) from e
    except hub_errors.EntryNotFoundError as e:
        if missing_ok:
            return None
        raise missing(f"{where} has no file named {repo_file}.") from e
    return Path(path)
