"""``xf chat MODEL`` on a tiny random Llama whose tokenizer carries a chat template written here: a real
terminal session under a pty (prompt, streamed reply, /clear, Ctrl-D), the conversation kept across turns,
and one-line errors."""

from __future__ import annotations

import io
import json
import os
import pty
import select
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest
import torch

from xf_core import testing as core_testing
from xf_core.cli import main
from xf_load import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM
from xf_pipeline.chat import Chat
from xf_tokenize import AutoTokenizer

TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
TEXTS = ["hello there, how are you today?", "the cat sat on the mat and looked at the dog."] * 20
EOS = "<|end|>"


@pytest.fixture(scope="module")
def tiny_chat_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny-chat-llama")
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "chat_template": TEMPLATE, "eos_token": EOS}
    core_testing.write_byte_level_bpe(
        path, TEXTS, vocab_size=300, special_tokens=[EOS], tokenizer_config=config, fast=True
    )
    tokenizer = AutoTokenizer.from_pretrained(path)
    vocab = len(tokenizer)
    torch.manual_seed(0)
    llama = LlamaConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=vocab,
        max_position_embeddings=256,
        eos_token_id=tokenizer.convert_tokens_to_ids(EOS),
    )
    LlamaForCausalLM(llama).save_pretrained(path)
    return path


def greedy_reply(path, messages, max_new_tokens):
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt")[
        "input_ids"
    ]
    out = model.generate(ids, max_new_tokens=max_new_tokens, do_sample=False)
    return tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)


def _read_until(fd, buffer: bytearray, marker: bytes, count: int, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while buffer.count(marker) < count:
        left = deadline - time.monotonic()
        assert left > 0, f"waited for {marker!r} x{count}; the terminal shows {bytes(buffer)!r}"
        if select.select([fd], [], [], left)[0]:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # the child closed the terminal
                chunk = b""
            assert chunk, f"the chat ended early; the terminal shows {bytes(buffer)!r}"
            buffer += chunk


def test_a_terminal_session_under_a_pty(tiny_chat_model):
    expected = greedy_reply(tiny_chat_model, [{"role": "user", "content": "hello"}], 6)
    leader, follower = pty.openpty()
    env = {**os.environ, "XF_DISABLE_PROGRESS": "1", "HF_HUB_OFFLINE": "1"}
    args = [str(tiny_chat_model), "--device", "cpu", "--temperature", "0", "--max-new-tokens", "6"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "xf_core.cli", "chat", *args],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env=env,
        close_fds=True,
    )
    os.close(follower)
    screen = bytearray()
    try:
        _read_until(leader, screen, b"> ", 1)
        assert b"/exit or Ctrl-D ends" in screen  # the banner, shown on a terminal
        os.write(leader, b"hello\n")
        _read_until(leader, screen, b"> ", 2)
        os.write(leader, b"/clear\n")
        _read_until(leader, screen, b"> ", 3)
        os.write(leader, b"\x04")  # Ctrl-D at the prompt
        assert proc.wait(timeout=120) == 0
    finally:
        proc.kill()
        os.close(leader)
    text = screen.decode("utf-8", "replace").replace("\r\n", "\n")
    turn = text.split("> ", 2)[1]  # the echoed "hello", the streamed reply, up to the next prompt
    assert turn == f"hello\n{expected}\n", (turn, expected)
    assert "(conversation cleared)" in text and "Traceback" not in text


def test_the_conversation_is_kept_across_turns_and_cleared(tiny_chat_model):
    tokenizer = AutoTokenizer.from_pretrained(tiny_chat_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_chat_model).eval()
    chat = Chat(
        model, tokenizer, system="be brief", generate_kwargs={"max_new_tokens": 4, "do_sample": False}
    )
    out = io.StringIO()
    assert chat.loop(io.StringIO("hi\nthe cat\n/clear\nhello\n/exit\nnever read\n"), out) == 0
    first = greedy_reply(
        tiny_chat_model, [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}], 4
    )
    history = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": first},
        {"role": "user", "content": "the cat"},
    ]
    second = greedy_reply(tiny_chat_model, history, 4)  # the second turn sees the first
    assert chat.messages == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hello"},
        {
            "role": "assistant",
            "content": greedy_reply(tiny_chat_model, [*history[:1], {"role": "user", "content": "hello"}], 4),
        },
    ]
    assert out.getvalue().startswith(f"> {first}\n> {second}\n> (conversation cleared)\n> ")


def test_a_tokenizer_without_a_chat_template_is_one_line(tiny_chat_model, tmp_path, capsys):
    plain = tmp_path / "plain"
    plain.mkdir()
    for name in os.listdir(tiny_chat_model):
        (plain / name).write_bytes((tiny_chat_model / name).read_bytes())
    config = json.loads((plain / "tokenizer_config.json").read_text())
    del config["chat_template"]
    (plain / "tokenizer_config.json").write_text(json.dumps(config))
    assert main(["chat", str(plain), "--device", "cpu"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("xf chat: error: ") and err.count("\n") == 1 and "--chat-template FILE" in err
    template = tmp_path / "template.jinja"
    template.write_text(TEMPLATE)
    args = SimpleNamespace(
        model=str(plain),
        device="cpu",
        dtype="auto",
        system=None,
        chat_template=str(template),
        max_new_tokens=3,
        temperature=0.0,
        top_p=None,
        seed=None,
    )
    assert Chat.load(args).tokenizer.chat_template == TEMPLATE  # --chat-template fills the gap
