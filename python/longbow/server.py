"""OpenAI-compatible HTTP server: /v1/completions, /v1/chat/completions (streaming with
server-sent events), /v1/models, /health and /metrics. Needs the `server` extra (FastAPI, uvicorn).

    longbow serve --model model.gguf --port 8000
    curl localhost:8000/v1/chat/completions -d '{"messages":[{"role":"user","content":"Hi"}]}'

Every request goes through one AsyncEngine, so concurrent clients share continuous batching.
"""

import contextlib
import dataclasses
import json
import math
import re
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from .async_engine import AsyncEngine
from .llm import LLM
from .sampling import MAX_TOP_LOGPROBS, SamplingParams

# OpenAI request fields we understand; anything else is rejected with a clear message rather
# than silently ignored. Every SamplingParams field is a request field of the same name (vLLM
# style extensions such as top_k, min_p, ignore_eos), so a new sampling knob reaches the server
# without a change here; `logprobs` and `max_completion_tokens` are mapped below.
_SAMPLING_FIELDS = {f.name for f in dataclasses.fields(SamplingParams)}
_COMMON_FIELDS = _SAMPLING_FIELDS | {
    "model",
    "max_completion_tokens",
    "stream",
    "user",
    "stream_options",
}
_COMPLETION_FIELDS = _COMMON_FIELDS | {"prompt", "echo"}
_CHAT_FIELDS = _COMMON_FIELDS | {"messages", "top_logprobs"}
# The server's defaults where OpenAI's differ from SamplingParams': sampling at temperature 1,
# and a longer default length than the library's 16 tokens.
_OPENAI_DEFAULTS = {"temperature": 1.0, "max_tokens": 256}
MAX_N = 16  # samples per request


