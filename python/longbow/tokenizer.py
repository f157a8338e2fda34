"""Tokenizer: HF `tokenizers` built from a HF folder or from GGUF metadata.

A GGUF has no tokenizer.json; it stores vocab, merges and special ids under llama.cpp's keys
(`tokenizer.ggml.*`). We rebuild the same `tokenizers.Tokenizer` that transformers builds from
that metadata, so token ids match `AutoTokenizer.from_pretrained(folder, gguf_file=...)`.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Sequence

from tokenizers import AddedToken, Regex, decoders, models, pre_tokenizers, processors
from tokenizers import Tokenizer as HFTokenizer

# llama.cpp token types (tokenizer.ggml.token_type).
TOKEN_TYPE_NORMAL = 1
TOKEN_TYPE_UNKNOWN = 2
TOKEN_TYPE_CONTROL = 3
TOKEN_TYPE_USER_DEFINED = 4
TOKEN_TYPE_UNUSED = 5
TOKEN_TYPE_BYTE = 6

# Tokens that end a turn in common chat formats (llama.cpp's end-of-generation detection).
END_OF_GENERATION_NAMES = ("<|im_end|>", "<|eot_id|>", "<|end|>", "<|endoftext|>")

_LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_GPT4O_SPLIT = (
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+"
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
    r"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*"
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
    r"|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

# `tokenizer.ggml.pre` types whose tokenizers isolate every digit before the GPT-2 regex (HF:
# Digits(individual_digits) then ByteLevel; llama.cpp: the `\p{N}` split first). It matters
# beyond digits: "\n\n1" is "\n\n" + "1" (one whitespace token), not "\n" + "\n1".
DIGIT_SPLIT_PRE = {"smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva"}

# `tokenizer.ggml.pre` -> split regex. Types not listed here or above (gpt2, default, ...) use the
# GPT-2 regex built into the ByteLevel pre-tokenizer, as transformers does.
PRE_TOKENIZER_SPLITS = {
    "llama3": _LLAMA3_SPLIT,
    "llama-v3": _LLAMA3_SPLIT,
    "llama-bpe": _LLAMA3_SPLIT,
    "falcon3": _LLAMA3_SPLIT,
    "dbrx": _LLAMA3_SPLIT,
    "smaug-bpe": _LLAMA3_SPLIT,
    "qwen2": _QWEN2_SPLIT,
    "deepseek-r1-qwen": _QWEN2_SPLIT,
    "gpt-4o": _GPT4O_SPLIT,
    "llama4": _GPT4O_SPLIT,
}


@lru_cache(maxsize=1)
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character map used by byte-level BPE."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    mapping = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in mapping:
            mapping[b] = chr(256 + extra)
            extra += 1
    return mapping


@lru_cache(maxsize=1)
def _unicode_to_bytes() -> dict[str, int]:
    return {c: b for b, c in bytes_to_unicode().items()}


def _token_content(value: Any) -> str | None:
    """tokenizer_config.json stores special tokens as a str or as an AddedToken dict."""
    if value is None:
        return None
    if isinstance(value, dict):
        return value.get("content")
    return str(value)


class Tokenizer:
    """Text <-> token ids, special tokens and the chat template of one model."""

    def __init__(
        self,
        backend: HFTokenizer,
        *,
        bos_token_id: int | None = None,
        eos_token_id: int | None = None,
        extra_eos_ids: Iterable[int] = (),
        chat_template: str | None = None,
        source: str = "<memory>",
    ) -> None:
        self._tok = backend
        self._source = source
        self.bos_token_id = bos_token_id
        self.eos_token_id = eos_token_id
        self.chat_template = chat_template
        eos = {i for i in extra_eos_ids if i is not None}
        if eos_token_id is not None:
            eos.add(eos_token_id)
        for name in END_OF_GENERATION_NAMES:
            token_id = self._tok.token_to_id(name)
            if token_id is not None:
                eos.add(token_id)
        self.eos_token_ids: set[int] = eos

    # ---- construction ---------------------------------------------------------------------

    @classmethod
    def from_hf_folder(cls, path: str | Path) -> Tokenizer:
        """Load `tokenizer.json` (+ `tokenizer_config.json`, `chat_template.jinja`) from a folder."""
        folder = Path(path)
        tok_file = folder / "tokenizer.json"
        if not tok_file.is_file():
            raise ValueError(
                f"[tokenizer] {folder}: expected tokenizer.json in the model folder, found none"
            )
        try:
            backend = HFTokenizer.from_file(str(tok_file))
        except Exception as exc:  # tokenizers raises plain Exception on parse errors
            raise ValueError(f"[tokenizer] {tok_file}: cannot parse: {exc}") from exc
        config: dict[str, Any] = {}
        cfg_file = folder / "tokenizer_config.json"
        if cfg_file.is_file():
            try:
                config = json.loads(cfg_file.read_text(encoding="utf-8"))
            except json.JSONDecodeError as exc:
                raise ValueError(f"[tokenizer] {cfg_file}: invalid JSON: {exc}") from exc

        def token_id(key: str) -> int | None:
            content = _token_content(config.get(key))
            return backend.token_to_id(content) if content is not None else None

        # Special tokens listed in the config but missing from tokenizer.json's added tokens.
        for entry in (config.get("added_tokens_decoder") or {}).values():
            content = entry.get("content") if isinstance(entry, dict) else None
            if content and entry.get("special") and backend.token_to_id(content) is not None:
                backend.add_special_tokens([AddedToken(content, normalized=False, special=True)])

        bos_id, eos_id = token_id("bos_token"), token_id("eos_token")
        add_bos = config.get("add_bos_token")
        if add_bos and bos_id is not None and not _post_processor_adds(backend, bos_id):
            _set_bos_post_processor(backend, bos_id)

        template = _pick_template(config.get("chat_template"))
        jinja_file = folder / "chat_template.jinja"
        if template is None and jinja_file.is_file():
            template = jinja_file.read_text(encoding="utf-8")
        extra: set[int] = set()
        gen_cfg = folder / "generation_config.json"
        if gen_cfg.is_file():
            try:
                gen_eos = json.loads(gen_cfg.read_text(encoding="utf-8")).get("eos_token_id")
            except json.JSONDecodeError:
                gen_eos = None
            if isinstance(gen_eos, int):
                extra.add(gen_eos)
            elif isinstance(gen_eos, list):
                extra.update(i for i in gen_eos if isinstance(i, int))
        return cls(
            backend,
            bos_token_id=bos_id,
            eos_token_id=eos_id,
            extra_eos_ids=extra,
            chat_template=template,
            source=str(folder),
        )

    @classmethod
    def from_gguf_metadata(cls, meta: dict[str, Any]) -> Tokenizer:
        """Build from a GGUF key/value dict (`tokenizer.ggml.*`, `tokenizer.chat_template`)."""
        model_type = meta.get("tokenizer.ggml.model")
        tokens = meta.get("tokenizer.ggml.tokens")
        if model_type is None or tokens is None:
            raise ValueError(
                "[tokenizer] gguf: expected keys tokenizer.ggml.model and tokenizer.ggml.tokens, "
                f"found model={model_type!r}, tokens={'present' if tokens is not None else None}"
            )
        tokens = [str(t) for t in tokens]
        token_types = list(meta.get("tokenizer.ggml.token_type") or [])
        if token_types and len(token_types) != len(tokens):
            raise ValueError(
                f"[tokenizer] gguf: expected {len(tokens)} token types (one per token), "
                f"found {len(token_types)}"
            )
        if model_type == "gpt2":
            backend = _byte_level_backend(meta, tokens, token_types)
        elif model_type == "llama":
            from longbow.tokenizer_spm import sentencepiece_backend

            backend = sentencepiece_backend(meta, tokens, token_types)
        else:
            raise ValueError(
                f"[tokenizer] gguf: expected tokenizer.ggml.model 'gpt2' or 'llama', "
                f"found {model_type!r}"
            )

        def valid_id(key: str) -> int | None:
            value = meta.get(key)
            if value is None:
                return None
            value = int(value)
            if not 0 <= value < len(tokens):
                raise ValueError(
                    f"[tokenizer] gguf: {key} expected in [0, {len(tokens)}), found {value}"
                )
            return value

        bos_id = valid_id("tokenizer.ggml.bos_token_id")
        eos_id = valid_id("tokenizer.ggml.eos_token_id")
        eot_id = valid_id("tokenizer.ggml.eot_token_id")
        # transformers (and llama.cpp) add BOS for SentencePiece vocabularies that do not say.
        add_bos = meta.get("tokenizer.ggml.add_bos_token")
        if add_bos is None:
            add_bos = model_type == "llama"
        if add_bos and bos_id is not None:
            _set_bos_post_processor(backend, bos_id)
        template = meta.get("tokenizer.chat_template")
        return cls(
            backend,
            bos_token_id=bos_id,
            eos_token_id=eos_id,
            extra_eos_ids=[eot_id] if eot_id is not None else [],
            chat_template=str(template) if template is not None else None,
            source="gguf",
        )

    # ---- API ------------------------------------------------------------------------------

    @property
    def backend(self) -> HFTokenizer:
        """The underlying `tokenizers.Tokenizer`."""
        return self._tok

    @property
    def vocab_size(self) -> int:
        """Number of token ids, added tokens included."""
        return self._tok.get_vocab_size(with_added_tokens=True)

    @property
    def bos_token(self) -> str | None:
        return self.id_to_piece(self.bos_token_id) if self.bos_token_id is not None else None

    @property
    def eos_token(self) -> str | None:
        return self.id_to_piece(self.eos_token_id) if self.eos_token_id is not None else None

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        """Token ids of `text`; special tokens written in the text are matched whole."""
        if not isinstance(text, str):
            raise ValueError(f"[tokenizer] encode: expected str, found {type(text).__name__}")
        return list(self._tok.encode(text, add_special_tokens=add_special_tokens).ids)

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        """Text of `ids` (invalid UTF-8 becomes U+FFFD)."""
        return self._tok.decode(self._check_ids(ids), skip_special_tokens=skip_special_tokens)

    def id_to_piece(self, token_id: int) -> str:
        """The vocabulary entry of one id, as stored (byte-level spelling for BPE)."""
        piece = self._tok.id_to_token(int(token_id))
        if piece is None:
            raise ValueError(
                f"[tokenizer] id_to_piece: expected id in [0, {self.vocab_size}), found {token_id}"
            )
        return piece

    def token_bytes(self, token_id: int) -> bytes:
        """The bytes one token stands for (possibly part of a UTF-8 character), as OpenAI's
        logprobs `bytes`: byte-level BPE pieces mapped back through GPT-2's byte map;
        SentencePiece `<0xNN>` byte tokens and `▁` spaces; anything else as spelled."""
        piece = self.id_to_piece(token_id)
        if self._byte_level:
            inverse = _unicode_to_bytes()
            if all(c in inverse for c in piece):
                return bytes(inverse[c] for c in piece)
            return piece.encode("utf-8")
        if len(piece) == 6 and piece.startswith("<0x") and piece.endswith(">"):
            try:
                return bytes([int(piece[3:5], 16)])
            except ValueError:
                pass
        return piece.replace("\u2581", " ").encode("utf-8")

    @property
    def _byte_level(self) -> bool:
        """Whether the decoder is GPT-2 byte-level (else SentencePiece-style `▁` pieces)."""
        if not hasattr(self, "_byte_level_decoder"):
            decoder = self._tok.decoder
            state = decoder.__getstate__() if decoder is not None else b""
            self._byte_level_decoder = b'"ByteLevel"' in state
        return self._byte_level_decoder

    def piece_to_id(self, piece: str) -> int | None:
        return self._tok.token_to_id(piece)

    def is_special(self, token_id: int) -> bool:
        """True for special (control) tokens, which decode(skip_special_tokens=True) drops."""
        return self._tok.decode([int(token_id)], skip_special_tokens=True) == "" and bool(
            self._tok.decode([int(token_id)], skip_special_tokens=False)
        )

    def apply_chat_template(
        self,
        messages: list[dict[str, Any]],
        add_generation_prompt: bool = True,
        tools: list[dict[str, Any]] | None = None,
        fallback_chatml: bool = False,
        **kwargs: Any,
    ) -> str:
        """Render `messages` with the model's chat template (jinja2, like transformers)."""
        from longbow.chat_template import CHATML_TEMPLATE, render_chat_template

        template = self.chat_template
        if template is None:
            if not fallback_chatml:
                raise ValueError(
                    f"[chat_template] model {self._source}: expected a chat template in the "
                    "tokenizer metadata, found none (pass fallback_chatml=True for ChatML)"
                )
            template = CHATML_TEMPLATE
        return render_chat_template(
            template,
            messages,
            add_generation_prompt=add_generation_prompt,
            tools=tools,
            bos_token=self.bos_token or "",
            eos_token=self.eos_token or "",
            **kwargs,
        )

    def _check_ids(self, ids: Sequence[int]) -> list[int]:
        out = [int(i) for i in ids]
        n = self.vocab_size
        for i in out:
            if not 0 <= i < n:
                raise ValueError(f"[tokenizer] decode: expected ids in [0, {n}), found {i}")
        return out

    def __repr__(self) -> str:
        return (
            f"Tokenizer(source={self._source!r}, vocab_size={self.vocab_size}, "
            f"bos={self.bos_token_id}, eos={sorted(self.eos_token_ids)})"
        )


