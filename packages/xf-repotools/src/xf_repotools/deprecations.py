"""``xf-repotools deprecations``: date deprecation notices from git history, and list stale model families.

A notice is the message of ``warnings.warn(..., DeprecationWarning | FutureWarning)`` (any category whose name
says Deprecation, or FutureWarning), a ``# deprecated`` comment or a docstring line starting ``Deprecated``
or ``.. deprecated::``. One without a date fails (exit 1, ``file:line``, the date git blame gives it);
``--fix`` writes ``deprecated (since YYYY-MM-DD)`` from that date. A family (``models/<name>.py``) whose file
has not changed in ``--stale-days`` days is listed as a candidate to deprecate.
"""

from __future__ import annotations

import ast
import datetime as dt
import io
import re
import subprocess
import tokenize
from pathlib import Path

from xf_repotools._core import Repo
from xf_repotools.repo import families

__all__ = ["notices", "stale_families"]

_WORD = re.compile(r"\b([Dd]eprecated)\b(?! \(since \d{4}-\d{2}-\d{2}\))")
_DATED = re.compile(r"\d{4}-\d{2}-\d{2}")


def _is_deprecation_call(node: ast.Call) -> bool:
    if ast.unparse(node.func).split(".")[-1] != "warn":
        return False
    category = (
        node.args[1]
        if len(node.args) > 1
        else next((k.value for k in node.keywords if k.arg == "category"), None)
    )
    name = ast.unparse(category) if category is not None else ""
    return "Deprecation" in name or name.endswith("FutureWarning")


def notices(repo: Repo) -> list[tuple[str, int]]:
    """(file, line) of every undated deprecation notice."""
    found: set[tuple[str, int]] = set()
    for rel in repo.python_files():
        text = repo.read(rel)
        if "eprecat" not in text:
            continue
        lines = text.splitlines()
        try:
            tree = ast.parse(text)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and _is_deprecation_call(node) and node.args:
                for sub in ast.walk(node.args[0]):
                    if isinstance(sub, ast.Constant) and isinstance(sub.value, str):
                        for i in range(sub.lineno, (sub.end_lineno or sub.lineno) + 1):
                            if _WORD.search(lines[i - 1]) and not _DATED.search(lines[i - 1]):
                                found.add((rel, i))
            elif isinstance(node, ast.FunctionDef | ast.ClassDef | ast.AsyncFunctionDef | ast.Module):
                doc = node.body[0] if node.body else None
                if (
                    isinstance(doc, ast.Expr)
                    and isinstance(doc.value, ast.Constant)
                    and isinstance(doc.value.value, str)
                ):
                    for i in range(doc.lineno, (doc.end_lineno or doc.lineno) + 1):
                        stripped = lines[i - 1].strip().lstrip("\"'")
                        if stripped.startswith(("Deprecated", ".. deprecated::")) and not _DATED.search(
                            stripped
                        ):
                            found.add((rel, i))
        for token in tokenize.generate_tokens(io.StringIO(text).readline):
            comment = token.type == tokenize.COMMENT and re.match(r"#\s*deprecated\b", token.string, re.I)
            if comment and not _DATED.search(token.string):
                found.add((rel, token.start[0]))
    return sorted(found)


def _blame_date(root: Path, rel: str, line: int) -> str:
    try:
        out = subprocess.run(
            ["git", "blame", "--porcelain", "-L", f"{line},{line}", "--", rel],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (subprocess.CalledProcessError, FileNotFoundError):
        return dt.date.today().isoformat()  # not committed yet: it is being deprecated today
    stamp = next((ln.split()[1] for ln in out.splitlines() if ln.startswith("author-time ")), None)
    if stamp is None or out.startswith("0000000000000000000000000000000000000000"):
        return dt.date.today().isoformat()
    return dt.datetime.fromtimestamp(int(stamp), tz=dt.UTC).date().isoformat()


def stale_families(repo: Repo, days: int) -> list[tuple[str, str, int]]:
    """(family file, date of its last change, age in days) for families unchanged for ``days`` days."""
    out = []
    today = dt.datetime.now(tz=dt.UTC).date()
    for folder, names in families(repo).items():
        for name in names:
            rel = next(
                (
                    f
                    for f in (f"{folder}/models/{name}.py", f"{folder}/models/{name}")
                    if repo.exists(f) or (repo.root / f).is_dir()
                ),
                None,
            )
            if rel is None:
                continue
            try:
                date = subprocess.run(
                    ["git", "log", "-1", "--format=%cs", "--", rel],
                    cwd=repo.root,
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout.strip()
            except (subprocess.CalledProcessError, FileNotFoundError):
                continue
            if date:
                age = (today - dt.date.fromisoformat(date)).days
                if age >= days:
                    out.append((rel, date, age))
    return out


def main(root: Path, *, fix: bool, stale_days: int) -> int:
    repo = Repo.open(root, use_cache=False)
    found = notices(repo)
    undated = []
    for rel, line in found:
        date = _blame_date(repo.root, rel, line)
        if fix:
            lines = repo.read(rel).splitlines(keepends=True)
            text = lines[line - 1]
            if _WORD.search(text):
                lines[line - 1] = _WORD.sub(rf"\1 (since {date})", text, count=1)
            else:  # a comment/docstring that says "Deprecated" in another form: date at the end of the line
                lines[line - 1] = text.rstrip("\n") + f" (since {date})\n"
            repo.write(rel, "".join(lines))
            print(f"dated {rel}:{line} (since {date})")
        else:
            undated.append(
                f"{rel}:{line}: deprecation notice without a date (introduced {date}) "
                "(fix: xf-repotools deprecations --fix)"
            )
    for problem in undated:
        print(problem)
    for rel, date, age in stale_families(repo, stale_days):
        print(f"stale: {rel} last changed {date} ({age} days ago); a candidate to deprecate")
    return 1 if undated else 0
