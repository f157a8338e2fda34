"""Results of generation requests, and the per-request bookkeeping shared by every API."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from .detokenizer import IncrementalDetokenizer, StopChecker
from .sampling import SamplingParams


@dataclass
class CompletionOutput:
    """One of a request's n samples."""

    index: int
    text: str
    token_ids: list[int]
    finish_reason: str | None  # "stop", "length", "abort", or None while running
    logprobs: list[float] | None = None  # per token, when SamplingParams.logprobs is set
    # Per token: {token id: logprob} of the k most likely tokens, most likely first, when
    # SamplingParams.logprobs is an int k (the chosen token is in it only if it is among them).
    top_logprobs: list[dict[int, float]] | None = None


@dataclass
class RequestOutput:
    """One finished (or aborted) request.

    `outputs` holds all n samples (SamplingParams.n); `text`, `token_ids`, `finish_reason`,
    `logprobs` and `top_logprobs` are those of the first sample.
    """

    request_id: str
    prompt: str | None
    prompt_token_ids: list[int]
    text: str
    token_ids: list[int]
    finish_reason: str  # "stop", "length" or "abort"
    logprobs: list[float] | None = None
    metrics: dict = field(default_factory=dict)
    outputs: list[CompletionOutput] = field(default_factory=list)
    top_logprobs: list[dict[int, float]] | None = None


@dataclass
class StreamDelta:
    """What one engine step added to one sample of a request (AsyncEngine.generate items)."""

    request_id: str
    index: int  # sample index (0 unless SamplingParams.n > 1)
    text: str  # new text (stop strings are never shown)
    token_ids: list[int]  # new token ids
    finished: bool  # this sample is done
    finish_reason: str | None
    output: RequestOutput | None = None  # the whole request, on its last delta
    logprobs: list[float] | None = None  # of token_ids, when SamplingParams.logprobs is set
    top_logprobs: list[dict[int, float]] | None = None  # of token_ids, when logprobs is an int


class SampleState:
    """One sample's tokens, streamed text and stop strings."""

    def __init__(
        self, index: int, prompt_ids: list[int], params: SamplingParams, tokenizer
    ) -> None:
        self.index = index
        self.token_ids: list[int] = []
        self.logprobs: list[float] = []
        self.top_logprobs: list[dict[int, float]] = []
        self.text = ""
        self.finish_reason: str | None = None
        self.t_first_token: float | None = None
        self.t_finish: float | None = None
        self.spec = (0, 0, 0)  # speculative (verify steps, draft tokens, accepted tokens)
        self._detok = IncrementalDetokenizer(tokenizer, prompt_ids, params.skip_special_tokens)
        self._stops = StopChecker(params.stop)
        self.matcher = None  # GrammarMatcher of a structured-output request
        self.needs_mask = False  # the matcher advanced: the engine needs its next mask

    @property
    def finished(self) -> bool:
        return self.finish_reason is not None

    def on_token(
        self,
        token_id: int,
        logprob: float,
        finished: bool,
        reason: str,
        now: float,
        top: list[tuple[int, float]] | None = None,
        spec: tuple[int, int, int] | None = None,
    ) -> tuple[str, bool]:
        if self.finished:
            return "", False
        if spec is not None:
            self.spec = spec
        if token_id >= 0:
            if self.matcher is not None:
                self.matcher.consume(token_id)
                self.needs_mask = True
            if self.t_first_token is None:
                self.t_first_token = now
            self.token_ids.append(token_id)
            self.logprobs.append(logprob)
            self.top_logprobs.append(dict(top or ()))
        delta = ""
        # Stop tokens and eos end the text without being shown.
        shown = token_id >= 0 and not (finished and reason == "stop")
        if shown:
            delta = self._detok.push(token_id)
        emit, stopped = self._stops.push(delta) if delta else ("", False)
        if stopped:
            self._finish("stop", now)
            self.text += emit
            return emit, True
        if finished:
            tail, stopped_at_end = self._stops.push(self._detok.flush())
            emit += tail + self._stops.flush()
            # Text held back until the end (an unfinished character) can still complete a stop string.
            self._finish("stop" if stopped_at_end else (reason or "stop"), now)
        self.text += emit
        return emit, False

    def _finish(self, reason: str, now: float) -> None:
        self.finish_reason = reason
        self.t_finish = now

    def output(self, params: SamplingParams) -> CompletionOutput:
        with_top = params.num_top_logprobs is not None
        return CompletionOutput(
            self.index,
            self.text,
            list(self.token_ids),
            self.finish_reason or "abort",
            list(self.logprobs) if params.wants_logprobs else None,
            list(self.top_logprobs) if with_top else None,
        )


