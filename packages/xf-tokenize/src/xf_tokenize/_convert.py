"""Build a ``tokenizers.Tokenizer`` from classic vocabulary files, the way transformers converts them.

* ``vocab.txt`` → WordPiece with BERT normalization (``do_lower_case``, ``strip_accents``,
  ``tokenize_chinese_chars``).
* ``vocab.json`` + ``merges.txt`` → byte-level BPE (GPT-2 / RoBERTa), ``add_prefix_space``.
* ``tokenizer.model`` (SentencePiece BPE, Llama/Mistral) → BPE with byte fallback and a Metaspace
  pre-tokenizer; ``legacy`` and ``add_prefix_space`` choose the prepend scheme as transformers does.
* ``tokenizer.model`` of no known family (Unigram or BPE) → a tokenizer that follows the model's own
  normalizer spec (precompiled charsmap, whitespace handling, dummy prefix, user-defined pieces), as
  transformers builds it for a plain ``TokenizersBackend``.

The SentencePiece ``.model`` protobuf is read by a small wire-format parser below, so neither
``sentencepiece`` nor ``protobuf`` is needed at run time. Post-processors (special tokens around a sequence)
are set by the loader, which knows the special tokens.
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path

from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers
from tokenizers.models import BPE, Unigram, WordPiece

from xf_tokenize.errors import TokenizerFileError

__all__ = [
    "SentencePieceModel",
    "byte_level_bpe_tokenizer",
    "generate_merges",
    "piece_tokens",
    "read_sentencepiece_model",
    "sentencepiece_bpe_tokenizer",
    "sentencepiece_tokenizer",
    "wordpiece_tokenizer",
]


def _bad_file(path: Path, what: str, fix: str, cause: Exception | None = None) -> TokenizerFileError:
    reason = f": {cause}" if cause is not None else ""
    return TokenizerFileError(f"{path} {what}{reason}; {fix}", file=str(path))


# --- WordPiece ------------------------------------------------------------------------------------------------
def read_wordpiece_vocab(path: Path) -> dict[str, int]:
    """``vocab.txt``: one token per line, id = line number (a repeated token keeps its last line)."""
    try:
        lines = path.read_text(encoding="utf-8").split("\n")
    except UnicodeDecodeError as e:
        raise _bad_file(
            path, "is not UTF-8 text", "pass a BERT-style vocab.txt (one token per line)", e
        ) from e
    if lines and lines[-1] == "":
        lines.pop()
    vocab = {token.rstrip("\r") if token.endswith("\r") else token: i for i, token in enumerate(lines)}
    if not vocab:
        raise _bad_file(path, "is empty", "pass a BERT-style vocab.txt with one token per line")
    return vocab


def wordpiece_tokenizer(
    vocab_file: Path,
    *,
    unk_token: str = "[UNK]",
    do_lower_case: bool = True,
    strip_accents: bool | None = None,
    tokenize_chinese_chars: bool = True,
) -> Tokenizer:
    """A BERT tokenizer from ``vocab.txt`` (no post-processor yet)."""
    tokenizer = Tokenizer(WordPiece(read_wordpiece_vocab(vocab_file), unk_token=str(unk_token)))
    tokenizer.normalizer = normalizers.BertNormalizer(
        clean_text=True,
        handle_chinese_chars=tokenize_chinese_chars,
        strip_accents=strip_accents,
        lowercase=do_lower_case,
    )
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece(prefix="##")
    return tokenizer


# --- byte-level BPE ---------------------------------------------------------------------------------------------
def read_bpe_files(vocab_file: Path, merges_file: Path) -> tuple[dict[str, int], list[tuple[str, str]]]:
    try:
        vocab = json.loads(vocab_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise _bad_file(
            vocab_file, "is not valid JSON", "pass a GPT-2 style vocab.json ({token: id})", e
        ) from e
    if not isinstance(vocab, dict) or not all(isinstance(v, int) for v in vocab.values()):
        raise _bad_file(vocab_file, "is not a {token: id} mapping", "pass a GPT-2 style vocab.json")
    merges: list[tuple[str, str]] = []
    for number, line in enumerate(merges_file.read_text(encoding="utf-8").split("\n"), start=1):
        if not line or (number == 1 and line.startswith("#version")):
            continue
        parts = line.split(" ")
        if len(parts) != 2:
            raise _bad_file(
                merges_file,
                f"line {number} is {line!r}, not two tokens separated by one space",
                "fix the file",
            )
        merges.append((parts[0], parts[1]))
    return vocab, merges


def byte_level_bpe_tokenizer(
    vocab_file: Path, merges_file: Path, *, add_prefix_space: bool = False
) -> Tokenizer:
    """A GPT-2 style byte-level BPE tokenizer from ``vocab.json`` + ``merges.txt``."""
    vocab, merges = read_bpe_files(vocab_file, merges_file)
    tokenizer = Tokenizer(
        BPE(
            vocab=vocab,
            merges=merges,
            dropout=None,
            continuing_subword_prefix="",
            end_of_word_suffix="",
            fuse_unk=False,
        )
    )
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=add_prefix_space)
    tokenizer.decoder = decoders.ByteLevel()
    return tokenizer


# --- SentencePiece ----------------------------------------------------------------------------------------------
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6
UNIGRAM, SPM_BPE = 1, 2


@dataclass
class SentencePieceModel:
    """What a SentencePiece ``.model`` file says, as far as conversion needs it."""

    pieces: list[tuple[str, float, int]] = field(default_factory=list)  # (piece, score, type)
    model_type: int = UNIGRAM
    unk_id: int = 0
    bos_id: int = 1
    eos_id: int = 2
    pad_id: int = -1
    unk_piece: str = "<unk>"
    bos_piece: str = "<s>"
    eos_piece: str = "</s>"
    byte_fallback: bool = False
    add_dummy_prefix: bool = True
    remove_extra_whitespaces: bool = True
    escape_whitespaces: bool = True
    precompiled_charsmap: bytes = b""

    def piece(self, index: int) -> str | None:
        return self.pieces[index][0] if 0 <= index < len(self.pieces) else None


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _fields(data: bytes):
    """Yield (field number, wire type, value) of a protobuf message; value is int or bytes."""
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 1:
            value, pos = data[pos : pos + 8], pos + 8
        elif wire == 2:
            size, pos = _varint(data, pos)
            value, pos = data[pos : pos + size], pos + size
        elif wire == 5:
            value, pos = data[pos : pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire} at byte {pos}")
        if pos > len(data):
            raise ValueError("truncated protobuf message")
        yield number, wire, value


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def read_sentencepiece_model(path: Path) -> SentencePieceModel:
    """Parse a SentencePiece ``ModelProto`` (pieces, trainer and normalizer specs) without protobuf."""
    model = SentencePieceModel()
    try:
        for number, wire, value in _fields(path.read_bytes()):
            if number == 1 and wire == 2:  # SentencePiece piece
                piece, score, kind = "", 0.0, NORMAL
                for n, w, v in _fields(value):
                    if n == 1 and w == 2:
                        piece = v.decode("utf-8")
                    elif n == 2 and w == 5:
                        score = struct.unpack("<f", v)[0]
                    elif n == 3 and w == 0:
                        kind = v
                model.pieces.append((piece, score, kind))
            elif number == 2 and wire == 2:  # TrainerSpec
                for n, w, v in _fields(value):
                    if w == 2 and n in (45, 46, 47):
                        setattr(
                            model, {45: "unk_piece", 46: "bos_piece", 47: "eos_piece"}[n], v.decode("utf-8")
                        )
                    if w != 0:
                        continue
                    if n == 3:
                        model.model_type = v
                    elif n == 35:
                        model.byte_fallback = bool(v)
                    elif n == 40:
                        model.unk_id = _signed(v)
                    elif n == 41:
                        model.bos_id = _signed(v)
                    elif n == 42:
                        model.eos_id = _signed(v)
                    elif n == 43:
                        model.pad_id = _signed(v)
            elif number == 3 and wire == 2:  # NormalizerSpec
                for n, w, v in _fields(value):
                    if n == 2 and w == 2:
                        model.precompiled_charsmap = bytes(v)
                    elif n == 3 and w == 0:
                        model.add_dummy_prefix = bool(v)
                    elif n == 4 and w == 0:
                        model.remove_extra_whitespaces = bool(v)
                    elif n == 5 and w == 0:
                        model.escape_whitespaces = bool(v)
    except (ValueError, IndexError, UnicodeDecodeError, struct.error) as e:
        raise _bad_file(
            path,
            "is not a SentencePiece model",
            "pass the tokenizer.model file the model was trained with",
            e,
        ) from e
    if not model.pieces:
        raise _bad_file(
            path, "holds no SentencePiece pieces", "pass the tokenizer.model the model was trained with"
        )
    return model


def generate_merges(vocab: dict[str, int]) -> list[tuple[str, str]]:
    """BPE merges recovered from a vocabulary: every split of a piece into two pieces, ranked by piece id.

    transformers sorts all candidate merges by (piece id, left length); walking the pieces in id order and
    each piece's split points left to right gives that order directly.
    """
    return [
        (piece[:i], piece[i:])
        for piece, _ in sorted(vocab.items(), key=lambda item: item[1])
        for i in range(1, len(piece))
        if piece[:i] in vocab and piece[i:] in vocab
    ]


def sentencepiece_bpe_tokenizer(
    model: SentencePieceModel, *, path: Path, legacy: bool = False, add_prefix_space: bool | None = None
) -> Tokenizer:
    """A Llama/Mistral tokenizer from a SentencePiece BPE model: byte fallback, Metaspace, no normalizer."""
    if model.model_type != SPM_BPE:
        raise _bad_file(
            path,
            f"is a SentencePiece model of type {model.model_type} (Unigram), which xf converts only from a "
            "tokenizer.json",
            "convert it once with transformers (`AutoTokenizer.from_pretrained(...).save_pretrained(dir)`) and "
            "load that directory",
        )
    add_prefix_space = True if add_prefix_space is None else add_prefix_space
    vocab = {piece: i for i, (piece, _, _) in enumerate(model.pieces)}
    tokenizer = Tokenizer(
        BPE(vocab=vocab, merges=generate_merges(vocab), fuse_unk=True, byte_fallback=True, dropout=None)
    )
    tokenizer.normalizer = None
    scheme = ("first" if not legacy else "always") if add_prefix_space else "never"
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme=scheme, split=False)
    steps = [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()]
    if add_prefix_space:
        steps.append(decoders.Strip(content=" ", left=1))
    tokenizer.decoder = decoders.Sequence(steps)
    pieces = piece_tokens(model)
    if pieces:
        tokenizer.add_tokens(pieces)
    return tokenizer


def piece_tokens(model: SentencePieceModel) -> list[AddedToken]:
    """Control pieces (special) and user-defined pieces (not special) as added tokens, in id order."""
    return [
        AddedToken(piece, normalized=False, special=kind == CONTROL)
        for piece, _, kind in model.pieces
        if kind in (CONTROL, USER_DEFINED)
    ]


def sentencepiece_tokenizer(model: SentencePieceModel, *, path: Path, legacy: bool = True) -> Tokenizer:
    """Any SentencePiece model (Unigram or BPE) following its own normalizer and trainer specs."""
    user_defined = [piece for piece, _, kind in model.pieces if kind == USER_DEFINED]
    if model.model_type == SPM_BPE:
        vocab = {piece: i for i, (piece, _, _) in enumerate(model.pieces)}
        normal = {piece: (score, i) for i, (piece, score, kind) in enumerate(model.pieces) if kind == NORMAL}
        ranked = sorted(
            (-score, i, token[:cut], token[cut:])
            for token, (score, i) in normal.items()
            for cut in range(1, len(token))
            if token[:cut] in normal and token[cut:] in normal
        )
        tokenizer = Tokenizer(
            BPE(
                vocab=vocab,
                merges=[(left, right) for _, _, left, right in ranked],
                unk_token=model.unk_piece,
                fuse_unk=True,
                byte_fallback=model.byte_fallback,
                dropout=None,
                ignore_merges=bool(user_defined),
            )
        )
    elif model.model_type == UNIGRAM:
        vocab_scores = [(piece, score) for piece, score, _ in model.pieces]
        tokenizer = Tokenizer(Unigram(vocab_scores, unk_id=model.unk_id, byte_fallback=model.byte_fallback))
    else:
        raise _bad_file(
            path,
            f"is a SentencePiece model of type {model.model_type} (word or char), which xf does not convert",
            "provide a tokenizer.json for it",
        )
    steps = []
    if model.precompiled_charsmap:
        steps.append(normalizers.Precompiled(model.precompiled_charsmap))
    if model.remove_extra_whitespaces:
        steps += [normalizers.Replace(Regex(r"\A +| +\z"), ""), normalizers.Replace(Regex(" {2,}"), " ")]
    if model.escape_whitespaces:
        steps.append(normalizers.Replace(" ", "▁"))
    if model.add_dummy_prefix and legacy:
        steps.append(normalizers.Replace(Regex(r"\A▁"), "▁▁"))
    tokenizer.normalizer = normalizers.Sequence(steps)
    splitters = []
    if model.add_dummy_prefix:
        scheme = "always" if legacy else "first"
        splitters.append(pre_tokenizers.Metaspace(replacement="▁", prepend_scheme=scheme, split=False))
    if user_defined:
        pattern = "|".join(re.escape(piece) for piece in sorted(user_defined, key=len, reverse=True))
        splitters.append(pre_tokenizers.Split(Regex(pattern), behavior="isolated"))
    if splitters:
        tokenizer.pre_tokenizer = pre_tokenizers.Sequence(splitters)
    steps = [decoders.Replace("▁", " ")]
    if model.byte_fallback:
        steps.append(decoders.ByteFallback())
    if model.add_dummy_prefix:
        steps += [decoders.Fuse(), decoders.Strip(content=" ", left=1)]
    elif model.byte_fallback:
        steps.append(decoders.Fuse())
    tokenizer.decoder = decoders.Sequence(steps)
    # transformers deep-copies this tokenizer through its JSON form, which re-parses the float scores (serde_json
    # may move one by an ulp); do the same so Unigram scores, and so tie-breaks, are bit-identical.
    return Tokenizer.from_str(tokenizer.to_str())
