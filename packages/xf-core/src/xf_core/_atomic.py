"""All-or-nothing directory writes: a save is staged beside its target and swapped in with one rename.

A model, tokenizer or checkpoint is a *set* of files; writing each file atomically is not enough, because a
save killed half-way (or stopped by a full disk) would leave old and new files side by side, which then load
as a model that never existed. :func:`atomic_directory` stages the whole set in a sibling directory and, only
when every file is written, exchanges it with the target in one ``renameat2(RENAME_EXCHANGE)`` call (Linux).
Files of the previous save that the new one does not own (a tokenizer saved into the model's directory, a
README) are hard-linked into the stage first, so saving a model never loses them.

Where an atomic exchange is not available the swap takes two renames; the previous save is parked as
``.<name>.xf-old-<id>`` in between, and :func:`check_interrupted_save` tells a loader how to recover it.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from xf_core.errors import XfFileNotFoundError, XfOSError
from xf_core.logging import get_logger

__all__ = ["atomic_directory", "check_interrupted_save", "os_error"]

logger = get_logger(__name__)
_STAGE = ".xf-stage-"
_OLD = ".xf-old-"
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def os_error(error: OSError, path: str | os.PathLike[str], action: str) -> XfOSError:
    """A typed error for an OS failure while ``action`` (e.g. "saving the model to") on ``path``."""
    reasons = {
        errno.ENOSPC: "the disk is full: free some space or write somewhere else",
        errno.EDQUOT: "the disk quota is exceeded: free some space or write somewhere else",
        errno.EACCES: "permission denied: choose a directory you can write to or fix its permissions",
        errno.EPERM: "the operation is not permitted: choose another directory or fix its permissions",
        errno.EROFS: "the file system is read-only: write somewhere else",
        errno.ENOENT: "a directory on the way does not exist: create it first",
    }
    why = reasons.get(error.errno or -1, error.strerror or str(error))
    where = error.filename if error.filename and str(error.filename) != str(path) else None
    detail = f" ({where})" if where else ""
    return XfOSError(f"{action} {path} failed: {why}{detail}.", path=str(path), errno_=error.errno)


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths; False where the OS cannot (the caller falls back to two renames)."""
    if not hasattr(os, "uname") or os.uname().sysname != "Linux":
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _carry_over(old: Path, stage: Path, keep: Callable[[str], bool]) -> None:
    """Hard-link (else copy) the entries of ``old`` that ``keep`` accepts and the stage does not have."""
    for entry in old.iterdir():
        if (stage / entry.name).exists() or not keep(entry.name):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.copytree(entry, stage / entry.name, copy_function=_link_or_copy, symlinks=True)
        else:
            _link_or_copy(entry, stage / entry.name)