def _pick_template(value: Any) -> str | None:
    """tokenizer_config `chat_template` is a str or a list of {name, template}."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list):
        named = {e.get("name"): e.get("template") for e in value if isinstance(e, dict)}
        return named.get("default") or next(iter(named.values()), None)
    return None


def _post_processor_adds(backend: HFTokenizer, token_id: int) -> bool:
    return token_id in backend.encode("", add_special_tokens=True).ids


def _set_bos_post_processor(backend: HFTokenizer, bos_id: int) -> None:
    bos = backend.id_to_token(bos_id)
    backend.post_processor = processors.TemplateProcessing(
        single=f"{bos}:0 $A:0",
        pair=f"{bos}:0 $A:0 {bos}:1 $B:1",
        special_tokens=[(bos, bos_id)],
    )


def _byte_level_backend(
    meta: dict[str, Any], tokens: list[str], token_types: list[int]
) -> HFTokenizer:
    """Byte-level BPE (GPT-2 style) from GGUF vocab + merges, matching transformers."""
    spelling = bytes_to_unicode()
    alphabet = set(spelling.values())
    vocab: dict[str, int] = {}
    for idx, tok in enumerate(tokens):
        # Entries written outside the byte alphabet are re-spelled byte by byte.
        key = tok if set(tok) <= alphabet else "".join(spelling[b] for b in tok.encode("utf-8"))
        vocab.setdefault(key, idx)
    merges = []
    for line_idx, merge in enumerate(meta.get("tokenizer.ggml.merges") or []):
        parts = str(merge).split(" ")
        if len(parts) != 2:
            raise ValueError(
                f"[tokenizer] gguf: merge {line_idx} expected 'left right', found {merge!r}"
            )
        merges.append((parts[0], parts[1]))
    backend = HFTokenizer(
        models.BPE(
            vocab=vocab,
            merges=merges,
            dropout=None,
            continuing_subword_prefix="",
            end_of_word_suffix="",
            fuse_unk=False,
        )
    )
    pre = meta.get("tokenizer.ggml.pre")
    split = PRE_TOKENIZER_SPLITS.get(pre)
    if pre in DIGIT_SPLIT_PRE:
        backend.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Digits(individual_digits=True),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
            ]
        )
    elif split is None:
        backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    else:
        backend.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(split), behavior="isolated"),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
            ]
        )
    backend.decoder = decoders.ByteLevel()
    # A control token spelled outside the byte alphabet is a llama.cpp mislabel; skip it.
    control = [
        AddedToken(tok, normalized=False, special=True)
        for tok, kind in zip(tokens, token_types)
        if kind == TOKEN_TYPE_CONTROL and set(tok) <= alphabet
    ]
    if control:
        backend.add_special_tokens(control)
    user = [
        AddedToken(tok, normalized=False, special=False)
        for tok, kind in zip(tokens, token_types)
        if kind == TOKEN_TYPE_USER_DEFINED and tok in vocab
    ]
    if user:
        backend.add_tokens(user)
    return backend
