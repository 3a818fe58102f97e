"""``modular``: a family written as differences from another (``modular_<name>.py``) generates its standalone
``modeling_<name>.py``, with a do-not-edit banner; the check fails when a generated file is stale.

The modular file imports classes from a parent family's module (a module under ``models/`` or named
``modeling_*``) and subclasses them. The converter (libcst):

* derives the renames from the class names (``FooModel(LlamaModel)`` gives ``Llama->Foo``, also lower- and
  upper-case);
* emits, in the parent's order, every parent definition the modular code needs (transitively), renamed; a
  parent class the modular file subclasses is merged with it: the parent's bases, the parent's body with the
  modular methods and attributes replacing those of the same name, new members appended;
* then the modular file's own other definitions; imports are the union of both files' (minus the parent
  imports); the result is formatted by ruff.

``xf-repotools modular-convert FILE`` writes the generated file; ``check modular --fix`` rewrites stale ones.
"""

from __future__ import annotations

from pathlib import Path

from xf_repotools._core import Problem, Repo, register
from xf_repotools.errors import RepoToolsError

__all__ = ["BANNER", "convert", "generated_path", "is_parent_module"]

BANNER = (
    "# This file was generated from {source} by `xf-repotools modular-convert`; do not edit it.\n"
    "# Edit {source} and run `xf-repotools check modular --fix` instead.\n"
)


def generated_path(modular: str) -> str:
    folder, _, name = modular.rpartition("/")
    return (
        f"{folder}/{name.replace('modular_', 'modeling_', 1)}"
        if folder
        else name.replace("modular_", "modeling_", 1)
    )


def is_parent_module(rel: str) -> bool:
    base = rel.rsplit("/", 1)[-1]
    return (
        ("/models/" in f"/{rel}" or base.startswith("modeling_"))
        and base
        not in (
            "modeling_utils.py",
            "__init__.py",
        )
        and not base.startswith("modular_")
    )


def convert(repo: Repo, modular: str) -> str:
    """The generated ``modeling_*`` text for the repository file ``modular`` (relative to the root)."""
    from xf_repotools._modular_cst import convert as convert_with_libcst

    return convert_with_libcst(repo, modular, banner=BANNER, is_parent_module=is_parent_module)


def _modular_files(repo: Repo) -> list[str]:
    return [
        f
        for f in repo.python_files()
        if f.rsplit("/", 1)[-1].startswith("modular_") and "/models/" in f"/{f}"
    ]


def _stale(repo: Repo) -> list[tuple[str, str, str]]:
    """(modular file, generated file, expected text) for every generated file that is missing or stale."""
    out = []
    modules_digest = None
    for rel in _modular_files(repo):
        target = generated_path(rel)
        if modules_digest is None:
            modules_digest = ":".join(repo.digest(f) for f in repo.python_files() if is_parent_module(f))
        current = repo.read(target) if repo.exists(target) else ""
        key = f"modular-1:{repo.digest(rel)}:{modules_digest}"
        if repo.cache.get(key) == current:
            continue
        expected = convert(repo, rel)
        repo.cache.put(key, expected)
        if expected != current:
            out.append((rel, target, expected))
    return out


@register(
    "modular", "generated modeling_*.py files are current with their modular_*.py", fix=lambda r: fix(r)
)
def check(repo: Repo) -> list[Problem]:
    return [
        Problem(
            target,
            1,
            f"stale: it is generated from {rel}"
            if repo.exists(target)
            else f"missing: generate it from {rel}",
        )
        for rel, target, _ in _stale(repo)
    ]


def fix(repo: Repo) -> list[str]:
    changed = []
    for _rel, target, expected in _stale(repo):
        repo.write(target, expected)
        changed.append(target)
    return changed


def convert_command(root: Path, file: Path, *, check: bool) -> int:
    repo = Repo.open(root)
    path = file if file.is_absolute() or (Path.cwd() / file).exists() else repo.root / file
    try:
        rel = path.resolve().relative_to(repo.root).as_posix()
    except ValueError as e:
        raise RepoToolsError(f"{file} is not inside the repository {repo.root}; pass --root") from e
    expected = convert(repo, rel)
    target = generated_path(rel)
    current = repo.read(target) if repo.exists(target) else ""
    if check:
        if expected != current:
            print(f"{target}:1: stale: it is generated from {rel} (fix: xf-repotools check modular --fix)")
            return 1
        return 0
    if expected != current:
        repo.write(target, expected)
        print(f"wrote {target}")
    return 0
