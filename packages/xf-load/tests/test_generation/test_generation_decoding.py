"""Decoding behaviour on a tiny toy causal LM (see conftest.py): caches, padding, stopping, outputs."""

import io
import threading
import time

import pytest
import torch

from xf_core.testing import slow
from xf_load.cache import DynamicCache, StaticCache
from xf_load.generation import (
    GenerateBeamDecoderOnlyOutput,
    GenerateDecoderOnlyOutput,
    GenerationConfig,
    TextIteratorStreamer,
    TextStreamer,
    generate,
)

V = 97


def _prompt(rows=2, length=5, seed=0):
    return torch.randint(0, V, (rows, length), generator=torch.Generator().manual_seed(seed))


def test_greedy_with_dynamic_static_and_no_cache_equals_full_recompute(toy, greedy_reference):
    model = toy()
    ids = _prompt()
    expected = greedy_reference(model, ids, 12)
    assert torch.equal(model.generate(ids, max_new_tokens=12), expected)
    assert torch.equal(model.generate(ids, max_new_tokens=12, cache_implementation="static"), expected)
    assert torch.equal(model.generate(ids, max_new_tokens=12, use_cache=False), expected)


def test_left_padded_batch_gives_each_row_its_own_tokens(toy):
    model = toy()
    rows = [_prompt(1, n, seed=n)[0] for n in (3, 7, 5)]
    pad = 0
    width = max(len(r) for r in rows)
    ids = torch.stack([torch.cat([torch.full((width - len(r),), pad), r]) for r in rows])
    mask = torch.stack([torch.cat([torch.zeros(width - len(r)), torch.ones(len(r))]) for r in rows]).long()
    for cache in ("dynamic", "static"):
        batch = model.generate(
            ids, attention_mask=mask, max_new_tokens=8, pad_token_id=pad, cache_implementation=cache
        )
        for i, row in enumerate(rows):
            alone = model.generate(row[None], max_new_tokens=8)
            assert torch.equal(batch[i, width:], alone[0, len(row) :]), (cache, i)


def test_eos_stops_rows_and_pads_finished_ones(toy):
    model = toy()
    ids = _prompt(rows=3)
    free = model.generate(ids, max_new_tokens=10)
    eos = int(free[0, 5 + 2])  # the third token row 0 generates
    out = model.generate(ids, max_new_tokens=10, eos_token_id=eos, pad_token_id=V - 1)
    first = out[0, 5:].tolist()
    assert first[: first.index(eos) + 1] == free[0, 5 : 5 + first.index(eos) + 1].tolist()
    assert all(t == V - 1 for t in first[first.index(eos) + 1 :])
    for r in range(3):  # every row either hit EOS or ran to the end
        gen = out[r, 5:].tolist()
        assert eos in gen or len(gen) == out.shape[1] - 5
    # eos as a list: any of them stops
    out2 = model.generate(ids[:1], max_new_tokens=10, eos_token_id=[V + 1000 - 1000 - 1, eos])
    assert out2.shape[1] <= 5 + 3


def test_min_new_tokens_and_bad_words_and_suppression_are_respected(toy):
    model = toy()
    ids = _prompt(rows=1)
    free = model.generate(ids, max_new_tokens=6)
    eos = int(free[0, 5])
    out = model.generate(ids, max_new_tokens=6, eos_token_id=eos, min_new_tokens=4)
    assert eos not in out[0, 5:9].tolist()
    banned = free[0, 5:8].tolist()
    out = model.generate(ids, max_new_tokens=6, bad_words_ids=[[t] for t in banned])
    assert not set(out[0, 5:].tolist()) & set(banned)


def test_custom_processors_and_criteria_are_plain_callables(toy):
    model = toy()
    ids = _prompt(rows=2)

    def only_seven(input_ids, scores):
        out = torch.full_like(scores, -float("inf"))
        out[:, 7] = 0
        return out

    calls = []

    def stop_after_three(input_ids, scores):
        calls.append(input_ids.shape[1])
        return input_ids.shape[1] >= 5 + 3

    out = model.generate(
        ids, max_new_tokens=10, logits_processor=[only_seven], stopping_criteria=[stop_after_three]
    )
    assert out[:, 5:].tolist() == [[7, 7, 7], [7, 7, 7]]
    assert calls == [6, 7, 8]


def test_max_time_stops_early(toy):
    model = toy()

    def slow(input_ids, scores):
        time.sleep(0.02)
        return scores

    out = model.generate(
        _prompt(rows=1), max_new_tokens=100, max_length=110, max_time=0.1, logits_processor=[slow]
    )
    assert 5 + 1 <= out.shape[1] < 5 + 30


class CharTokenizer:
    """Token i decodes to one character: letters, spaces, a few symbols and newlines."""

    alphabet = "abc def ghi jkl mno pqr stu vwx yz. AB! CD? EF,\n"

    def decode(self, ids, skip_special_tokens=False):
        if isinstance(ids, int):
            ids = [ids]
        return "".join(self.alphabet[i % len(self.alphabet)] for i in ids)


