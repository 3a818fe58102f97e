"""``xf chat MODEL``: a terminal chat with a causal language model, on xf-load's ``generate``, the tokenizer's
chat template and a :class:`~xf_load.generation.TextStreamer` that prints each reply as it is generated.
Cheap to import: torch and the model load when the command runs.

Each turn reads a line at the ``> `` prompt, appends it to the conversation as a user message, renders the
whole conversation with ``apply_chat_template(add_generation_prompt=True)``, streams the reply and appends it
as the assistant's message. ``/clear`` forgets the conversation (the ``--system`` message stays), ``/exit`` or
Ctrl-D ends; Ctrl-C during a reply stops that reply and forgets the turn, Ctrl-C at the prompt ends (130).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, TextIO

from xf_core.cli import write_output
from xf_core.errors import XfValueError

__all__ = ["Chat", "setup"]

_DTYPES = ("auto", "float32", "float16", "bfloat16")


def setup(parser: argparse.ArgumentParser) -> Any:
    """Chat with a causal language model in the terminal; each reply is printed as it is generated.

    Type a message at the "> " prompt. /clear forgets the conversation, /exit or Ctrl-D ends it.

    Examples:
      xf chat DIR
      xf chat Qwen/Qwen2.5-0.5B-Instruct --max-new-tokens 256 --temperature 0.7
      xf chat DIR --system "Answer in one sentence." --device cpu --temperature 0
      xf chat DIR --chat-template template.jinja
    """
    parser.add_argument("model", metavar="MODEL", help="local directory or Hub repo id of a causal LM")
    parser.add_argument("--device", help="cpu, cuda, cuda:1, mps (default: the first accelerator, else cpu)")
    parser.add_argument("--dtype", default="auto", choices=_DTYPES, help="weights dtype (default: auto)")
    parser.add_argument("--system", help="a system message that starts the conversation")
    parser.add_argument(
        "--chat-template", metavar="FILE", help="a Jinja chat template file, for a tokenizer without one"
    )
    parser.add_argument("--max-new-tokens", type=int, default=256, help="reply length limit (default 256)")
    parser.add_argument(
        "--temperature",
        type=float,
        default=None,
        help="sampling temperature; 0: greedy (default: the model's generation config)",
    )
    parser.add_argument("--top-p", type=float, default=None, help="nucleus sampling threshold")
    parser.add_argument("--seed", type=int, default=None, help="seed for sampling, for repeatable replies")

    def run(args: argparse.Namespace) -> int:
        if args.max_new_tokens < 1:
            raise XfValueError(f"--max-new-tokens must be >= 1, got {args.max_new_tokens}.")
        chat = Chat.load(args)
        return chat.loop(sys.stdin, sys.stdout)

    return run


class Chat:
    """A conversation with one model: :meth:`reply` runs one turn, :meth:`loop` the terminal session."""

    def __init__(self, model: Any, tokenizer: Any, *, system: str | None, generate_kwargs: dict[str, Any]):
        self.model = model
        self.tokenizer = tokenizer
        self.system: list[dict[str, str]] = [{"role": "system", "content": system}] if system else []
        self.messages: list[dict[str, str]] = list(self.system)
        self.generate_kwargs = generate_kwargs

    @classmethod
    def load(cls, args: argparse.Namespace) -> Chat:
        import torch

        from xf_load import AutoModelForCausalLM, check_device
        from xf_pipeline.cli import default_device
        from xf_tokenize import AutoTokenizer

        device = check_device(args.device, key="--device") if args.device else default_device()
        tokenizer = AutoTokenizer.from_pretrained(args.model)
        if args.chat_template:
            tokenizer.chat_template = Path(args.chat_template).read_text(encoding="utf-8")
        if not getattr(tokenizer, "chat_template", None):
            raise XfValueError(
                f"{args.model}'s tokenizer has no chat template (tokenizer_config.json 'chat_template', or "
                "chat_template.jinja); pass one with --chat-template FILE, or use an instruction-tuned model."
            )
        dtype: Any = args.dtype if args.dtype == "auto" else getattr(torch, args.dtype)
        model = AutoModelForCausalLM.from_pretrained(args.model, dtype=dtype).to(device).eval()
        if args.seed is not None:
            torch.manual_seed(args.seed)
        kwargs: dict[str, Any] = {"max_new_tokens": args.max_new_tokens}
        if args.temperature is not None:
            kwargs |= {"do_sample": False} if args.temperature == 0 else {"do_sample": True}
            if args.temperature > 0:
                kwargs["temperature"] = args.temperature
        if args.top_p is not None:
            kwargs["top_p"] = args.top_p
        return cls(model, tokenizer, system=args.system, generate_kwargs=kwargs)

    def reply(self, text: str, stream: TextIO | None = None) -> str:
        """Add ``text`` as the user's message, generate the reply (written to ``stream`` as it comes, when
        given), add it as the assistant's message and return it."""
        import torch

        from xf_load.generation import TextStreamer

        self.messages.append({"role": "user", "content": text})
        try:
            inputs = self.tokenizer.apply_chat_template(
                self.messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
            )
            inputs = {k: v.to(self.model.device) for k, v in inputs.items()}
            streamer = None
            if stream is not None:
                streamer = TextStreamer(
                    self.tokenizer, skip_prompt=True, file=stream, skip_special_tokens=True
                )
            with torch.inference_mode():
                out = self.model.generate(**inputs, streamer=streamer, **self.generate_kwargs)
        except BaseException:
            self.messages.pop()  # the turn did not happen
            raise
        answer = self.tokenizer.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
        self.messages.append({"role": "assistant", "content": answer})
        return answer

    def loop(self, stdin: TextIO, stdout: TextIO) -> int:
        """The terminal session: prompt, read, reply, until ``/exit`` or end of input."""
        interactive = stdin.isatty()
        if interactive:
            write_output(
                "Chat with the model: /clear forgets the conversation, /exit or Ctrl-D ends.\n", stdout
            )
        while True:
            write_output("> ", stdout)
            line = stdin.readline()
            if not line:  # Ctrl-D, or the end of piped input
                write_output("\n", stdout)
                return 0
            text = line.strip()
            if not text:
                continue
            if text in ("/exit", "/quit"):
                return 0
            if text == "/clear":
                self.messages = list(self.system)
                write_output("(conversation cleared)\n", stdout)
                continue
            try:
                self.reply(text, stream=stdout)  # the streamer ends the reply with a newline
            except KeyboardInterrupt:
                write_output("\n(reply stopped)\n", stdout)
