"""A tokenizer shared between threads: each call's padding/truncation settings stay its own."""

from __future__ import annotations

import itertools
import random
import threading

from xf_core.testing import TOKENIZER_CORPUS, minilm_dir
from xf_tokenize import PreTrainedTokenizerFast

_MAX_LENGTHS = (6, 11, 24, None)
_PADDINGS = (False, True, "max_length")
_TRUNCATIONS = (True, False, "longest_first")
_SHAPES = ("one", "batch", "pair")


def _call(tok: PreTrainedTokenizerFast, setting: tuple, index: int) -> dict:
    max_length, padding, truncation, shape = setting
    texts = TOKENIZER_CORPUS[index : index + 3]
    if shape == "one":
        args: tuple = (texts[0],)
    elif shape == "batch":
        args = (texts,)
    else:
        args = (texts[0], texts[1])
    if padding == "max_length" and max_length is None:
        max_length = 40  # padding to the model's 512 only slows the test down
    out = tok(*args, max_length=max_length, padding=padding, truncation=truncation, verbose=False)
    return dict(out)


def test_threads_with_mixed_settings_get_what_each_call_gets_alone():
    tok = PreTrainedTokenizerFast.from_pretrained(minilm_dir())
    settings = list(itertools.product(_MAX_LENGTHS, _PADDINGS, _TRUNCATIONS, _SHAPES))
    indices = range(0, 60, 7)
    alone = {(s, i): _call(tok, s, i) for s in settings for i in indices}
    lengths = {
        len(v["input_ids"]) if k[0][3] != "batch" else len(v["input_ids"][0]) for k, v in alone.items()
    }
    assert len(lengths) > 5  # the settings really give encodings of different lengths

    wrong: list[tuple] = []
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def work(seed: int) -> None:
        rng = random.Random(seed)
        start.wait()
        try:
            for _ in range(300):
                key = (rng.choice(settings), rng.choice(indices))
                if _call(tok, *key) != alone[key]:
                    wrong.append(key)
        except BaseException as e:  # reported below, not lost in the thread
            errors.append(e)

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors[0]
    assert not wrong, f"{len(wrong)} of 2400 calls got another thread's settings, e.g. {wrong[0]}"