class RequestError(ValueError):
    """A bad request: becomes an HTTP 400 with an OpenAI-style error body."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


def _top_count(body: dict[str, Any], name: str) -> int:
    value = body[name]
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_TOP_LOGPROBS:
        raise RequestError(f"{name} must be an int in 0..{MAX_TOP_LOGPROBS}, got {value!r}", name)
    return value


def logprobs_from(body: dict[str, Any], chat: bool) -> bool | int:
    """SamplingParams.logprobs of a request. Completions: `logprobs: k` (the chosen token and
    the k most likely; `true` = the chosen token only). Chat: `logprobs: true`, optionally with
    `top_logprobs: k`."""
    value = body.get("logprobs")
    if not chat:
        if value is None or isinstance(value, bool):
            return bool(value)
        return _top_count(body, "logprobs")
    if value is not None and not isinstance(value, bool):
        raise RequestError(f"logprobs must be true or false, got {value!r}", "logprobs")
    if body.get("top_logprobs") is None:
        return bool(value)
    top = _top_count(body, "top_logprobs")
    if not value:
        raise RequestError("top_logprobs needs logprobs: true", "top_logprobs")
    return top


def sampling_params_from(body: dict[str, Any], allowed: set[str]) -> SamplingParams:
    """SamplingParams from an OpenAI request body; RequestError names the offending field."""
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise RequestError(f"unsupported field(s): {', '.join(unknown)}", unknown[0])
    kwargs = dict(_OPENAI_DEFAULTS)
    kwargs.update({k: v for k, v in body.items() if k in _SAMPLING_FIELDS and v is not None})
    if body.get("max_completion_tokens") is not None:
        kwargs["max_tokens"] = body["max_completion_tokens"]
    kwargs["logprobs"] = logprobs_from(body, chat="messages" in allowed)
    n = kwargs.get("n", 1)
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_N:
        raise RequestError(f"n must be an int in 1..{MAX_N}, got {n!r}", "n")
    try:
        return SamplingParams(**kwargs)
    except (TypeError, ValueError) as exc:
        # "[sampling] top_p must be ..." / "[SamplingParams] stop must be ...": the field is param.
        field = re.search(r"\] (\w+) must", str(exc))
        param = field.group(1) if field and field.group(1) in _SAMPLING_FIELDS else None
        raise RequestError(str(exc), param) from exc


def _usage(output) -> dict[str, int]:
    prompt = len(output.prompt_token_ids)
    completion = sum(len(c.token_ids) for c in _completions(output))
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _completions(output) -> list:
    return list(getattr(output, "outputs", None) or [output])


def _finite(logprob: float) -> float:
    """JSON has no -inf or NaN: OpenAI reports -9999.0 for impossible tokens."""
    return logprob if math.isfinite(logprob) else -9999.0


def _sse(payload: dict | str) -> str:
    return f"data: {payload if isinstance(payload, str) else json.dumps(payload)}\n\n"


class OpenAIServer:
    """The request handlers, independent of the web framework (tested directly and via HTTP)."""

    def __init__(self, llm: LLM, model_name: str | None = None) -> None:
        self.llm = llm
        self.model_name = model_name or llm.model_path.stem
        self.engine = AsyncEngine(llm)
        self.started = int(time.time())

    def models(self) -> dict:
        return {
            "object": "list",
            "data": [
                {
                    "id": self.model_name,
                    "object": "model",
                    "created": self.started,
                    "owned_by": "longbow",
                }
            ],
        }

    def _check_model(self, body: dict) -> None:
        name = body.get("model")
        if name is not None and name != self.model_name:
            raise RequestError(
                f"model {name!r} is not served here (serving {self.model_name!r})", "model"
            )

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

    def _chat_prompt(self, body: dict) -> str:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise RequestError("messages must be a non-empty list of {role, content}", "messages")
        try:
            return self.llm.tokenizer.apply_chat_template(messages, add_generation_prompt=True)
        except ValueError as exc:
            raise RequestError(str(exc), "messages") from exc

    def _completion_prompts(self, body: dict) -> list:
        prompt = body.get("prompt")
        if isinstance(prompt, str):
            return [prompt]
        if isinstance(prompt, list) and prompt and all(isinstance(t, int) for t in prompt):
            return [prompt]
        if isinstance(prompt, list) and prompt and all(isinstance(p, (str, list)) for p in prompt):
            return prompt
        raise RequestError("prompt must be a string, a list of strings, or token ids", "prompt")

    async def _final(self, prompt, params, add_special_tokens: bool):
        output = None
        async for delta in self.engine.generate(
            prompt, params, add_special_tokens=add_special_tokens
        ):
            if delta.output is not None:
                output = delta.output
        return output

    async def completion(self, body: dict) -> dict:
        self._check_model(body)
        params = sampling_params_from(body, _COMPLETION_FIELDS)
        choices, usage = [], {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
        for prompt in self._completion_prompts(body):
            output = await self._final(prompt, params, True)
            for c in _completions(output):
                text = c.text
                if body.get("echo") and isinstance(prompt, str):
                    text = prompt + text
                choice = {
                    "index": len(choices),
                    "text": text,
                    "finish_reason": c.finish_reason,
                    "logprobs": None,
                }
                if c.logprobs is not None:
                    offset = len(prompt) if body.get("echo") and isinstance(prompt, str) else 0
                    choice["logprobs"] = self._completion_logprobs(
                        c.token_ids, c.logprobs, c.top_logprobs, offset
                    )
                choices.append(choice)
            for k, v in _usage(output).items():
                usage[k] += v
        return {
            "id": f"cmpl-{uuid.uuid4().hex}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": self.model_name,
            "choices": choices,
            "usage": usage,
        }

    async def chat(self, body: dict) -> dict:
        self._check_model(body)
        params = sampling_params_from(body, _CHAT_FIELDS)
        output = await self._final(self._chat_prompt(body), params, False)
        choices = []
        for i, c in enumerate(_completions(output)):
            choice = {
                "index": i,
                "message": {"role": "assistant", "content": c.text},
                "finish_reason": c.finish_reason,
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
            "usage": _usage(output),
        }

    async def stream(self, body: dict, chat: bool) -> AsyncIterator[str]:
        """Server-sent events for a streaming request (validated before the first event)."""
        self._check_model(body)
        params = sampling_params_from(body, _CHAT_FIELDS if chat else _COMPLETION_FIELDS)
        if chat:
            prompt, special = self._chat_prompt(body), False
        else:
            prompts = self._completion_prompts(body)
            if len(prompts) != 1:
                raise RequestError("streaming takes a single prompt", "prompt")
            prompt, special = prompts[0], True
        rid = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex}"
        created = int(time.time())
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        return self._events(rid, created, prompt, special, params, chat, include_usage)

    async def _events(
        self, rid, created, prompt, special, params, chat, include_usage
    ) -> AsyncIterator[str]:
        obj = "chat.completion.chunk" if chat else "text_completion"
        started: set[int] = set()
        offsets: dict[int, int] = {}  # per sample: characters of token texts so far (text_offset)
        output = None
        async for d in self.engine.generate(prompt, params, add_special_tokens=special):
            if chat:
                delta: dict = {}
                if d.index not in started:
                    started.add(d.index)
                    delta["role"] = "assistant"
                if d.text:
                    delta["content"] = d.text
                choice = {
                    "index": d.index,
                    "delta": delta,
                    "finish_reason": d.finish_reason if d.finished else None,
                }
                if d.logprobs is not None:
                    choice["logprobs"] = self._chat_logprobs(
                        d.token_ids, d.logprobs, d.top_logprobs
                    )
            else:
                choice = {
                    "index": d.index,
                    "text": d.text,
                    "finish_reason": d.finish_reason if d.finished else None,
                }
                if d.logprobs is not None:
                    at = offsets.get(d.index, 0)
                    lps = self._completion_logprobs(d.token_ids, d.logprobs, d.top_logprobs, at)
                    offsets[d.index] = at + sum(len(t) for t in lps["tokens"])
                    choice["logprobs"] = lps
            # A token without new text still carries its logprobs.
            with_logprobs = d.logprobs is not None and bool(d.token_ids)
            if d.text or d.finished or with_logprobs or (chat and "role" in choice["delta"]):
                yield _sse(
                    {
                        "id": rid,
                        "object": obj,
                        "created": created,
                        "model": self.model_name,
                        "choices": [choice],
                    }
                )
            if d.output is not None:
                output = d.output
        if include_usage and output is not None:
            yield _sse(
                {
                    "id": rid,
                    "object": obj,
                    "created": created,
                    "model": self.model_name,
                    "choices": [],
                    "usage": _usage(output),
                }
            )
        yield _sse("[DONE]")

    def metrics(self) -> dict:
        return self.engine.stats()


def create_app(llm: LLM, model_name: str | None = None):
    """The FastAPI application serving `llm`."""
    try:
        from fastapi import FastAPI, Request
        from fastapi.responses import JSONResponse, StreamingResponse
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError(
            "[server] needs FastAPI and uvicorn: pip install 'longbow-quarrel[server]'"
        ) from exc

    server = OpenAIServer(llm, model_name)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        await server.engine.shutdown()

    app = FastAPI(title="longbow", version="0.1.0", lifespan=lifespan)
    app.state.server = server

    def error(
        status: int, message: str, param: str | None = None, kind: str = "invalid_request_error"
    ):
        return JSONResponse(
            status_code=status,
            content={"error": {"message": message, "type": kind, "param": param, "code": None}},
        )

    async def body_of(request: Request) -> dict:
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise RequestError(f"request body is not valid JSON: {exc}") from exc
        if not isinstance(body, dict):
            raise RequestError("request body must be a JSON object")
        return body

    async def handle(request: Request, chat: bool):
        try:
            body = await body_of(request)
            if body.get("stream"):
                events = await server.stream(body, chat)
                return StreamingResponse(events, media_type="text/event-stream")
            return await (server.chat(body) if chat else server.completion(body))
        except RequestError as exc:
            return error(400, str(exc), exc.param)
        except ValueError as exc:
            return error(400, str(exc))
        except RuntimeError as exc:
            return error(500, str(exc), kind="server_error")

    @app.post("/v1/completions")
    async def completions(request: Request):
        return await handle(request, chat=False)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        return await handle(request, chat=True)

    @app.get("/v1/models")
    async def models():
        return server.models()

    @app.get("/health")
    async def health():
        return {"status": "ok"}

    @app.get("/metrics")
    async def metrics():
        return server.metrics()

    return app


def serve(
    llm: LLM, host: str = "127.0.0.1", port: int = 8000, model_name: str | None = None
) -> None:
    """Run the server until interrupted."""
    try:
        import uvicorn
    except ImportError as exc:  # pragma: no cover
        raise RuntimeError(
            "[server] needs FastAPI and uvicorn: pip install 'longbow-quarrel[server]'"
        ) from exc
    uvicorn.run(create_app(llm, model_name), host=host, port=port, log_level="info")
