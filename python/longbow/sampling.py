"""Sampling settings of one request (the Python face of the engine's SamplingParams)."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field


@dataclass
class SamplingParams:
    """How to pick tokens and when to stop.

    temperature 0 is greedy decoding. top_k 0, top_p 1 and min_p 0 disable those filters.
    Penalties apply to every token of the context (prompt and output). A seed makes sampling
    reproducible on every backend (Philox keyed by seed and token index). `stop` strings end
    the output before the stop string; `stop_token_ids` end it after that token (not shown).
    `n` samples of the prompt share its KV blocks (copy-on-write); sample i of a seeded request
    uses seed + i.

    `logprobs`: False for none; True for each generated token's logprob; an int k in
    0..MAX_TOP_LOGPROBS (20, OpenAI's limit) for that plus the k most likely tokens at each step
    (CompletionOutput.top_logprobs; ties go to the lower token id). Logprobs are the
    log-softmax of the model's raw logits, before penalties, temperature and top_k/top_p/min_p,
    as in vLLM; they are computed on the device and only the k entries come back.
    """

    max_tokens: int = 128
    temperature: float = 0.0
    top_k: int = 0
    top_p: float = 1.0
    min_p: float = 0.0
    repetition_penalty: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    seed: int | None = None
    stop: list[str] = field(default_factory=list)
    stop_token_ids: list[int] = field(default_factory=list)
    ignore_eos: bool = False
    min_tokens: int = 0
    logprobs: bool | int = False
    skip_special_tokens: bool = True
    n: int = 1

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

        # The engine stores these as 32-bit ints: larger values are errors here, not TypeErrors
        # (or silent wrap-around) when the request reaches the engine.
        if not _int(self.n) or not 1 <= self.n <= _INT32_MAX:
            bad("n", "an int >= 1")
        if not _int(self.max_tokens) or not 1 <= self.max_tokens <= _INT32_MAX:
            bad("max_tokens", f"an int in [1, {_INT32_MAX}]")
        if not _int(self.min_tokens) or not 0 <= self.min_tokens <= self.max_tokens:
            bad("min_tokens", "an int in 0..max_tokens")
        if not _finite(self.temperature) or self.temperature < 0:
            bad("temperature", ">= 0")
        if not _int(self.top_k) or not 0 <= self.top_k <= _INT32_MAX:
            bad("top_k", "an int >= 0 (0 disables it)")
        if not _finite(self.top_p) or not 0 < self.top_p <= 1:
            bad("top_p", "in (0, 1]")
        if not _finite(self.min_p) or not 0 <= self.min_p <= 1:
            bad("min_p", "in [0, 1]")
        if not _finite(self.repetition_penalty) or self.repetition_penalty <= 0:
            bad("repetition_penalty", "> 0")
        if not _finite(self.presence_penalty) or not _finite(self.frequency_penalty):
            bad("presence_penalty", "finite")
        if (
            self.logprobs is not None
            and not isinstance(self.logprobs, bool)
            and (not _int(self.logprobs) or not 0 <= self.logprobs <= MAX_TOP_LOGPROBS)
        ):
            bad(
                "logprobs",
                f"True, False or an int in 0..{MAX_TOP_LOGPROBS} (top logprobs per token)",
            )
        if self.seed is not None and (not _int(self.seed) or not 0 <= self.seed < 2**64):
            bad("seed", "an int in [0, 2**64)")
        if (
            isinstance(self.stop, (bytes, bytearray))
            or not _iterable(self.stop)
            or any(not isinstance(s, str) or not s for s in self.stop)
        ):
            bad("stop", "a list of non-empty strings")
        if not _iterable(self.stop_token_ids) or any(
            not _int(t) or not 0 <= t <= _INT32_MAX for t in self.stop_token_ids
        ):
            bad("stop_token_ids", "a list of token ids")

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

    def to_engine(self):
        """The engine's copy of these settings (a _core.EngineSamplingParams)."""
        from . import _core

        p = _core.EngineSamplingParams()
        p.n = int(self.n)
        p.max_tokens = int(self.max_tokens)
        p.min_tokens = int(self.min_tokens)
        p.temperature = float(self.temperature)
        p.top_k = int(self.top_k)
        p.top_p = float(self.top_p)
        p.min_p = float(self.min_p)
        p.repetition_penalty = float(self.repetition_penalty)
        p.presence_penalty = float(self.presence_penalty)
        p.frequency_penalty = float(self.frequency_penalty)
        p.seed = None if self.seed is None else int(self.seed)
        p.stop_token_ids = [int(t) for t in self.stop_token_ids]
        p.ignore_eos = bool(self.ignore_eos)
        p.top_logprobs = self.num_top_logprobs or 0
        return p


_INT32_MAX = 2**31 - 1
MAX_TOP_LOGPROBS = 20  # SampleArgs::MAX_TOP of the engine; OpenAI's top_logprobs limit


def _int(x: object) -> bool:
    """An integer, numpy integers included; not a bool (True is not a count)."""
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def _iterable(x: object) -> bool:
    return isinstance(x, (list, tuple, set, frozenset))


def _finite(x: object) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool) and math.isfinite(x)
