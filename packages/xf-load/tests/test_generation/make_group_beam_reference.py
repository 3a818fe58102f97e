"""Writes the expected outputs of test_generation_group_beam.py with transformers 4.50 (the last version whose
generate runs group beam search itself): run it with that transformers on the path, e.g.
``PYTHONPATH=/tmp/tf450 python make_group_beam_reference.py CKPT_DIR group_beam_transformers_4_50.json``, where
CKPT_DIR is the checkpoint the test's fixture saves; paste the output into the JSON file's "expected".
Not a test (no test_ prefix)."""

import json
import sys
from pathlib import Path

import torch
import transformers
from transformers import LlamaForCausalLM

print(transformers.__version__, file=sys.stderr)
m = LlamaForCausalLM.from_pretrained(sys.argv[1]).eval()
SETTINGS = json.loads(Path(sys.argv[2]).read_text())["settings"]
ids = torch.randint(3, 128, (2, 6), generator=torch.Generator().manual_seed(0))
mask = torch.ones_like(ids)
padded = ids.clone()
padded[1, :2] = 0
pmask = mask.clone()
pmask[1, :2] = 0
out = {}
for name, kw in SETTINGS.items():
    for tag, (i, a) in {"plain": (ids, mask), "padded": (padded, pmask)}.items():
        with torch.no_grad():
            r = m.generate(i, attention_mask=a, return_dict_in_generate=True, output_scores=True, **kw)
        out[f"{name}/{tag}"] = {
            "sequences": r.sequences.tolist(),
            "scores": [round(x, 4) for x in r.sequences_scores.tolist()],
        }
json.dump(out, sys.stdout)
