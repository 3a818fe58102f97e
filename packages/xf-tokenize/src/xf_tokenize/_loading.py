"""``from_pretrained``: find the tokenizer files, build the Rust backend once, apply ``tokenizer_config.json``.

Order of precedence, as in transformers: keyword overrides > ``tokenizer_config.json`` >
``special_tokens_map.json`` (read only when the config has no ``added_tokens_decoder``) > the defaults of
the tokenizer family named by ``tokenizer_class``. ``tokenizer.json`` is used exactly as written; without
it the backend is converted from ``vocab.txt``, ``vocab.json`` + ``merges.txt`` or ``tokenizer.model``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tokenizers import AddedToken, Tokenizer, processors

from xf_core import HubOptions, XfFileNotFoundError, resolve_file
from xf_core.logging import get_logger
from xf_tokenize import _convert
from xf_tokenize._special import SPECIAL_TOKENS_ATTRIBUTES, SpecialTokens, special_token
from xf_tokenize.errors import NoTokenizerFilesError, TokenizerFileError

__all__ = ["FAMILIES", "PretrainedTokenizerFiles", "hub_options", "read_pretrained", "read_tokenizer_file"]

logger = get_logger(__name__)

_WITH_TYPES = ["input_ids", "token_type_ids", "attention_mask"]
_NO_TYPES = ["input_ids", "attention_mask"]
_BERT = {
    "converter": "wordpiece",
    "post": "bert",
    "model_input_names": _WITH_TYPES,
    "specials": {
        "unk_token": "[UNK]",
        "sep_token": "[SEP]",
        "pad_token": "[PAD]",
        "cls_token": "[CLS]",
        "mask_token": "[MASK]",
    },
}
_GPT2 = {
    "converter": "byte_level_bpe",
    "post": "template",
    "model_input_names": _NO_TYPES,
    "specials": {"unk_token": "<|endoftext|>", "bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>"},
}
_ROBERTA = {
    "converter": "byte_level_bpe",
    "post": "roberta",
    "model_input_names": _NO_TYPES,
    "specials": {
        "bos_token": "<s>",
        "eos_token": "</s>",
        "sep_token": "</s>",
        "cls_token": "<s>",
        "unk_token": "<unk>",
        "pad_token": "<pad>",
        "mask_token": "<mask>",
    },
}
# A SentencePiece model with no known family, as transformers' plain TokenizersBackend converts it.
_SPM_GENERIC = {
    "converter": "sentencepiece_generic",
    "post": "template",
    "model_input_names": _NO_TYPES,
}
_LLAMA = {
    "converter": "sentencepiece",
    "post": "template",
    "model_input_names": _NO_TYPES,
    "padding_side": "left",
    "specials": {"unk_token": "<unk>", "bos_token": "<s>", "eos_token": "</s>"},
}
# The tokenizer families xf knows by their transformers class name: defaults and how to convert vocab files.
FAMILIES: dict[str, dict[str, Any]] = {
    "BertTokenizer": _BERT,
    "DistilBertTokenizer": _BERT,
    "ElectraTokenizer": _BERT,
    "GPT2Tokenizer": _GPT2,
    "RobertaTokenizer": _ROBERTA,
    "LlamaTokenizer": _LLAMA,
    "CodeLlamaTokenizer": _LLAMA,
}
_CONVERTER_FILES = {
    "wordpiece": ("vocab.txt",),
    "byte_level_bpe": ("vocab.json", "merges.txt"),
    "sentencepiece": ("tokenizer.model",),
    "sentencepiece_generic": ("tokenizer.model",),
}
_LOOKED_FOR = ["tokenizer.json", "vocab.txt", "vocab.json + merges.txt", "tokenizer.model"]
# Keys of tokenizer_config.json that xf interprets; all others are kept as they are for save_pretrained.
_SETTINGS = (
    "model_max_length",
    "padding_side",
    "truncation_side",
    "model_input_names",
    "clean_up_tokenization_spaces",
    "split_special_tokens",
)
_DROPPED = ("added_tokens_decoder", "name_or_path", "tokenizer_file", "auto_map", "max_len")


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise TokenizerFileError(
            f"{path} is not valid JSON ({e}); it should hold {what}. Re-download it or save the tokenizer again.",
            file=str(path),
        ) from e


def read_tokenizer_file(path: Path) -> Tokenizer:
    """A ``tokenizers.Tokenizer`` from ``tokenizer.json``, with an error naming the file when it is bad."""
    try:
        return Tokenizer.from_file(str(path))
    except Exception as e:
        if not path.is_file():
            raise XfFileNotFoundError(
                f"no tokenizer file at {path}", path=str(path), filename=path.name
            ) from e
        _read_json(path, "a `tokenizers` serialization")  # bad JSON: say so plainly
        raise TokenizerFileError(
            f"{path} is not a valid `tokenizers` file ({e}); re-download it or save the tokenizer again with "
            "`save_pretrained`.",
            file=str(path),
        ) from e


def hub_options(hub: HubOptions | None, **given: Any) -> HubOptions:
    """``hub`` (or the defaults) with the Hub keywords a caller gave (those not None) put over it."""
    given = {key: value for key, value in given.items() if value is not None}
    return hub if hub is not None and not given else HubOptions.pop_from(given, base=hub)


@dataclass
class PretrainedTokenizerFiles:
    """What a tokenizer directory says: the backend, the constructor's keyword arguments, and the family
    post-processor (``"bert"``/``"roberta"``) a converted tokenizer still needs once its special ids are known."""

    backend: Tokenizer
    kwargs: dict[str, Any]
    post: str | None = None
    post_options: dict[str, Any] = field(default_factory=dict)

    def post_processor(
        self, special: SpecialTokens, to_id: Callable[[str], int | None]
    ) -> processors.PostProcessor | None:
        """The post-processor transformers gives a converted BERT or RoBERTa tokenizer (None for others)."""
        if self.post is None:
            return None
        cls_token, sep_token = str(special.get("cls_token")), str(special.get("sep_token"))
        cls_id, sep_id = special.id_of("cls_token", to_id), special.id_of("sep_token", to_id)
        if self.post == "roberta":
            return processors.RobertaProcessing(
                (sep_token, sep_id),
                (cls_token, cls_id),
                trim_offsets=bool(self.post_options.get("trim_offsets", True)),
                add_prefix_space=bool(self.post_options.get("add_prefix_space", False)),
            )
        return processors.TemplateProcessing(
            single=f"{cls_token}:0 $A:0 {sep_token}:0",
            pair=f"{cls_token}:0 $A:0 {sep_token}:0 $B:1 {sep_token}:1",
            special_tokens=[
                (cls_token, 2 if cls_id is None else cls_id),
                (sep_token, 3 if sep_id is None else sep_id),
            ],
        )


def read_pretrained(
    path_or_repo_id: str | os.PathLike[str], *, hub: HubOptions, overrides: dict[str, Any] | None = None
) -> PretrainedTokenizerFiles:
    """Read a tokenizer's files from a local directory or a Hub repo; see ``AutoTokenizer.from_pretrained``."""

    def find(name: str) -> Path | None:
        return resolve_file(path_or_repo_id, name, hub=hub, missing_ok=True)

    overrides = dict(overrides or {})
    config_file = find("tokenizer_config.json")
    config: dict[str, Any] = _read_json(config_file, "the tokenizer settings") if config_file else {}
    if not isinstance(config, dict):
        raise TokenizerFileError(f"{config_file} should hold a JSON object, not {type(config).__name__}")
    config.update(overrides)
    tokenizer_class = config.pop("tokenizer_class", None)
    family_name = tokenizer_class.removesuffix("Fast") if isinstance(tokenizer_class, str) else None
    family = FAMILIES.get(family_name or "", {})

    # 1. The backend: tokenizer.json as written, or converted once from the classic files.
    converter: str | None = None
    piece_tokens: list[AddedToken] = []  # control/user-defined SentencePiece pieces
    model_specials: dict[str, str] = {}  # bos/eos/unk named by a SentencePiece model
    tokenizer_file = find("tokenizer.json")
    if tokenizer_file is not None:
        backend = read_tokenizer_file(tokenizer_file)
        # transformers ignores these when tokenizer.json is there: its post-processor is authoritative.
        for key in ("add_bos_token", "add_eos_token"):
            if key not in overrides:
                config.pop(key, None)
    else:
        files = {name: find(name) for names in _CONVERTER_FILES.values() for name in names}
        available = [c for c, names in _CONVERTER_FILES.items() if all(files[n] for n in names)]
        if not available:
            where = f"{path_or_repo_id}/{hub.subfolder}" if hub.subfolder else str(path_or_repo_id)
            raise NoTokenizerFilesError(where, _LOOKED_FOR)
        converter = family.get("converter") if family.get("converter") in available else available[0]
        if not family:
            # No known family: BERT / GPT-2 defaults for vocab files; a SentencePiece model follows its own specs.
            family_name = {"wordpiece": "BertTokenizer", "byte_level_bpe": "GPT2Tokenizer"}.get(converter)
            family = FAMILIES[family_name] if family_name else _SPM_GENERIC
            converter = family["converter"]
        backend, piece_tokens, model_specials = _convert_files(converter, files, config, family)

    # 2. Special tokens: family defaults < the SentencePiece model < special_tokens_map.json < config < overrides.
    specials = {**family.get("specials", {}), **model_specials}
    extras, model_specific = _collect_special_tokens(
        config, find("special_tokens_map.json"), overrides, specials
    )
    if not extras:
        extras = list(piece_tokens)  # as transformers: a SentencePiece model's own pieces are the extras

    # 3. Added tokens the config or added_tokens.json name (tokenizer.json usually has them already).
    _add_listed_tokens(backend, config, find("added_tokens.json"), specials, extras, where=config_file)

    # 4. Everything else the config says.
    chat_template = _read_chat_template(config, find)
    settings = {key: config.pop(key) for key in _SETTINGS if key in config}
    settings.setdefault("model_input_names", family.get("model_input_names"))
    settings.setdefault("padding_side", family.get("padding_side", "right"))
    if settings.get("model_max_length") is None and "max_len" in config:
        settings["model_max_length"] = config["max_len"]
    add_bos = config.pop("add_bos_token", None)
    add_eos = config.pop("add_eos_token", None)
    post = family.get("post") if converter is not None else None
    if post == "template":
        # A converted tokenizer has no post-processor yet: transformers builds one from these (default off).
        add_bos, add_eos = bool(add_bos), bool(add_eos)
    for key in _DROPPED:
        config.pop(key, None)

    kwargs = {
        **{k: special_token(v, key=k) for k, v in specials.items()},
        "extra_special_tokens": [special_token(t, key="extra_special_tokens") for t in extras],
        "model_specific_special_tokens": {k: special_token(v, key=k) for k, v in model_specific.items()},
        "chat_template": chat_template,
        "add_bos_token": add_bos,
        "add_eos_token": add_eos,
        "tokenizer_class": family_name if family_name in FAMILIES else tokenizer_class,
        "name_or_path": str(path_or_repo_id),
        "init_kwargs": config,
        **settings,
    }
    options = {key: config[key] for key in ("trim_offsets", "add_prefix_space") if key in config}
    return PretrainedTokenizerFiles(
        backend, kwargs, post=post if post in ("bert", "roberta") else None, post_options=options
    )


