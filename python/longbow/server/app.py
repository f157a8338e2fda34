"""The FastAPI application and uvicorn runner around OpenAIServer. (No `from __future__ import
annotations` here: FastAPI reads the route functions' annotations at run time.)"""

import asyncio
import contextlib
import json

from ..llm import LLM
from .errors import APIError, bad_request, from_validation_error
from .handlers import OpenAIServer
from .protocol import ChatCompletionRequest, CompletionRequest
from .settings import ServerSettings

_PARSE_INLINE_BYTES = 64 << 10  # bodies parsed on the event loop (microseconds)
_MISSING_EXTRA = "[server] needs FastAPI and uvicorn: pip install 'longbow-quarrel[server]'"


class BodyLimit:
    """ASGI middleware: a request body over `limit` bytes gets a 413 as soon as its
    Content-Length (or, when chunked, the bytes received so far) says so; it is never kept."""

    def __init__(self, app, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                await self._reject(send)
                return await self._discard(receive)
        received = 0
        too_big = False

        async def limited_receive():
            nonlocal received, too_big
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    too_big = True
                    raise _BodyTooLarge()
            return message

        try:
            await self.app(scope, limited_receive, send)
        except _BodyTooLarge:
            await self._reject(send)
            await self._discard(receive)

    async def _discard(self, receive) -> None:
        """Read the rest of the body without keeping it, so the client (still sending) gets the
        413 rather than a reset connection; bounded in bytes and time."""
        total = 0

        async def drain():
            nonlocal total
            while total < _DISCARD_BYTES:
                message = await receive()
                if message["type"] != "http.request" or not message.get("more_body"):
                    return
                total += len(message.get("body", b""))

        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(drain(), timeout=_DISCARD_SECONDS)

    async def _reject(self, send) -> None:
        body = json.dumps(
            APIError(
                413, f"request body is larger than {self.limit} bytes (--max-request-bytes)"
            ).body()
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class _BodyTooLarge(Exception):
    pass


# A rejected body is read (and dropped) up to this much, for this long, before the connection
# closes.
_DISCARD_BYTES = 1 << 30
_DISCARD_SECONDS = 30.0


def _schema(model) -> dict:
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": model.model_json_schema(ref_template="#/components/schemas/{model}")
                }
            },
        }
    }


def create_app(llm: LLM, model_name: str | None = None, settings: ServerSettings | None = None):
    """The FastAPI application serving `llm`."""
    try:
        from fastapi import FastAPI, Request
        from fastapi.exceptions import RequestValidationError
        from fastapi.responses import JSONResponse, Response, StreamingResponse
        from pydantic import ValidationError
        from starlette.background import BackgroundTask
        from starlette.exceptions import HTTPException
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError(_MISSING_EXTRA) from exc

    settings = settings or ServerSettings()
    if model_name is not None:
        settings.model_name = model_name
    server = OpenAIServer(llm, settings)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        await server.engine.shutdown()

    app = FastAPI(title="longbow", version="0.1.0", lifespan=lifespan)
    app.state.server = server
    app.add_middleware(BodyLimit, limit=settings.max_request_bytes)

    def error_response(exc: APIError):
        return JSONResponse(status_code=exc.status, content=exc.body(), headers=exc.headers)

    @app.exception_handler(APIError)
    async def on_api_error(request: Request, exc: APIError):
        return error_response(exc)

    @app.exception_handler(HTTPException)
    async def on_http_error(request: Request, exc: HTTPException):
        kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        return error_response(APIError(exc.status_code, str(exc.detail), kind=kind))

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(request: Request, exc: RequestValidationError):
        return error_response(bad_request(str(exc.errors()[0].get("msg", exc))))

    @app.exception_handler(Exception)
    async def on_crash(request: Request, exc: Exception):
        return error_response(APIError(500, f"internal error: {exc}", kind="server_error"))

    async def parse(request: Request, model):
        raw = await request.body()
        try:  # pydantic's parser is bounded in depth; big bodies are parsed off the loop
            if len(raw) <= _PARSE_INLINE_BYTES:
                return model.model_validate_json(raw)
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(None, model.model_validate_json, raw)
        except ValidationError as exc:
            raise from_validation_error(exc) from None

    async def handle(request: Request, model):
        server.check_capacity(1)  # a full server answers 429 before reading the body
        req = await parse(request, model)
        if req.stream:
            events, abort = await server.stream(req)
            return StreamingResponse(
                events, media_type="text/event-stream", background=BackgroundTask(abort)
            )
        if model is ChatCompletionRequest:
            return await server.chat(req, request.is_disconnected)
        return await server.completion(req, request.is_disconnected)

    async def counted(request: Request, model, endpoint: str):
        status = 200
        try:
            return await handle(request, model)
        except APIError as exc:
            status = exc.status
            raise
        except Exception:
            status = 500
            raise
        finally:
            server.metrics.requests.labels(endpoint, str(status)).inc()

    @app.post("/v1/completions", openapi_extra=_schema(CompletionRequest))
    async def completions(request: Request):
        return await counted(request, CompletionRequest, "completions")

    @app.post("/v1/chat/completions", openapi_extra=_schema(ChatCompletionRequest))
    async def chat_completions(request: Request):
        return await counted(request, ChatCompletionRequest, "chat")

    @app.get("/v1/models")
    async def models():
        return server.models()

    @app.get("/v1/models/{model_id:path}")
    async def model(model_id: str):
        return server.model(model_id)

    @app.get("/health")
    async def health():
        return {"status": "ok"}

    @app.get("/stats")
    async def stats():
        return server.stats()

    @app.get("/metrics")
    async def metrics():
        from .metrics import CONTENT_TYPE

        return Response(server.metrics.render(), media_type=CONTENT_TYPE)

    _add_schema_components(app)
    return app


def _add_schema_components(app) -> None:
    """The request models' nested definitions, referenced by the paths' schemas."""
    base = app.openapi

    def openapi():
        if app.openapi_schema is None:
            spec = base()
            schemas = spec.setdefault("components", {}).setdefault("schemas", {})
            for model in (CompletionRequest, ChatCompletionRequest):
                full = model.model_json_schema(ref_template="#/components/schemas/{model}")
                schemas.update(full.get("$defs", {}))
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = openapi


def serve(
    llm: LLM,
    host: str = "127.0.0.1",
    port: int = 8000,
    model_name: str | None = None,
    settings: ServerSettings | None = None,
) -> None:
    """Run the server until interrupted; SIGTERM stops accepting connections and lets running
    requests finish for settings.shutdown_timeout seconds before aborting them."""
    try:
        import uvicorn
    except ImportError as exc:  # pragma: no cover
        raise RuntimeError(_MISSING_EXTRA) from exc
    settings = settings or ServerSettings()
    app = create_app(llm, model_name, settings)
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="info",
        timeout_graceful_shutdown=settings.shutdown_timeout,
    )
