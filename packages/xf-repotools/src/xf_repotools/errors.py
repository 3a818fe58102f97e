"""Errors of xf-repotools: each names the file, flag or checker at fault and what to do."""

from __future__ import annotations

from xf_core.errors import XfError, XfValueError

__all__ = ["RepoToolsError", "SourceSyntaxError", "UnknownCheckerError"]


class RepoToolsError(XfError):
    """A repository tool cannot run on this repository (not a git checkout, unreadable file, ...)."""


class UnknownCheckerError(XfValueError):
    """``xf-repotools check NAME`` names a checker that does not exist; ``known`` lists the ones that do."""

    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(f"unknown checker {name!r}; choose from: {', '.join(known)}")
        self.name = name
        self.known = known


class SourceSyntaxError(RepoToolsError, SyntaxError):
    """A Python file of the repository does not parse; the checkers cannot judge it until it does."""

    def __init__(self, path: str, line: int, reason: str) -> None:
        super().__init__(f"{path}:{line}: cannot parse ({reason}); fix the syntax first")
        self.path = path
        self.line = line
        self.reason = reason

    def __str__(self) -> str:
        return str(self.args[0])