def _collect_special_tokens(
    config: dict[str, Any], map_file: Path | None, overrides: dict[str, Any], specials: dict[str, Any]
) -> tuple[list[Any], dict[str, Any]]:
    """Move the special tokens out of ``config`` into ``specials``; return the extras and model-specific ones."""
    extras: list[Any] = []
    if map_file is not None and "added_tokens_decoder" not in config:
        for key, value in _read_json(map_file, "the special tokens").items():
            if _is_named_token(key, value) and key not in overrides:
                config[key] = value
            elif key in ("additional_special_tokens", "extra_special_tokens") and isinstance(value, list):
                extras.extend(value)
    for key in SPECIAL_TOKENS_ATTRIBUTES:
        if key in config:
            specials[key] = config.pop(key)
    # Other named tokens (image_token, ...) become attributes, as in transformers.
    model_specific = {key: config.pop(key) for key in list(config) if _is_named_token(key, config[key])}
    for key in ("additional_special_tokens", "extra_special_tokens"):
        value = config.pop(key, None)
        if isinstance(value, dict):
            model_specific.update(value)
            continue
        seen = {str(special_token(t, key=key)) for t in extras}
        for tok in value or []:
            if str(special_token(tok, key=key)) not in seen:
                extras.append(tok)
                seen.add(str(special_token(tok, key=key)))
    return extras, model_specific


