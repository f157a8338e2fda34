"""Structured output: constrain a request's tokens to a JSON schema, any JSON object, a regular
expression, a Lark grammar or a fixed list of choices. llguidance (an optional dependency, the
`structured` extra) compiles the constraint and computes, before each token, the bitmask of the
tokens allowed next; the engine's sampler applies it on the device (Engine.set_allowed_tokens),
inside continuous batching, next to unconstrained requests.

    SamplingParams(structured=StructuredOutputs(json={"type": "object", ...}))

A constrained request does not speculate (its tokens are masked one at a time) and cannot use
ignore_eos or min_tokens (the grammar decides where the output may end).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

_MISSING = "structured output needs llguidance: pip install 'longbow-quarrel[structured]'"


@dataclass(frozen=True, kw_only=True)
class StructuredOutputs:
    """Exactly one of: `json` (a JSON schema, dict or JSON text), `json_object=True` (any JSON
    object), `regex`, `grammar` (Lark syntax, llguidance's dialect), `choice` (one of these
    strings)."""

    json: dict | str | None = None
    json_object: bool = False
    regex: str | None = None
    grammar: str | None = None
    choice: list[str] | None = None

    def __post_init__(self) -> None:
        given = [
            name
            for name in ("json", "json_object", "regex", "grammar", "choice")
            if getattr(self, name) not in (None, False)
        ]
        if len(given) != 1:
            raise ValueError(
                "[StructuredOutputs] expected exactly one of json, json_object, regex, grammar, "
                f"choice; got {given or 'none'}"
            )
        if self.json is not None and not isinstance(self.json, (dict, str)):
            raise ValueError(
                f"[StructuredOutputs] json must be a schema (dict or JSON text), got "
                f"{type(self.json).__name__}"
            )
        for name in ("regex", "grammar"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value):
                raise ValueError(f"[StructuredOutputs] {name} must be a non-empty string")
        if self.choice is not None and (
            not isinstance(self.choice, (list, tuple))
            or not self.choice
            or any(not isinstance(c, str) or not c for c in self.choice)
        ):
            raise ValueError("[StructuredOutputs] choice must be a non-empty list of strings")

    def grammar_text(self) -> str:
        """The constraint as an llguidance grammar (ValueError when it does not compile)."""
        llg = _llguidance()
        if self.json is not None or self.json_object:
            schema = self.json if self.json is not None else {"type": "object"}
            if isinstance(schema, str):
                try:
                    schema = json.loads(schema)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"[StructuredOutputs] json is not valid JSON: {exc}") from None
            # No free whitespace (a model could pad forever); ", " and ": " as json.dumps writes.
            # Unknown schema keywords are errors (lenient off), never ignored.
            grammar = llg.LLMatcher.grammar_from_json_schema(schema, defaults=_JSON_OPTIONS)
        elif self.regex is not None:
            grammar = llg.LLMatcher.grammar_from_regex(self.regex)
        elif self.grammar is not None:
            grammar = llg.LLMatcher.grammar_from_lark(self.grammar)
        else:
            alternatives = " | ".join(json.dumps(c) for c in self.choice)
            grammar = llg.LLMatcher.grammar_from_lark(f"start: {alternatives}")
        message = llg.LLMatcher.validate_grammar(grammar)
        if message:
            raise ValueError(f"[StructuredOutputs] the constraint does not compile: {message}")
        return grammar


_JSON_OPTIONS = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}


def _llguidance():
    try:
        import llguidance
    except ImportError as exc:
        raise ValueError(f"[StructuredOutputs] {_MISSING}") from exc
    return llguidance


_tokenizers: dict[int, Any] = {}
_tokenizers_lock = threading.Lock()


def _ll_tokenizer(tokenizer, eos_ids: list[int], vocab_size: int):
    """llguidance's view of the model's tokenizer, built once per tokenizer (about a second)."""
    llg = _llguidance()
    with _tokenizers_lock:
        key = id(tokenizer)
        cached = _tokenizers.get(key)
        if cached is None or cached[0] is not tokenizer:
            ll = llg.LLTokenizer(
                tokenizer.backend.to_str(), n_vocab=vocab_size, eos_token=list(eos_ids)
            )
            cached = (tokenizer, ll)
            _tokenizers[key] = cached
        return cached[1]


class GrammarMatcher:
    """One sample's constraint state: which tokens may come next, advanced token by token."""

    def __init__(self, grammar: str, tokenizer, eos_ids: list[int], vocab_size: int) -> None:
        llg = _llguidance()
        self._matcher = llg.LLMatcher(_ll_tokenizer(tokenizer, eos_ids, vocab_size), grammar)
        if self._matcher.is_error():
            raise ValueError(f"[StructuredOutputs] {self._matcher.get_error()}")
        self.words = (vocab_size + 31) // 32
        self._mask = np.zeros(self.words, dtype=np.int32)
        self.seconds = 0.0  # host time spent on masks and advancing (bench/bench_structured.py)

    def allowed(self) -> np.ndarray:
        """(ceil(vocab / 32),) uint32 bitmask of the tokens allowed next (bit t % 32 of word
        t / 32)."""
        t = time.perf_counter()
        self._matcher.unsafe_compute_mask_ptr(self._mask.ctypes.data, self._mask.nbytes)
        self.seconds += time.perf_counter() - t
        if self._matcher.is_error():
            raise RuntimeError(f"[StructuredOutputs] {self._matcher.get_error()}")
        return self._mask.view(np.uint32)

    def consume(self, token_id: int) -> None:
        t = time.perf_counter()
        ok = self._matcher.consume_token(token_id)
        self.seconds += time.perf_counter() - t
        if not ok:
            raise RuntimeError(
                f"[StructuredOutputs] token {token_id} was sampled but the grammar does not allow "
                f"it: {self._matcher.get_error()}"
            )

    @property
    def done(self) -> bool:
        return self._matcher.is_stopped()
