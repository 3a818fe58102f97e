"""``xf-repotools metadata OUT``: a table of model families, their pipeline tasks and auto classes.

Read statically from xf-load's ``auto.py`` (no import, no torch): each ``FAMILIES`` entry gives the model type,
its module, config class and heads; a head maps to an auto class and a pipeline task. ``OUT`` ending in
``.csv`` gets CSV (one row per model type and head), anything else JSON (one object per model type).
"""

from __future__ import annotations

import ast
import csv
import json
from pathlib import Path

from xf_repotools._core import Repo
from xf_repotools.errors import RepoToolsError

__all__ = ["AUTO_FILE", "HEADS_FILE", "HEAD_AUTO_CLASS", "families", "head_tasks", "main"]

AUTO_FILE = "packages/xf-load/src/xf_load/auto.py"
HEADS_FILE = "packages/xf-load/src/xf_load/heads.py"
HEAD_AUTO_CLASS = {
    "base": "AutoModel",
    "causal_lm": "AutoModelForCausalLM",
    "masked_lm": "AutoModelForMaskedLM",
    "sequence_classification": "AutoModelForSequenceClassification",
    "token_classification": "AutoModelForTokenClassification",
    "question_answering": "AutoModelForQuestionAnswering",
}


def _evaluate(node: ast.expr, helpers: dict[str, ast.FunctionDef]) -> dict[str, object]:
    """A ``Family(...)`` call or a call of a helper returning one, with string arguments, as a dict."""
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
        raise ValueError(ast.unparse(node))
    if node.func.id == "Family":
        module, config, heads = (ast.literal_eval(a) for a in node.args)
        return {"module": module, "config": config, "heads": heads}
    helper = helpers[node.func.id]
    env = {a.arg: ast.literal_eval(v) for a, v in zip(helper.args.args, node.args)}
    returned = next(s.value for s in ast.walk(helper) if isinstance(s, ast.Return) and s.value is not None)
    source = ast.unparse(returned)
    value = eval(compile(source, "<auto>", "eval"), {"__builtins__": {}, "Family": lambda *a: a}, env)
    module, config, heads = value
    return {"module": module, "config": config, "heads": heads}


def head_tasks(repo: Repo, heads: str = HEADS_FILE) -> dict[str, str]:
    """Head kind -> pipeline task: the ``HEAD_TASKS`` dict literal of xf-load's ``heads.py``, read statically."""
    if not repo.exists(heads):
        raise RepoToolsError(f"{heads} not found; metadata reads the HEAD_TASKS table of xf-load's heads.py")
    for node in ast.parse(repo.read(heads)).body:
        if isinstance(node, ast.AnnAssign) and ast.unparse(node.target) == "HEAD_TASKS" and node.value:
            try:
                return dict(ast.literal_eval(node.value))
            except ValueError as e:
                raise RepoToolsError(f"{heads}:{node.lineno}: HEAD_TASKS is not a dict literal ({e})") from e
    raise RepoToolsError(f"{heads}: no HEAD_TASKS dict literal; metadata reads the head kinds' tasks from it")


def families(repo: Repo, auto: str = AUTO_FILE) -> dict[str, dict[str, object]]:
    if not repo.exists(auto):
        raise RepoToolsError(f"{auto} not found; metadata reads the FAMILIES table of xf-load's auto.py")
    tree = ast.parse(repo.read(auto))
    helpers = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    table = next(
        (
            n.value
            for n in tree.body
            if isinstance(n, ast.AnnAssign | ast.Assign)
            and "FAMILIES" in ast.unparse(n.target if isinstance(n, ast.AnnAssign) else n.targets[0])
        ),
        None,
    )
    if not isinstance(table, ast.Dict):
        raise RepoToolsError(f"{auto}: no FAMILIES dict literal")
    tasks = head_tasks(repo)
    out = {}
    for key, value in zip(table.keys, table.values):
        model_type = ast.literal_eval(key)  # type: ignore[arg-type]
        try:
            entry = _evaluate(value, helpers)
        except (ValueError, KeyError, StopIteration) as e:
            raise RepoToolsError(
                f"{auto}:{value.lineno}: cannot read the entry for {model_type!r} ({e})"
            ) from e
        heads: dict[str, str] = entry["heads"]  # type: ignore[assignment]
        entry["auto_classes"] = {HEAD_AUTO_CLASS.get(h, h): cls for h, cls in heads.items()}
        entry["tasks"] = sorted({tasks[h] for h in heads if h in tasks})
        out[model_type] = entry
    return out


def main(root: Path, out: Path) -> int:
    repo = Repo.open(root)
    table = families(repo)
    tasks = head_tasks(repo)
    if out.suffix == ".csv":
        with out.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["model_type", "module", "config", "head", "class", "auto_class", "task"])
            for model_type, entry in table.items():
                for head, cls in entry["heads"].items():  # type: ignore[attr-defined]
                    writer.writerow(
                        [
                            model_type,
                            entry["module"],
                            entry["config"],
                            head,
                            cls,
                            HEAD_AUTO_CLASS.get(head, ""),
                            tasks.get(head, ""),
                        ]
                    )
    else:
        out.write_text(json.dumps(table, indent=2) + "\n")
    print(f"wrote {out} ({len(table)} model types)")
    return 0