class RequestState:
    """Tracks one request's samples, timings and stop strings."""

    def __init__(
        self,
        request_id: str,
        prompt: str | None,
        prompt_ids: list[int],
        params: SamplingParams,
        tokenizer,
    ) -> None:
        self.request_id = request_id
        self.prompt = prompt
        self.prompt_ids = prompt_ids
        self.params = params
        n = getattr(params, "n", 1)
        self.samples = [SampleState(i, prompt_ids, params, tokenizer) for i in range(n)]
        self.t_arrival = time.perf_counter()

    def constrain(self, matchers: list) -> None:
        """Structured output: one GrammarMatcher per sample; push_masks() hands their masks to
        the engine."""
        for sample, matcher in zip(self.samples, matchers, strict=True):
            sample.matcher = matcher
            sample.needs_mask = True

    def push_masks(self, engine) -> None:
        """Give the engine the allowed-token mask of each running constrained sample whose
        grammar advanced (after the request is added, and after every token)."""
        for s in self.samples:
            if s.needs_mask and not s.finished:
                engine.set_allowed_tokens(self.request_id, s.index, s.matcher.allowed())
            s.needs_mask = False

    @property
    def constrained(self) -> bool:
        return self.samples[0].matcher is not None

    # The first sample, for callers that ask for one completion.
    @property
    def token_ids(self) -> list[int]:
        return self.samples[0].token_ids

    @property
    def text(self) -> str:
        return self.samples[0].text

    @property
    def finish_reason(self) -> str | None:
        return self.samples[0].finish_reason if self.finished else None

    @property
    def t_first_token(self) -> float | None:
        times = [s.t_first_token for s in self.samples if s.t_first_token is not None]
        return min(times) if times else None

    @property
    def finished(self) -> bool:
        return all(s.finished for s in self.samples)

    def on_token(
        self,
        token_id: int,
        logprob: float,
        finished: bool,
        reason: str,
        sample_idx: int = 0,
        top: list[tuple[int, float]] | None = None,
        spec: tuple[int, int, int] | None = None,
    ) -> tuple[str, bool]:
        """Feed one engine output (top: its [(token id, logprob)] top logprobs; spec: the
        sample's speculative (verify steps, draft tokens, accepted tokens) so far); returns (new
        text, whether the engine must abort this sample because a stop string matched)."""
        if not 0 <= sample_idx < len(self.samples):
            raise ValueError(
                f"[RequestState] {self.request_id}: expected sample index in "
                f"[0, {len(self.samples)}), found {sample_idx}"
            )
        now = time.perf_counter()
        return self.samples[sample_idx].on_token(
            token_id, logprob, finished, reason, now, top, spec
        )

    def output(self) -> RequestOutput:
        first = self.samples[0]
        n = len(first.token_ids)
        ends = [s.t_finish for s in self.samples if s.t_finish is not None]
        t_end = max(ends) if self.finished and ends else time.perf_counter()
        t_first = first.t_first_token
        ttft = (t_first - self.t_arrival) if t_first else None
        decode_s = ((first.t_finish or t_end) - t_first) if t_first else 0.0
        metrics = {
            "num_prompt_tokens": len(self.prompt_ids),
            "num_generated_tokens": sum(len(s.token_ids) for s in self.samples),
            "time_to_first_token_s": ttft,
            "total_s": t_end - self.t_arrival,
            "prefill_tokens_per_s": (len(self.prompt_ids) / ttft) if ttft else None,
            "decode_tokens_per_s": ((n - 1) / decode_s) if n > 1 and decode_s > 0 else None,
        }
        verify, drafted, accepted = (sum(x) for x in zip(*(s.spec for s in self.samples)))
        if drafted:
            # Speculative decoding: accepted / proposed draft tokens, and tokens per verify step.
            metrics["num_draft_tokens"] = drafted
            metrics["num_accepted_tokens"] = accepted
            metrics["acceptance_rate"] = accepted / drafted
            metrics["mean_accepted_length"] = (accepted + verify) / verify
        outs = [s.output(self.params) for s in self.samples]
        return RequestOutput(
            request_id=self.request_id,
            prompt=self.prompt,
            prompt_token_ids=list(self.prompt_ids),
            text=first.text,
            token_ids=list(first.token_ids),
            finish_reason=first.finish_reason or "abort",
            logprobs=outs[0].logprobs,
            metrics=metrics,
            outputs=outs,
            top_logprobs=outs[0].top_logprobs,
        )
