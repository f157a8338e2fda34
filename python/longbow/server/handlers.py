"""The OpenAI endpoints' logic, independent of the web framework: request model -> engine
requests -> response body or server-sent events. Everything that can reject a request
(validation, admission, the prompt against the context, the engine's own checks) runs before the
first byte of a response, so a streaming request that fails gets a JSON error, never a 200 and a
dropped connection."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import math
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

from ..async_engine import AsyncEngine, RequestStream
from ..llm import LLM
from ..outputs import RequestOutput, StreamDelta
from ..sampling import SamplingParams
from ..structured import StructuredOutputs
from .errors import APIError, bad_request
from .metrics import ServerMetrics
from .protocol import MAX_N, ChatCompletionRequest, CompletionRequest, _sampling_fields
from .settings import ServerSettings
from .tools import ToolPlan

_SAMPLING_FIELDS = list(_sampling_fields())

Disconnected = Callable[[], Awaitable[bool]]


def sampling_params_from(
    req: CompletionRequest | ChatCompletionRequest, default_max_tokens: int
) -> SamplingParams:
    """SamplingParams of a request: OpenAI's defaults where a field is absent or null
    (temperature 1), the SamplingParams range checks as 400s naming the field."""
    kwargs: dict[str, Any] = {"temperature": 1.0, "max_tokens": default_max_tokens}
    for name in _SAMPLING_FIELDS:
        value = getattr(req, name)
        if value is not None:
            kwargs[name] = value
    if req.max_completion_tokens is not None:
        kwargs["max_tokens"] = req.max_completion_tokens
    kwargs["logprobs"] = _logprobs(req)
    kwargs["structured"] = _structured(req)
    n = kwargs.get("n", 1)
    if not 1 <= n <= MAX_N:
        raise bad_request(f"n must be in 1..{MAX_N}, got {n}", "n")
    try:
        return SamplingParams(**kwargs)
    except ValueError as exc:
        # "[sampling] top_p must be ..." / "[SamplingParams] stop must be ...": the field is param.
        field = re.search(r"\] (\w+) must", str(exc))
        param = field.group(1) if field else None
        if param == "max_tokens" and req.max_completion_tokens is not None:
            param = "max_completion_tokens"
        raise bad_request(str(exc), param) from exc


def _structured(req: CompletionRequest | ChatCompletionRequest) -> StructuredOutputs | None:
    """The output constraint of response_format (json_object, json_schema) or of the
    structured_outputs extension; the grammar itself is compiled when the request is added."""
    fmt, ext = req.response_format, req.structured_outputs
    if fmt is not None and fmt.type != "text" and ext is not None:
        raise bad_request(
            "give response_format or structured_outputs, not both", "structured_outputs"
        )
    try:
        if ext is not None:
            return StructuredOutputs(
                json=ext.json_,
                json_object=bool(ext.json_object),
                regex=ext.regex,
                grammar=ext.grammar,
                choice=ext.choice,
            )
        if fmt is None or fmt.type == "text":
            return None
        if fmt.type == "json_object":
            return StructuredOutputs(json_object=True)
        if fmt.json_schema is None:
            raise bad_request("response_format json_schema needs a json_schema", "response_format")
        return StructuredOutputs(json=fmt.json_schema.schema_)
    except ValueError as exc:  # StructuredOutputs' own checks
        param = "structured_outputs" if ext is not None else "response_format"
        raise bad_request(str(exc), param) from exc


def _logprobs(req: CompletionRequest | ChatCompletionRequest) -> bool | int:
    """SamplingParams.logprobs. Completions: `logprobs: k` (the chosen token and the k most
    likely; `true` = the chosen token only). Chat: `logprobs: true`, optionally `top_logprobs: k`."""
    from ..sampling import MAX_TOP_LOGPROBS

    def top_count(name: str, value: int) -> int:
        if not 0 <= value <= MAX_TOP_LOGPROBS:
            raise bad_request(f"{name} must be an int in 0..{MAX_TOP_LOGPROBS}, got {value}", name)
        return value

    if isinstance(req, CompletionRequest):
        if req.logprobs is None or isinstance(req.logprobs, bool):
            return bool(req.logprobs)
        return top_count("logprobs", req.logprobs)
    if req.top_logprobs is None:
        return bool(req.logprobs)
    top = top_count("top_logprobs", req.top_logprobs)
    if not req.logprobs:
        raise bad_request("top_logprobs needs logprobs: true", "top_logprobs")
    return top


def _usage(outputs: Sequence[RequestOutput]) -> dict[str, int]:
    prompt = sum(len(o.prompt_token_ids) for o in outputs)
    completion = sum(len(c.token_ids) for o in outputs for c in o.outputs)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _finite(logprob: float) -> float:
    """JSON has no -inf or NaN: OpenAI reports -9999.0 for impossible tokens."""
    return logprob if math.isfinite(logprob) else -9999.0


def _sse(payload: dict | str) -> str:
    return f"data: {payload if isinstance(payload, str) else json.dumps(payload)}\n\n"


class _Timings:
    """Feeds one request's token times into the TTFT and inter-token histograms."""

    def __init__(self, metrics: ServerMetrics) -> None:
        self.metrics = metrics
        self.t_arrival = time.perf_counter()
        self.first = True
        self.last: dict[tuple[int, int], float] = {}  # (prompt, sample) -> time of its last token

    def on_delta(self, prompt_index: int, d: StreamDelta) -> None:
        if not d.token_ids:
            return
        now = time.perf_counter()
        if self.first:
            self.metrics.ttft.observe(now - self.t_arrival)
            self.first = False
        key = (prompt_index, d.index)
        if key in self.last:
            self.metrics.itl.observe(now - self.last[key])
        self.last[key] = now
        self.metrics.generation_tokens.inc(len(d.token_ids))

    def done(self) -> None:
        self.metrics.e2e.observe(time.perf_counter() - self.t_arrival)