def test_stop_strings_stop_when_the_text_ends_with_them(toy):
    model = toy()
    tok = CharTokenizer()
    ids = _prompt(rows=1)
    free = model.generate(ids, max_new_tokens=12)
    text = tok.decode(free[0, 5:].tolist())
    stop = text[4:6]  # ends on the 6th new token (or earlier if it occurs before)
    out = model.generate(ids, max_new_tokens=12, stop_strings=stop, tokenizer=tok)
    new_text = tok.decode(out[0, 5:].tolist())
    assert new_text.endswith(stop) and stop not in new_text[:-1]
    with pytest.raises(ValueError, match="tokenizer"):
        model.generate(ids, max_new_tokens=3, stop_strings="x")


def test_text_streamer_writes_exactly_the_decoded_output(toy):
    model = toy()
    tok = CharTokenizer()
    ids = _prompt(rows=1)
    sink = io.StringIO()
    pieces = []

    class Recorder(TextStreamer):
        def on_finalized_text(self, text, stream_end=False):
            pieces.append(text)
            super().on_finalized_text(text, stream_end)

    out = model.generate(ids, max_new_tokens=30, streamer=Recorder(tok, skip_prompt=True, file=sink))
    assert sink.getvalue() == tok.decode(out[0, 5:].tolist()) + "\n"
    assert len([p for p in pieces if p]) > 1  # it streamed, not one dump at the end
    sink = io.StringIO()
    out = model.generate(ids, max_new_tokens=5, streamer=TextStreamer(tok, file=sink))
    assert sink.getvalue() == tok.decode(out[0].tolist()) + "\n"


def test_iterator_streamer_yields_the_text_while_generate_runs_in_a_thread(toy):
    model = toy()
    tok = CharTokenizer()
    ids = _prompt(rows=1)
    streamer = TextIteratorStreamer(tok, skip_prompt=True, timeout=30)
    result = {}
    thread = threading.Thread(
        target=lambda: result.update(out=model.generate(ids, max_new_tokens=25, streamer=streamer))
    )
    thread.start()
    text = "".join(streamer)
    thread.join()
    assert text == tok.decode(result["out"][0, 5:].tolist())
    with pytest.raises(ValueError, match="beam"):
        model.generate(ids, max_new_tokens=3, num_beams=2, streamer=TextStreamer(tok))


def test_continue_from_returned_cache_matches_one_long_call(toy):
    model = toy()
    ids = _prompt(rows=1)
    full = model.generate(ids, max_new_tokens=12)
    for cache_impl in ("dynamic", "static"):
        kwargs = {"cache_implementation": cache_impl}
        if cache_impl == "static":
            cache = StaticCache(max_cache_len=40)
            first = model.generate(ids, max_new_tokens=6, past_key_values=cache, return_dict_in_generate=True)
        else:
            first = model.generate(ids, max_new_tokens=6, return_dict_in_generate=True, **kwargs)
        assert first.past_key_values.get_seq_length() == 5 + 6 - 1
        second = model.generate(first.sequences, max_new_tokens=6, past_key_values=first.past_key_values)
        assert torch.equal(second, full), cache_impl


def test_return_dict_has_scores_and_logits_per_new_token(toy):
    model = toy()
    ids = _prompt(rows=2)
    out = model.generate(
        ids,
        max_new_tokens=4,
        return_dict_in_generate=True,
        output_scores=True,
        output_logits=True,
        repetition_penalty=1.3,
    )
    assert isinstance(out, GenerateDecoderOnlyOutput)
    assert len(out.scores) == len(out.logits) == 4 and out.scores[0].shape == (2, V)
    assert not torch.equal(out.scores[1], out.logits[1])  # the penalty changed them
    assert torch.equal(torch.stack(out.scores, 1).argmax(-1), out.sequences[:, 5:])
    assert isinstance(out.past_key_values, DynamicCache)


def test_beam_search_shapes_scores_and_num_return_sequences(toy):
    model = toy()
    ids = _prompt(rows=2)
    out = model.generate(
        ids,
        max_new_tokens=6,
        num_beams=4,
        num_return_sequences=3,
        return_dict_in_generate=True,
        output_scores=True,
    )
    assert isinstance(out, GenerateBeamDecoderOnlyOutput)
    assert out.sequences.shape == (6, 11) and out.sequences_scores.shape == (6,)
    assert torch.equal(out.sequences[:3, :5], ids[:1].expand(3, -1))
    assert (out.sequences_scores[:3].diff() <= 0).all()  # best first
    # Beams and caches: dynamic, static and no cache agree.
    for kwargs in ({"cache_implementation": "static"}, {"use_cache": False}):
        other = model.generate(ids, max_new_tokens=6, num_beams=4, num_return_sequences=3, **kwargs)
        assert torch.equal(other, out.sequences), kwargs


