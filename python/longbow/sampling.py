"""Sampling settings of one request: the Python face of the engine's SamplingParams.

The engine's struct (include/longbow/sampling_params.h, bound as _core.EngineSamplingParams) is the
one definition of the shared fields, their defaults and their range checks; this class takes its
defaults from there, checks only what Python adds (types, `stop` strings, `logprobs` as bool or
int, `skip_special_tokens`) and lets the engine's validate() judge the values.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field

from . import _core
from .structured import StructuredOutputs

MAX_TOP_LOGPROBS: int = _core.MAX_TOP_LOGPROBS
_ENGINE_DEFAULTS = _core.EngineSamplingParams()


@dataclass(kw_only=True)
class SamplingParams:
    """How to pick tokens and when to stop (keyword arguments only).

    temperature 0 is greedy decoding. top_k 0, top_p 1 and min_p 0 disable those filters.
    Penalties apply to every token of the context (prompt and output). A seed makes sampling
    reproducible on every backend (Philox keyed by seed and token index). `stop` strings end
    the output before the stop string; `stop_token_ids` end it after that token (not shown).
    `n` samples of the prompt share its KV blocks (copy-on-write); sample i of a seeded request
    uses seed + i. max_tokens defaults to 16, as in vLLM and the C++ API.

    `logprobs`: False for none; True for each generated token's logprob; an int k in
    0..MAX_TOP_LOGPROBS (20, OpenAI's limit) for that plus the k most likely tokens at each step
    (CompletionOutput.top_logprobs; ties go to the lower token id). Logprobs are the
    log-softmax of the model's raw logits, before penalties, temperature and top_k/top_p/min_p,
    as in vLLM; they are computed on the device and only the k entries come back.
    """

    n: int = _ENGINE_DEFAULTS.n
    max_tokens: int = _ENGINE_DEFAULTS.max_tokens
    min_tokens: int = _ENGINE_DEFAULTS.min_tokens
    temperature: float = _ENGINE_DEFAULTS.temperature
    top_k: int = _ENGINE_DEFAULTS.top_k
    top_p: float = _ENGINE_DEFAULTS.top_p
    min_p: float = _ENGINE_DEFAULTS.min_p
    repetition_penalty: float = _ENGINE_DEFAULTS.repetition_penalty
    presence_penalty: float = _ENGINE_DEFAULTS.presence_penalty
    frequency_penalty: float = _ENGINE_DEFAULTS.frequency_penalty
    seed: int | None = _ENGINE_DEFAULTS.seed
    stop_token_ids: list[int] = field(default_factory=list)
    ignore_eos: bool = _ENGINE_DEFAULTS.ignore_eos
    speculative: bool = _ENGINE_DEFAULTS.speculative
    # Python only.
    stop: list[str] = field(default_factory=list)
    logprobs: bool | int = False
    skip_special_tokens: bool = True
    # Constrain the output to a JSON schema, regex, grammar or choices (longbow.structured).
    structured: StructuredOutputs | None = None

    def __post_init__(self) -> None:
        if isinstance(self.stop, str):
            self.stop = [self.stop]
        elif self.stop is None:
            self.stop = []
        if self.stop_token_ids is None:
            self.stop_token_ids = []
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the first bad field."""

        def bad(name: str, expected: str) -> None:
            raise ValueError(
                f"[SamplingParams] {name} must be {expected}, got {getattr(self, name)!r}"
            )

        if (
            self.logprobs is not None
            and not isinstance(self.logprobs, bool)
            and (not _int(self.logprobs) or not 0 <= self.logprobs <= MAX_TOP_LOGPROBS)
        ):
            bad(
                "logprobs",
                f"True, False or an int in 0..{MAX_TOP_LOGPROBS} (top logprobs per token)",
            )
        if (
            isinstance(self.stop, (bytes, bytearray))
            or not _iterable(self.stop)
            or any(not isinstance(s, str) or not s for s in self.stop)
        ):
            bad("stop", "a list of non-empty strings")
        if not _iterable(self.stop_token_ids):
            bad("stop_token_ids", "a list of token ids")
        if self.structured is not None:
            if not isinstance(self.structured, StructuredOutputs):
                bad("structured", "a longbow.structured.StructuredOutputs")
            if self.ignore_eos:
                bad("ignore_eos", "False with structured output (the grammar decides the end)")
            if self.min_tokens:
                bad("min_tokens", "0 with structured output (the grammar decides the end)")
        self.to_engine().validate()  # the ranges: ValueError "[sampling] <field> must be ..."

    @property
    def wants_logprobs(self) -> bool:
        """Whether outputs carry each token's logprob (logprobs True or an int)."""
        return self.logprobs is not None and self.logprobs is not False

    @property
    def num_top_logprobs(self) -> int | None:
        """k of the top logprobs asked for (logprobs given as an int), else None."""
        return (
            None if self.logprobs is None or isinstance(self.logprobs, bool) else int(self.logprobs)
        )

    def to_engine(self) -> _core.EngineSamplingParams:
        """The engine's copy of these settings; ValueError names a field of the wrong type (the
        C++ type decides: a bool is not a count, a float not an int, 2**31 not an int32)."""
        engine = _core.EngineSamplingParams()
        for name in _core.EngineSamplingParams.FIELDS:
            if name == "top_logprobs":
                value = self.num_top_logprobs or 0
            elif name == "speculative" and self.structured is not None:
                value = False  # masked one token at a time
            else:
                value = getattr(self, name)
            _set_typed(engine, name, value)
        return engine


def _set_typed(engine: _core.EngineSamplingParams, name: str, value: object) -> None:
    default = getattr(_ENGINE_DEFAULTS, name)
    if isinstance(default, list):
        value = list(value)
        if any(isinstance(v, bool) or not _int(v) for v in value):
            raise ValueError(f"[SamplingParams] {name} must be a list of ints, got {value!r}")
    elif isinstance(value, bool) and not isinstance(default, bool):
        raise ValueError(f"[SamplingParams] {name} must be a number, not a bool, got {value!r}")
    try:
        setattr(engine, name, value)
    except TypeError:
        kind = {int: "an int32", float: "a number", bool: "True or False"}.get(
            type(default), "an int in [0, 2**64) or None"
        )
        raise ValueError(f"[SamplingParams] {name} must be {kind}, got {value!r}") from None


def _int(x: object) -> bool:
    """An integer, numpy integers included; not a bool (True is not a count)."""
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def _iterable(x: object) -> bool:
    return isinstance(x, (list, tuple, set, frozenset))