class OpenAIServer:
    """The request handlers (tested directly and through HTTP)."""

    def __init__(self, llm: LLM, settings: ServerSettings | None = None) -> None:
        self.llm = llm
        self.settings = settings or ServerSettings()
        self.model_name = self.settings.model_name or llm.model_path.stem
        self.engine = AsyncEngine(llm)
        self.started = int(time.time())
        self.max_model_len = llm.engine.max_model_len
        # Fewer tokens than characters / longest token is impossible: a prompt longer than this
        # cannot fit the context and is refused before it is tokenized.
        tok = llm.tokenizer
        longest = max(len(tok.token_bytes(i)) for i in range(tok.vocab_size))
        self.max_prompt_chars = self.max_model_len * max(longest, 1)
        self.capacity = llm.engine.max_num_seqs + self.settings.max_queue
        self.in_flight = 0  # engine requests admitted and not finished (event loop only)
        self._finish_times: list[float] = []  # recent finishes, for Retry-After
        self.metrics = ServerMetrics(self.engine.stats, lambda: self.in_flight)

    # ---- admission ---------------------------------------------------------------------------

    def check_capacity(self, count: int) -> None:
        """Raise 429 (with Retry-After) when `count` more requests would not fit."""
        if self.in_flight + count > self.capacity:
            raise APIError(
                429,
                f"server is at capacity ({self.in_flight} requests in flight, at most "
                f"{self.capacity}: --max-num-seqs + --max-queue); retry later",
                kind="rate_limit_error",
                code="server_busy",
                headers={"Retry-After": str(self._retry_after())},
            )

    @contextlib.contextmanager
    def admit(self, count: int):
        """Hold `count` request slots for the body of the with-statement, or raise 429."""
        self.check_capacity(count)
        self.in_flight += count
        try:
            yield
        finally:
            self.in_flight -= count
            now = time.monotonic()
            self._finish_times.append(now)
            del self._finish_times[:-64]

    def _retry_after(self) -> int:
        """Seconds until a slot is likely free, from the recent finishing rate (1..60)."""
        recent = [t for t in self._finish_times if t > time.monotonic() - 30.0]
        if len(recent) < 2:
            return 5
        rate = (len(recent) - 1) / max(recent[-1] - recent[0], 1e-3)
        waiting = max(self.in_flight - self.llm.engine.max_num_seqs, 0) + 1
        return int(min(max(math.ceil(waiting / rate), 1), 60))

    # ---- models ------------------------------------------------------------------------------

    def model_card(self) -> dict:
        return {
            "id": self.model_name,
            "object": "model",
            "created": self.started,
            "owned_by": "longbow",
            "max_model_len": self.max_model_len,
        }

    def models(self) -> dict:
        return {"object": "list", "data": [self.model_card()]}

    def model(self, model_id: str) -> dict:
        self._check_model(model_id)
        return self.model_card()

    def _check_model(self, name: str | None) -> None:
        if name is not None and name != self.model_name:
            raise APIError(
                404,
                f"model {name!r} is not served here (serving {self.model_name!r})",
                "model",
                code="model_not_found",
            )

    # ---- prompts -----------------------------------------------------------------------------

    def _check_chars(self, chars: int, param: str) -> None:
        if chars > self.max_prompt_chars:
            raise bad_request(
                f"{param} has {chars} characters: more tokens than the context of "
                f"{self.max_model_len} tokens can hold",
                param,
            )

    def _completion_prompts(self, req: CompletionRequest) -> list[str | list[int]]:
        if req.echo and req.logprobs not in (None, False):
            # OpenAI would also return the prompt's logprobs, which longbow does not compute.
            raise bad_request("echo with logprobs is not supported (prompt logprobs)", "echo")
        p = req.prompt
        prompts: list = [p] if isinstance(p, str) or (p and isinstance(p[0], int)) else list(p)
        if not prompts:
            raise bad_request("prompt must not be empty", "prompt")
        for item in prompts:
            if isinstance(item, str):
                self._check_chars(len(item), "prompt")
            elif len(item) > self.max_model_len:
                raise bad_request(
                    f"prompt has {len(item)} tokens, more than the context of "
                    f"{self.max_model_len} tokens",
                    "prompt",
                )
        return prompts

    def _render_chat(self, req: ChatCompletionRequest, plan: ToolPlan) -> str:
        """The chat template applied to the messages (runs on a worker thread)."""
        from jinja2 import TemplateError

        messages = plan.messages([m.for_template() for m in req.messages])
        try:
            return self.llm.tokenizer.apply_chat_template(
                messages, add_generation_prompt=True, tools=plan.template_tools()
            )
        except (ValueError, TemplateError) as exc:
            raise bad_request(str(exc), "messages") from exc

    async def _chat_prompt(self, req: ChatCompletionRequest, plan: ToolPlan) -> str:
        self._check_chars(sum(m.text_length() for m in req.messages), "messages")
        loop = asyncio.get_running_loop()
        prompt = await loop.run_in_executor(None, self._render_chat, req, plan)
        self._check_chars(len(prompt), "messages")
        return prompt

    def _chat_params(self, req: ChatCompletionRequest) -> tuple[SamplingParams, ToolPlan]:
        params = sampling_params_from(req, self.settings.default_max_tokens)
        plan = ToolPlan(req, self.llm.tokenizer.chat_template)
        constraint = plan.constraint()
        if constraint is not None:
            try:
                params = dataclasses.replace(params, structured=constraint)
            except ValueError as exc:
                raise bad_request(str(exc), "tool_choice") from exc
        return params, plan

    async def _start(
        self, prompts: Sequence[str | list[int]], params: SamplingParams, special: bool
    ) -> list[RequestStream]:
        """Every prompt accepted by the engine, or none (ValueError -> 400)."""
        results = await asyncio.gather(
            *(self.engine.add(p, params, add_special_tokens=special) for p in prompts),
            return_exceptions=True,
        )
        streams = [r for r in results if isinstance(r, RequestStream)]
        failed = [r for r in results if not isinstance(r, RequestStream)]
        if failed:
            for s in streams:
                s.abort()
            exc = failed[0]
            if isinstance(exc, ValueError):
                param = "messages" if not special else "prompt"
                if str(exc).startswith("[StructuredOutputs]"):
                    param = "response_format" if params.structured else param
                raise bad_request(str(exc), param) from exc
            raise exc
        for s in streams:
            self.metrics.prompt_tokens.inc(len(s.prompt_token_ids))
        return streams

    # ---- token details -----------------------------------------------------------------------

    def _token(self, token_id: int) -> tuple[str, list[int]]:
        """(text, UTF-8 bytes) of one token; a partial character shows as U+FFFD in the text."""
        raw = self.llm.tokenizer.token_bytes(token_id)
        return raw.decode("utf-8", errors="replace"), list(raw)

    def _completion_logprobs(
        self,
        token_ids: list[int],
        logprobs: list[float],
        tops: list[dict[int, float]] | None,
        offset: int = 0,
    ) -> dict:
        """Legacy completions `logprobs`: per token its text, logprob, and (when asked) a
        {text: logprob} of the top k plus the chosen token, as OpenAI; text_offset counts
        characters of the token texts from `offset`."""
        tokens = [self._token(t)[0] for t in token_ids]
        offsets = []
        for text in tokens:
            offsets.append(offset)
            offset += len(text)
        top_logprobs = None
        if tops is not None:
            top_logprobs = []
            for text, lp, top in zip(tokens, logprobs, tops):
                entry = {self._token(i)[0]: _finite(v) for i, v in top.items()}
                entry.setdefault(text, _finite(lp))
                top_logprobs.append(entry)
        return {
            "tokens": tokens,
            "token_logprobs": [_finite(lp) for lp in logprobs],
            "top_logprobs": top_logprobs,
            "text_offset": offsets,
        }

    def _chat_logprobs(
        self, token_ids: list[int], logprobs: list[float], tops: list[dict[int, float]] | None
    ) -> dict:
        """Chat `logprobs.content`: per token {token, logprob, bytes, top_logprobs}."""
        content = []
        for j, (t, lp) in enumerate(zip(token_ids, logprobs)):
            text, raw = self._token(t)
            top = []
            for i, v in (tops[j] if tops is not None else {}).items():
                top_text, top_raw = self._token(i)
                top.append({"token": top_text, "logprob": _finite(v), "bytes": top_raw})
            content.append(
                {"token": text, "logprob": _finite(lp), "bytes": raw, "top_logprobs": top}
            )
        return {"content": content}

    # ---- running -----------------------------------------------------------------------------

    async def _results(
        self, streams: list[RequestStream], timings: _Timings, disconnected: Disconnected
    ) -> list[RequestOutput]:
        """Every stream's output; aborts them all when the client goes away."""

        async def one(i: int, s: RequestStream) -> RequestOutput:
            output = None
            async for d in s:
                timings.on_delta(i, d)
                if d.output is not None:
                    output = d.output
            assert output is not None
            return output

        work = asyncio.ensure_future(asyncio.gather(*(one(i, s) for i, s in enumerate(streams))))
        try:
            while True:
                done, _ = await asyncio.wait({work}, timeout=0.1)
                if done:
                    timings.done()
                    return work.result()
                if await disconnected():
                    raise APIError(499, "client disconnected", kind="client_closed_request")
        finally:
            if not work.done():
                work.cancel()
            for s in streams:
                s.abort()

    async def completion(self, req: CompletionRequest, disconnected: Disconnected) -> dict:
        self._check_model(req.model)
        params = sampling_params_from(req, self.settings.default_max_tokens)
        prompts = self._completion_prompts(req)
        with self.admit(len(prompts)):
            timings = _Timings(self.metrics)
            streams = await self._start(prompts, params, special=True)
            outputs = await self._results(streams, timings, disconnected)
        choices = []
        for prompt, output in zip(prompts, outputs):
            echo = self._echo_text(req, prompt)
            for c in output.outputs:
                choice = {
                    "index": len(choices),
                    "text": echo + c.text,
                    "finish_reason": c.finish_reason,
                    "logprobs": None,
                }
                if c.logprobs is not None:
                    choice["logprobs"] = self._completion_logprobs(
                        c.token_ids, c.logprobs, c.top_logprobs, len(echo)
                    )
                choices.append(choice)
        return {
            "id": f"cmpl-{uuid.uuid4().hex}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": self.model_name,
            "choices": choices,
            "usage": _usage(outputs),
        }

    def _echo_text(self, req: CompletionRequest, prompt: str | list[int]) -> str:
        if not req.echo:
            return ""
        if isinstance(prompt, str):
            return prompt
        return self.llm.tokenizer.decode(prompt, skip_special_tokens=False)

    async def chat(self, req: ChatCompletionRequest, disconnected: Disconnected) -> dict:
        self._check_model(req.model)
        params, plan = self._chat_params(req)
        with self.admit(1):
            prompt = await self._chat_prompt(req, plan)
            timings = _Timings(self.metrics)
            streams = await self._start([prompt], params, special=False)
            (output,) = await self._results(streams, timings, disconnected)
        choices = []
        for i, c in enumerate(output.outputs):
            message: dict = {"role": "assistant", "content": c.text}
            finish = c.finish_reason
            calls = plan.calls(c.text) if finish == "stop" else None
            if calls:
                message, finish = (
                    {"role": "assistant", "content": None, "tool_calls": calls},
                    ("tool_calls"),
                )
            choice = {
                "index": i,
                "message": message,
                "finish_reason": finish,
                "logprobs": None,
            }
            if c.logprobs is not None:
                choice["logprobs"] = self._chat_logprobs(c.token_ids, c.logprobs, c.top_logprobs)
            choices.append(choice)
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model_name,
            "choices": choices,
            "usage": _usage([output]),
        }

    async def stream(
        self, req: CompletionRequest | ChatCompletionRequest
    ) -> tuple[AsyncIterator[str], Callable[[], None]]:
        """(server-sent events, abort) for a streaming request. Every check and the engine's
        acceptance happen here, before the first event; abort() stops the requests if the
        events are never consumed."""
        chat = isinstance(req, ChatCompletionRequest)
        self._check_model(req.model)
        plan = None
        if chat:
            params, plan = self._chat_params(req)
        else:
            params = sampling_params_from(req, self.settings.default_max_tokens)
        prompts = self._completion_prompts(req) if not chat else None
        slots = contextlib.ExitStack()
        slots.enter_context(self.admit(1 if chat else len(prompts)))
        try:
            if chat:
                prompts = [await self._chat_prompt(req, plan)]
            timings = _Timings(self.metrics)
            streams = await self._start(prompts, params, special=not chat)
        except BaseException:
            slots.close()
            raise

        def abort() -> None:
            for s in streams:
                s.abort()
            slots.close()

        events = self._events(req, prompts, streams, params, timings, slots, plan)
        return events, abort

    async def _events(
        self,
        req: CompletionRequest | ChatCompletionRequest,
        prompts: list,
        streams: list[RequestStream],
        params: SamplingParams,
        timings: _Timings,
        slots: contextlib.ExitStack,
        plan: ToolPlan | None = None,
    ) -> AsyncIterator[str]:
        chat = isinstance(req, ChatCompletionRequest)
        rid = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex}"
        created = int(time.time())
        obj = "chat.completion.chunk" if chat else "text_completion"
        include_usage = bool(req.stream_options and req.stream_options.include_usage)
        n = params.n
        started: set[int] = set()
        offsets: dict[int, int] = {}  # per choice: characters of token texts so far (text_offset)
        outputs: dict[int, RequestOutput] = {}

        def chunk(choices: list, **extra) -> str:
            return _sse(
                {
                    "id": rid,
                    "object": obj,
                    "created": created,
                    "model": self.model_name,
                    "choices": choices,
                    **extra,
                }
            )

        try:
            if not chat and req.echo:
                for p, prompt in enumerate(prompts):
                    for i in range(n):
                        text = self._echo_text(req, prompt)
                        offsets[p * n + i] = len(text)
                        choice = {"index": p * n + i, "text": text, "finish_reason": None}
                        yield chunk([choice])
            # Tools: a sample's text is held back while it may still be a call; once it cannot
            # be (or ends as plain text) it streams as content.
            tools = plan is not None and plan.active
            held: dict[int, str] = {}
            as_text: set[int] = set()
            async for p, d in _merged(streams):
                timings.on_delta(p, d)
                index = p * n + d.index
                if tools and index not in as_text:
                    text = held.pop(index, "") + d.text
                    if plan.constrained or plan.may_be_call(text):
                        if not d.finished:
                            held[index] = text
                            continue
                        calls = plan.calls(text) if d.finish_reason == "stop" else None
                        if calls:
                            yield chunk([self._tool_call_choice(index, calls, started)])
                            continue
                    as_text.add(index)
                    d = dataclasses.replace(d, text=text)
                choice = self._delta_choice(chat, index, d, started, offsets)
                with_logprobs = d.logprobs is not None and bool(d.token_ids)
                if d.text or d.finished or with_logprobs or (chat and "role" in choice["delta"]):
                    yield chunk([choice])
                if d.output is not None:
                    outputs[p] = d.output
            timings.done()
            if include_usage:
                yield chunk([], usage=_usage([outputs[p] for p in sorted(outputs)]))
            yield _sse("[DONE]")
        except APIError as exc:
            yield _sse(exc.body())
        except Exception as exc:  # noqa: BLE001 - the stream has started: report in-band
            yield _sse(APIError(500, f"generation failed: {exc}", kind="server_error").body())
        finally:
            for s in streams:
                s.abort()
            slots.close()

    def _tool_call_choice(self, index: int, calls: list[dict], started: set[int]) -> dict:
        """The streamed reply of a sample that called tools: one delta with every call."""
        delta: dict = {"tool_calls": [{"index": i, **c} for i, c in enumerate(calls)]}
        if index not in started:
            started.add(index)
            delta = {"role": "assistant", **delta}
        return {"index": index, "delta": delta, "finish_reason": "tool_calls"}

    def _delta_choice(
        self, chat: bool, index: int, d: StreamDelta, started: set[int], offsets: dict[int, int]
    ) -> dict:
        finish = d.finish_reason if d.finished else None
        if chat:
            delta: dict = {}
            if index not in started:
                started.add(index)
                delta["role"] = "assistant"
            if d.text:
                delta["content"] = d.text
            choice = {"index": index, "delta": delta, "finish_reason": finish}
            if d.logprobs is not None:
                choice["logprobs"] = self._chat_logprobs(d.token_ids, d.logprobs, d.top_logprobs)
            return choice
        choice = {"index": index, "text": d.text, "finish_reason": finish}
        if d.logprobs is not None:
            at = offsets.get(index, 0)
            lps = self._completion_logprobs(d.token_ids, d.logprobs, d.top_logprobs, at)
            offsets[index] = at + sum(len(t) for t in lps["tokens"])
            choice["logprobs"] = lps
        return choice

    def stats(self) -> dict:
        return {**self.engine.stats(), "requests_in_flight": self.in_flight}


async def _merged(streams: list[RequestStream]) -> AsyncIterator[tuple[int, StreamDelta]]:
    """(prompt index, delta) from several request streams as they arrive."""
    if len(streams) == 1:
        async for d in streams[0]:
            yield 0, d
        return
    queue: asyncio.Queue = asyncio.Queue()
    done = object()

    async def pump(i: int, s: RequestStream) -> None:
        try:
            async for d in s:
                await queue.put((i, d))
        except Exception as exc:  # noqa: BLE001 - re-raised by the consumer
            await queue.put((i, exc))
        await queue.put((i, done))

    tasks = [asyncio.create_task(pump(i, s)) for i, s in enumerate(streams)]
    remaining = len(streams)
    try:
        while remaining:
            i, item = await queue.get()
            if item is done:
                remaining -= 1
            elif isinstance(item, Exception):
                raise item
            else:
                yield i, item
    finally:
        for t in tasks:
            t.cancel()