def _add_listed_tokens(
    backend: Tokenizer,
    config: dict[str, Any],
    added_file: Path | None,
    specials: dict[str, Any],
    extras: list[Any],
    *,
    where: Path | None,
) -> None:
    """Add the ``added_tokens_decoder`` of the config (or else ``added_tokens.json``) missing from the backend."""
    present = {str(t) for t in backend.get_added_tokens_decoder().values()}
    decoder = config.pop("added_tokens_decoder", None) or {}
    for index, raw in sorted(((int(i), t) for i, t in decoder.items()), key=lambda item: item[0]):
        added = _added_token(raw)
        if str(added) in present:
            continue
        backend.add_tokens([added])
        present.add(str(added))
        if backend.token_to_id(str(added)) != index:
            logger.warning(
                "%s: added token %r got id %s, not the id %d tokenizer_config.json gives it",
                where,
                str(added),
                backend.token_to_id(str(added)),
                index,
            )
    if added_file is None or decoder:
        return
    special_names = {str(special_token(v, key="")) for v in (*specials.values(), *extras) if v is not None}
    added_tokens = _read_json(added_file, "{token: id} of added tokens")
    for content, _ in sorted(added_tokens.items(), key=lambda item: item[1]):
        if content not in present:
            special = content in special_names
            backend.add_tokens([AddedToken(content, normalized=not special, special=special)])


