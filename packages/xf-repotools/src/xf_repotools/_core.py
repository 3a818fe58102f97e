"""What every checker shares: the repository view, the problem type, the registry and the content-hash cache.

A checker is a plain function ``check(repo) -> list[Problem]`` plus, where the repair is mechanical, a
``fix(repo) -> list[str]`` that rewrites files and returns the paths it changed. :data:`CHECKERS` is the one
table the ``check`` command, the pre-commit hooks and CI read.

The cache is a JSON file per repository root (under ``$XF_REPOTOOLS_CACHE`` or ``~/.cache/xf-repotools``)
mapping ``checker:version:sha256-of-inputs`` to whatever the checker stored, so a file whose content (and
whose sources) did not change is not parsed again.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import subprocess
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xf_repotools.errors import RepoToolsError, SourceSyntaxError

__all__ = ["CHECKERS", "Cache", "Checker", "Problem", "Repo", "git_toplevel", "module_name", "register"]

_SKIP_DIRS = {".git", ".venv", "venv", "__pycache__", "node_modules", "build", "dist", ".tox", ".mypy_cache"}
_CACHE_FORMAT = 1


@dataclass(frozen=True)
class Problem:
    """One finding: ``path`` relative to the root (POSIX), 1-based ``line``, and what is wrong."""

    path: str
    line: int
    message: str
    checker: str = ""
    fixable: bool = True

    def fix_hint(self) -> str:
        if self.fixable:
            return f"xf-repotools check {self.checker} --fix"
        return f"edit by hand, then xf-repotools check {self.checker}"

    def render(self) -> str:
        return f"{self.path}:{self.line}: {self.message} (fix: {self.fix_hint()})"

    def as_dict(self) -> dict[str, Any]:
        return {
            "checker": self.checker,
            "path": self.path,
            "line": self.line,
            "message": self.message,
            "fix": self.fix_hint(),
        }


@dataclass(frozen=True)
class Checker:
    name: str
    summary: str
    check: Callable[[Repo], list[Problem]]
    fix: Callable[[Repo], list[str]] | None = None


CHECKERS: dict[str, Checker] = {}


def register(
    name: str, summary: str, *, fix: Callable[[Repo], list[str]] | None = None
) -> Callable[[Callable[[Repo], list[Problem]]], Callable[[Repo], list[Problem]]]:
    """Add ``check`` to :data:`CHECKERS` under ``name``; problems it returns are stamped with the name."""

    def decorate(check: Callable[[Repo], list[Problem]]) -> Callable[[Repo], list[Problem]]:
        def stamped(repo: Repo) -> list[Problem]:
            return [
                Problem(p.path, p.line, p.message, name, p.fixable and fix is not None) for p in check(repo)
            ]

        CHECKERS[name] = Checker(name, summary, stamped, fix)
        return check

    return decorate


def git_toplevel(start: Path) -> Path:
    """The git top level of ``start``; the start directory itself when it is not inside a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--show-toplevel"], cwd=start, capture_output=True, text=True, check=True
        )
    except (subprocess.CalledProcessError, FileNotFoundError):
        return start.resolve()
    return Path(out.stdout.strip())


class Cache:
    """A JSON dict on disk; ``get``/``put`` by key, written back once by :meth:`save` if anything changed."""

    def __init__(self, path: Path | None) -> None:
        self.path: Path | None = path
        self.entries: dict[str, Any] = {}
        self.dirty: bool = False
        if path is not None and path.is_file():
            try:
                data = json.loads(path.read_text())
            except (OSError, ValueError):
                data = {}
            if data.get("format") == _CACHE_FORMAT:
                self.entries = data.get("entries", {})

    @classmethod
    def for_root(cls, root: Path) -> Cache:
        base = os.environ.get("XF_REPOTOOLS_CACHE")
        if base == "0":
            return cls(None)
        folder = (
            Path(base)
            if base
            else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "xf-repotools"
        )
        name = hashlib.sha1(str(root.resolve()).encode()).hexdigest()[:16]
        return cls(folder / f"{name}.json")

    def get(self, key: str) -> Any:
        return self.entries.get(key)

    def put(self, key: str, value: Any) -> None:
        self.entries[key] = value
        self.dirty = True

    def save(self) -> None:
        if self.path is None or not self.dirty:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps({"format": _CACHE_FORMAT, "entries": self.entries}))
            tmp.replace(self.path)
        except OSError:
            return  # a cache that cannot be written only costs time
        self.dirty = False