def _link_or_copy(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
    try:
        os.link(src, dst, follow_symlinks=False)
    except OSError:
        shutil.copy2(src, dst, follow_symlinks=False)


@contextlib.contextmanager
def atomic_directory(
    target: str | os.PathLike[str],
    *,
    keep: Callable[[str], bool] = lambda name: True,
    action: str = "saving to",
) -> Iterator[Path]:
    """Yield an empty staging directory beside ``target``; on success it replaces ``target`` in one step.

    ``keep(name)`` says which top-level entries of the previous ``target`` survive (those the new save does
    not write itself); by default all of them. If the body raises, the stage is removed and ``target`` is
    untouched. OS failures (disk full, permission) raise :class:`XfOSError` naming the directory.
    """
    target = Path(os.path.abspath(target))  # "a/b/.." is "a": the stage must be a sibling, never inside
    stage = target.parent / f".{target.name}{_STAGE}{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        stage.mkdir()
    except OSError as e:
        raise os_error(e, target, action) from e
    # Saved into a stage of an enclosing atomic_directory (a model into a checkpoint being staged), nothing
    # here is published until the enclosing swap, which flushes the whole stage first: flushing here too
    # would only wait for the disk twice. Had power been cut before, the enclosing target is still the old one.
    durable = not _inside_stage(target)
    try:
        yield stage
        if target.is_dir():
            _carry_over(target, stage, keep)
            if durable:
                _fsync_dir(stage)
            if _exchange(stage, target):
                shutil.rmtree(stage, ignore_errors=True)  # the stage now holds the previous save
            else:
                old = target.parent / f".{target.name}{_OLD}{uuid.uuid4().hex[:8]}"
                os.rename(target, old)
                os.rename(stage, target)
                shutil.rmtree(old, ignore_errors=True)
        else:
            if target.exists():
                raise XfOSError(
                    f"{action} {target} failed: it exists and is not a directory; remove it or pick another "
                    "path.",
                    path=str(target),
                    errno_=errno.ENOTDIR,
                )
            if durable:
                _fsync_dir(stage)
            os.rename(stage, target)
        if durable:
            with contextlib.suppress(
                OSError
            ):  # the renamed entry; the parent's other files are not this save's
                _fsync_path(target.parent)
        _return_to(target)
    except OSError as e:
        shutil.rmtree(stage, ignore_errors=True)
        if isinstance(e, XfOSError):
            raise
        raise os_error(e, target, action) from e
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise


def _inside_stage(target: Path) -> bool:
    """Whether ``target`` is (or is inside) the stage of an atomic_directory still being written."""
    return any(_STAGE in part for part in target.parts)


def _return_to(target: Path) -> None:
    """A process standing in the replaced directory (or below it) is moved to the same path in the new one."""
    try:
        cwd = Path(os.getcwd())
    except FileNotFoundError:  # the old directory is gone: its path now names the new one
        os.chdir(target)
        return
    if cwd == target or target in cwd.parents:
        with contextlib.suppress(OSError):
            os.chdir(cwd if cwd.exists() else target)


def _fsync_dir(path: Path) -> None:
    """Flush a directory's files (data and size), then its directories' entries, to disk, so a power cut
    cannot undo the swap that follows nor leave it pointing at empty files. Subdirectories are flushed too:
    a save nested in this one (a model saved into a staged checkpoint) leaves its flushing to this.

    The files are flushed concurrently (``fsync`` releases the GIL): a save's large files are written back
    side by side and its small ones share one journal commit, instead of one commit each in turn. Every file
    is still flushed before the directories, and they before the caller renames the stage, so what a rename
    publishes is on disk whole. (An ``fsync`` of the directory alone would not do: it flushes the entries,
    not the files' data.)"""
    with contextlib.suppress(OSError):
        folders, files = [], []
        for root, _, names in os.walk(path):
            folders.append(Path(root))
            files += [Path(root, n) for n in names if not os.path.islink(os.path.join(root, n))]
        if len(files) > 1:
            from concurrent.futures import ThreadPoolExecutor  # only a save pays for the import

            with ThreadPoolExecutor(max_workers=min(8, len(files))) as pool:
                list(pool.map(_fsync_path, files))
        elif files:
            _fsync_path(files[0])
        for folder in reversed(folders):  # the deepest first, the stage itself last
            _fsync_path(folder)


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def check_interrupted_save(target: str | os.PathLike[str]) -> None:
    """Before loading ``target``: say what an interrupted :func:`atomic_directory` save left behind.

    A leftover stage next to an intact ``target`` only wastes space (logged as a warning naming it). A missing
    ``target`` with a parked previous save beside it (the two-rename fallback was killed between its renames)
    raises :class:`XfFileNotFoundError` saying which directory to rename back.
    """
    target = Path(target).absolute()
    parent = target.parent
    if not parent.is_dir():
        return
    prefix = f".{target.name}"
    leftovers = sorted(p for p in parent.iterdir() if p.name.startswith(prefix + _STAGE))
    parked = sorted(p for p in parent.iterdir() if p.name.startswith(prefix + _OLD))
    if not target.exists() and parked:
        raise XfFileNotFoundError(
            f"{target} is missing because a save into it was interrupted; the previous complete save is in "
            f"{parked[-1]}. Recover it with `mv '{parked[-1]}' '{target}'` (or save again).",
            path=str(target),
        )
    for leftover in leftovers:
        logger.warning(
            "an interrupted save left %s; %s still holds the previous complete save. Delete %s to free the space.",
            leftover,
            target,
            leftover,
        )