def test_beam_search_result_scores_at_least_as_well_as_greedy(toy):
    model = toy()
    ids = _prompt(rows=1)

    def logprob(seq):
        with torch.no_grad():
            lp = model(input_ids=seq).logits.log_softmax(-1)
        return lp[0, 4:-1].gather(-1, seq[0, 5:, None]).sum()

    greedy = model.generate(ids, max_new_tokens=6)
    beam = model.generate(ids, max_new_tokens=6, num_beams=5, length_penalty=0.0)
    assert logprob(beam) >= logprob(greedy) - 1e-5


def test_sampling_is_reproducible_with_a_seed_and_respects_top_k(toy):
    model = toy()
    ids = _prompt(rows=4)
    torch.manual_seed(3)
    a = model.generate(ids, max_new_tokens=8, do_sample=True, top_k=3)
    torch.manual_seed(3)
    b = model.generate(ids, max_new_tokens=8, do_sample=True, top_k=3)
    assert torch.equal(a, b)
    g = torch.Generator().manual_seed(5)
    c = model.generate(ids, max_new_tokens=8, do_sample=True, top_k=3, generator=g)
    g = torch.Generator().manual_seed(5)
    assert torch.equal(c, model.generate(ids, max_new_tokens=8, do_sample=True, top_k=3, generator=g))
    out = model.generate(
        ids, max_new_tokens=8, do_sample=True, top_k=3, return_dict_in_generate=True, output_logits=True
    )
    for step, logits in enumerate(out.logits):
        top3 = logits.topk(3).indices
        assert (top3 == out.sequences[:, 5 + step, None]).any(-1).all()


def test_free_function_generate_takes_a_resolved_config(toy):
    model = toy()
    ids = _prompt(rows=1)
    config = GenerationConfig(max_length=9).merged()
    assert torch.equal(generate(model, ids, config), model.generate(ids, max_new_tokens=4))


def test_static_cache_errors_say_what_to_do(toy):
    model = toy()
    with pytest.raises(ValueError, match="max_length"):
        model.generate(_prompt(rows=1), max_new_tokens=20, past_key_values=StaticCache(max_cache_len=10))
    cache = StaticCache(max_cache_len=4)
    with pytest.raises(ValueError, match="full"), torch.no_grad():
        model(input_ids=_prompt(rows=1), past_key_values=cache, use_cache=True)


def test_decode_step_is_captured_as_one_graph_and_matches_eager(toy):
    # fullgraph capture (a graph break would raise) with dynamo's eager backend: fast on CPU.
    model = toy()
    ids = _prompt(rows=2)
    eager = model.generate(ids, max_new_tokens=6, cache_implementation="static", return_dict_in_generate=True)
    compiled = model.generate(
        ids, max_new_tokens=6, compile={"backend": "eager"}, return_dict_in_generate=True
    )
    assert torch.equal(compiled.sequences, eager.sequences)
    assert compiled.past_key_values.get_seq_length() == eager.past_key_values.get_seq_length() == 5 + 6 - 1
    with pytest.raises(ValueError, match="static"):
        model.generate(ids, max_new_tokens=2, compile=True, cache_implementation="dynamic")
    with pytest.raises(ValueError, match="StaticCache"):
        model.generate(ids, max_new_tokens=2, compile=True, past_key_values=DynamicCache())


@slow
def test_inductor_compiled_decode_equals_eager(toy):
    model = toy(num_layers=1)
    ids = _prompt(rows=2)
    eager = model.generate(ids, max_new_tokens=4, cache_implementation="static")
    assert torch.equal(model.generate(ids, max_new_tokens=4, compile=True), eager)


def test_top_p_sampling_never_emits_tokens_outside_the_nucleus(toy):
    model = toy()
    ids = _prompt(rows=4)
    out = model.generate(
        ids,
        max_new_tokens=10,
        do_sample=True,
        top_k=0,
        top_p=0.5,
        return_dict_in_generate=True,
        output_logits=True,
    )
    for step, logits in enumerate(out.logits):
        probs, order = logits.softmax(-1).sort(-1, descending=True)
        in_nucleus = (
            probs.cumsum(-1) - probs
        ) < 0.5  # tokens before the mass reaches top_p, plus the one crossing it
        chosen = out.sequences[:, 5 + step]
        rank = (order == chosen[:, None]).float().argmax(-1)
        assert in_nucleus.gather(1, rank[:, None]).all(), step


def test_streamer_with_a_real_wordpiece_tokenizer_matches_its_decode(toy):
    from xf_core.testing import minilm_dir

    tokenizers = pytest.importorskip("tokenizers")
    path = minilm_dir() / "tokenizer.json"
    tok = tokenizers.Tokenizer.from_file(str(path))
    tok.no_padding()  # the file pads every encoding to 128
    model = toy(vocab_size=tok.get_vocab_size())
    ids = torch.tensor([tok.encode("the weather today is").ids[1:-1]])
    sink = io.StringIO()
    out = model.generate(
        ids,
        max_new_tokens=40,
        do_sample=True,
        top_k=50,
        streamer=TextStreamer(tok, skip_prompt=True, file=sink, skip_special_tokens=True),
    )
    expected = tok.decode(out[0, ids.shape[1] :].tolist(), skip_special_tokens=True)
    assert sink.getvalue() == expected + "\n" and len(expected) > 40