def _read_chat_template(config: dict[str, Any], find: Any) -> str | dict[str, str] | None:
    """``chat_template.jinja`` > ``chat_template.json`` > the config's ``chat_template`` (a string or a list)."""
    template = config.pop("chat_template", None)
    if isinstance(template, list):
        template = {t["name"]: t["template"] for t in template}
    jinja_file = find("chat_template.jinja")
    if jinja_file is not None:
        return jinja_file.read_text(encoding="utf-8")
    json_file = find("chat_template.json")
    if json_file is not None:
        return _read_json(json_file, '{"chat_template": "..."}').get("chat_template")
    return template


def _is_named_token(key: str, value: Any) -> bool:
    """A ``*_token`` config key holding a token (``add_bos_token: true`` is a flag, not a token)."""
    if not key.endswith("_token") or key in ("extra_special_tokens", "additional_special_tokens"):
        return False
    return isinstance(value, (str, AddedToken)) or (isinstance(value, dict) and "content" in value)


def _added_token(raw: Any) -> AddedToken:
    if isinstance(raw, AddedToken):
        return raw
    if isinstance(raw, str):
        return AddedToken(raw, special=True, normalized=False)
    fields = {
        k: v for k, v in raw.items() if k in ("single_word", "lstrip", "rstrip", "normalized", "special")
    }
    return AddedToken(raw["content"], **fields)


def _convert_files(
    converter: str, files: dict[str, Path | None], config: dict[str, Any], family: dict[str, Any]
) -> tuple[Tokenizer, list[AddedToken], dict[str, str]]:
    """Build the backend from classic files; options come from the config (which keeps them for saving).

    Also returns the SentencePiece pieces that become extra special tokens, and the bos/eos/unk tokens a
    SentencePiece model names (both empty for other formats).
    """
    if converter == "wordpiece":
        unk = config.get("unk_token", family.get("specials", {}).get("unk_token", "[UNK]"))
        backend = _convert.wordpiece_tokenizer(
            files["vocab.txt"],  # type: ignore[arg-type]
            unk_token=str(special_token(unk, key="unk_token")),
            do_lower_case=config.get("do_lower_case", True),
            strip_accents=config.get("strip_accents"),
            tokenize_chinese_chars=config.get("tokenize_chinese_chars", True),
        )
        return backend, [], {}
    if converter == "byte_level_bpe":
        backend = _convert.byte_level_bpe_tokenizer(
            files["vocab.json"],  # type: ignore[arg-type]
            files["merges.txt"],  # type: ignore[arg-type]
            add_prefix_space=bool(config.get("add_prefix_space", False)),
        )
        return backend, [], {}
    path = files["tokenizer.model"]
    assert path is not None
    model = _convert.read_sentencepiece_model(path)
    if converter == "sentencepiece":
        backend = _convert.sentencepiece_bpe_tokenizer(
            model,
            path=path,
            legacy=bool(config.get("legacy", False)),
            add_prefix_space=config.get("add_prefix_space"),
        )
        return backend, _convert.piece_tokens(model), {}
    backend = _convert.sentencepiece_tokenizer(model, path=path, legacy=bool(config.get("legacy", True)))
    named = {
        "bos_token": model.bos_piece if model.bos_id >= 0 else None,
        "eos_token": model.eos_piece if model.eos_id >= 0 else None,
        "unk_token": model.unk_piece if model.unk_id >= 0 else None,
    }
    # User-defined pieces are split out by the pre-tokenizer, so only control pieces are special tokens.
    controls = [t for t in _convert.piece_tokens(model) if t.special]
    return backend, controls, {k: v for k, v in named.items() if v is not None}
