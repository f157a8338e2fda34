"""Results of generation requests, and the per-request bookkeeping shared by every API."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from .detokenizer import IncrementalDetokenizer, StopChecker
from .sampling import SamplingParams


@dataclass
class RequestOutput:
    """One finished (or aborted) request."""

    request_id: str
    prompt: str | None
    prompt_token_ids: list[int]
    text: str
    token_ids: list[int]
    finish_reason: str  # "stop", "length" or "abort"
    logprobs: list[float] | None = None
    metrics: dict = field(default_factory=dict)


class RequestState:
    """Tracks one request's tokens, streamed text, stop strings and timings."""

    def __init__(self, request_id: str, prompt: str | None, prompt_ids: list[int],
                 params: SamplingParams, tokenizer) -> None:
        self.request_id = request_id
        self.prompt = prompt
        self.prompt_ids = prompt_ids
        self.params = params
        self.token_ids: list[int] = []
        self.logprobs: list[float] = []
        self.text = ""
        self.finish_reason: str | None = None
        self._detok = IncrementalDetokenizer(tokenizer, prompt_ids, params.skip_special_tokens)
        self._stops = StopChecker(params.stop)
        self._stop_ids = set(params.stop_token_ids)
        self.t_arrival = time.perf_counter()
        self.t_first_token: float | None = None
        self.t_finish: float | None = None

    @property
    def finished(self) -> bool:
        return self.finish_reason is not None

    def on_token(self, token_id: int, logprob: float, finished: bool, reason: str) -> tuple[str, bool]:
        """Feed one engine output; returns (new text, whether the engine must abort the request
        because a stop string matched)."""
        now = time.perf_counter()
        if self.finished:
            return "", False
        if token_id >= 0:
            if self.t_first_token is None:
                self.t_first_token = now
            self.token_ids.append(token_id)
            self.logprobs.append(logprob)
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
            emit += self._stops.push(self._detok.flush())[0] + self._stops.flush()
            self._finish(reason or "stop", now)
        self.text += emit
        return emit, False

    def _finish(self, reason: str, now: float) -> None:
        self.finish_reason = reason
        self.t_finish = now

    def output(self) -> RequestOutput:
        n = len(self.token_ids)
        t_end = self.t_finish or time.perf_counter()
        ttft = (self.t_first_token - self.t_arrival) if self.t_first_token else None
        decode_s = (t_end - self.t_first_token) if self.t_first_token else 0.0
        metrics = {
            "num_prompt_tokens": len(self.prompt_ids),
            "num_generated_tokens": n,
            "time_to_first_token_s": ttft,
            "total_s": t_end - self.t_arrival,
            "prefill_tokens_per_s": (len(self.prompt_ids) / ttft) if ttft else None,
            "decode_tokens_per_s": ((n - 1) / decode_s) if n > 1 and decode_s > 0 else None,
        }
        return RequestOutput(
            request_id=self.request_id,
            prompt=self.prompt,
            prompt_token_ids=list(self.prompt_ids),
            text=self.text,
            token_ids=list(self.token_ids),
            finish_reason=self.finish_reason or "abort",
            logprobs=list(self.logprobs) if self.params.logprobs else None,
            metrics=metrics,
        )