@dataclass
class Repo:
    """The repository being checked: its files (git's view when it is a checkout), contents and config."""

    root: Path
    cache: Cache = field(default_factory=lambda: Cache(None))
    _files: list[str] | None = None
    _text: dict[str, str] = field(default_factory=dict)
    _digest: dict[str, str] = field(default_factory=dict)
    _config: dict[str, Any] | None = None
    _modules: dict[str, str] | None = None

    @classmethod
    def open(cls, root: Path, *, use_cache: bool = True) -> Repo:
        root = root.resolve()
        if not root.is_dir():
            raise RepoToolsError(f"--root {root} is not a directory; pass the repository's top-level folder")
        return cls(root, Cache.for_root(root) if use_cache else Cache(None))

    def files(self) -> list[str]:
        """Every file of the repository, relative POSIX paths, sorted (tracked and untracked-not-ignored)."""
        if self._files is None:
            self._files = sorted(self._git_files() or self._walk_files())
        return self._files

    def _git_files(self) -> list[str] | None:
        if not (self.root / ".git").exists():
            return None
        try:
            out = subprocess.run(
                ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                cwd=self.root,
                capture_output=True,
                check=True,
            ).stdout
        except (subprocess.CalledProcessError, FileNotFoundError):
            return None
        names = {n for n in out.decode().split("\0") if n}
        return [n for n in names if (self.root / n).is_file()]

    def _walk_files(self) -> list[str]:
        found = []
        for folder, dirs, names in os.walk(self.root):
            dirs[:] = [d for d in dirs if d not in _SKIP_DIRS and not d.startswith(".")]
            rel = Path(folder).relative_to(self.root)
            found += [(rel / n).as_posix() for n in names]
        return found

    def python_files(self) -> list[str]:
        return [f for f in self.files() if f.endswith(".py")]

    def read(self, rel: str) -> str:
        if rel not in self._text:
            try:
                self._text[rel] = (self.root / rel).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as e:
                raise RepoToolsError(f"{rel}: cannot be read as UTF-8 text ({e})") from e
        return self._text[rel]

    def parse(self, rel: str) -> ast.Module:
        """The AST of ``rel``; a syntax error becomes :class:`SourceSyntaxError` naming the file and line."""
        try:
            return ast.parse(self.read(rel), filename=rel)
        except SyntaxError as e:
            raise SourceSyntaxError(rel, e.lineno or 1, e.msg) from e

    def write(self, rel: str, text: str) -> None:
        path = self.root / rel
        tmp = path.with_name(path.name + ".xf-tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
        self._text[rel] = text
        self._digest.pop(rel, None)
        if self._files is not None and rel not in self._files:
            self._files, self._modules = None, None  # a new file: list again

    def digest(self, rel: str) -> str:
        if rel not in self._digest:
            self._digest[rel] = hashlib.sha256(self.read(rel).encode()).hexdigest()[:32]
        return self._digest[rel]

    def exists(self, rel: str) -> bool:
        return rel in set(self.files()) or (self.root / rel).is_file()

    def config(self, section: str) -> dict[str, Any]:
        """``[tool.xf-repotools.<section>]`` of the root ``pyproject.toml`` ({} when absent)."""
        if self._config is None:
            path = self.root / "pyproject.toml"
            try:
                data = tomllib.loads(path.read_text()) if path.is_file() else {}
            except tomllib.TOMLDecodeError as e:
                raise RepoToolsError(f"pyproject.toml: not valid TOML ({e}); fix it first") from e
            self._config = data
        tool = self._config.get("tool", {}).get("xf-repotools", {})
        return tool.get(section, {}) if section else tool

    def pyproject(self) -> dict[str, Any]:
        self.config("")
        assert self._config is not None
        return self._config

    def modules(self) -> dict[str, str]:
        """Dotted module name -> file, for every Python file (packages resolved through ``__init__.py``)."""
        if self._modules is not None:
            return self._modules
        files = set(self.python_files())
        table: dict[str, str] = {}
        for rel in sorted(files):
            name = module_name(rel, files)
            if name and name not in table:
                table[name] = rel
        self._modules = table
        return table


def module_name(rel: str, files: set[str]) -> str | None:
    """``packages/a/src/pkg/sub/m.py`` -> ``pkg.sub.m`` (climbing while folders hold an ``__init__.py``)."""
    parts = rel[:-3].split("/")
    if not all(p.isidentifier() for p in parts[-1:]):
        return None
    name = [parts[-1]] if parts[-1] != "__init__" else []
    folder = parts[:-1]
    while folder and "/".join([*folder, "__init__.py"]) in files:
        if not folder[-1].isidentifier():
            return None
        name.insert(0, folder[-1])
        folder = folder[:-1]
    return ".".join(name) or None
