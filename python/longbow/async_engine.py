"""An asyncio front for the engine: one background thread steps the engine while any number of
coroutines await their own requests' outputs (what the OpenAI server uses).

Only the background thread touches the C++ engine: requests and aborts are queued to it and
applied between steps; outputs go back to each request's asyncio.Queue through
`loop.call_soon_threadsafe`. `Engine.step` releases the GIL, so the event loop keeps running
while a step computes.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import threading
from collections.abc import AsyncIterator, Sequence

from .llm import LLM
from .outputs import RequestOutput, RequestState, StreamDelta
from .sampling import SamplingParams

_ids = itertools.count()


class _Request:
    def __init__(self, state: RequestState, loop: asyncio.AbstractEventLoop) -> None:
        self.state = state
        self.loop = loop
        self.queue: asyncio.Queue = asyncio.Queue()

    def put(self, item) -> None:
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, item)
        except RuntimeError:  # the caller's event loop is closed: nobody is listening
            pass


class RequestStream:
    """One accepted request (AsyncEngine.add): iterate it for StreamDelta items, or await
    result() for the RequestOutput. Leaving the iteration early, or abort(), aborts the request
    and frees its KV blocks at the next step."""

    def __init__(self, engine: AsyncEngine, req: _Request) -> None:
        self._engine = engine
        self._req = req
        self.finished = False

    @property
    def request_id(self) -> str:
        return self._req.state.request_id

    @property
    def prompt_token_ids(self) -> list[int]:
        return self._req.state.prompt_ids

    def __aiter__(self) -> AsyncIterator[StreamDelta]:
        return self._deltas()

    async def _deltas(self) -> AsyncIterator[StreamDelta]:
        try:
            while not self.finished:
                item = await self._req.queue.get()
                if isinstance(item, BaseException):
                    self.finished = True
                    raise item
                if item.output is not None:
                    self.finished = True
                yield item
        finally:
            self.abort()

    async def result(self) -> RequestOutput:
        """The whole output, when the request finishes."""
        output = None
        async for delta in self:
            if delta.output is not None:
                output = delta.output
        assert output is not None
        return output

    def abort(self) -> None:
        """Abort the request if it is still running (idempotent)."""
        if not self.finished:
            self.finished = True
            self._engine.abort(self.request_id)


class AsyncEngine:
    """Streams many concurrent requests through one LLM.

    llm = LLM(...)
    async with AsyncEngine(llm) as engine:
        async for delta in engine.generate("Hello", SamplingParams(max_tokens=8)):
            print(delta.text, end="")
    """

    def __init__(self, llm: LLM) -> None:
        self.llm = llm
        self._cv = threading.Condition()
        self._commands: list[tuple] = []
        self._requests: dict[str, _Request] = {}  # owned by the background thread
        self._stats: dict = llm.engine.stats()
        self._stopping = False
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="longbow-engine", daemon=True)
        self._thread.start()

    # ---- public API ------------------------------------------------------------------------

    async def add(
        self,
        prompt: str | Sequence[int],
        params: SamplingParams | None = None,
        request_id: str | None = None,
        *,
        add_special_tokens: bool = True,
    ) -> RequestStream:
        """Queue one request and wait until the engine has accepted it: a bad request (prompt
        longer than the context, a token id out of range, a duplicate id) raises ValueError
        here, before any output. The prompt is tokenized on a worker thread, never on the event
        loop. Iterate the returned RequestStream for the outputs."""
        params = params or SamplingParams()
        if not isinstance(params, SamplingParams):
            raise ValueError(f"[AsyncEngine] expected SamplingParams, got {type(params).__name__}")
        loop = asyncio.get_running_loop()
        rid = request_id if request_id is not None else f"async-{next(_ids)}"

        def prepare() -> RequestState:  # tokenizing, compiling a grammar: on a worker thread
            text, ids = self.llm._encode(prompt, add_special_tokens)
            if not ids:
                raise ValueError(f"[AsyncEngine] prompt {prompt!r} encodes to no tokens")
            return self.llm._new_state(rid, text, ids, params)

        req = _Request(await loop.run_in_executor(None, prepare), loop)
        added: concurrent.futures.Future = concurrent.futures.Future()
        self._submit(("add", req, added))
        try:
            await asyncio.wrap_future(added)  # raises ValueError for a bad or duplicate request
        except asyncio.CancelledError:
            self._submit(("abort", rid, None))  # applied after the add: nothing is left running
            raise
        return RequestStream(self, req)

    async def generate(
        self,
        prompt: str | Sequence[int],
        params: SamplingParams | None = None,
        request_id: str | None = None,
        *,
        add_special_tokens: bool = True,
    ) -> AsyncIterator[StreamDelta]:
        """Async iterator of StreamDelta (text delta, new token ids, finished) for one request;
        the last delta of the request carries the whole RequestOutput in `.output`. Leaving the
        loop early aborts the request."""
        stream = await self.add(prompt, params, request_id, add_special_tokens=add_special_tokens)
        async for delta in stream:
            yield delta

    def abort(self, request_id: str) -> None:
        """Abort a request (its iterator ends with finish_reason "abort"); unknown ids are ignored."""
        self._submit(("abort", request_id, None))

    def stats(self) -> dict:
        """Engine counters after the latest step (see LLM.stats)."""
        with self._cv:
            return dict(self._stats)

    @property
    def num_unfinished(self) -> int:
        with self._cv:
            return len(self._requests) + sum(1 for c in self._commands if c[0] == "add")

    async def shutdown(self) -> None:
        """Abort whatever is running and stop the background thread."""
        with self._cv:
            self._stopping = True
            self._cv.notify()
        await asyncio.to_thread(self._thread.join)

    async def __aenter__(self) -> AsyncEngine:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.shutdown()

    # ---- background thread -----------------------------------------------------------------

    def _submit(self, command: tuple) -> None:
        with self._cv:
            if self._stopping or self._error is not None:
                err = self._error or RuntimeError("[AsyncEngine] engine is shut down")
                if command[0] == "add":
                    command[2].set_exception(err)
                return
            self._commands.append(command)
            self._cv.notify()

    def _apply(self, command: tuple) -> None:
        kind, payload, fut = command
        engine = self.llm.engine
        if kind == "add":
            state = payload.state
            if state.request_id in self._requests:
                fut.set_exception(
                    ValueError(f"[AsyncEngine] duplicate request id '{state.request_id}'")
                )
                return
            try:
                engine.add_request(state.request_id, state.prompt_ids, state.params.to_engine())
            except Exception as exc:  # noqa: BLE001 - handed to the caller
                fut.set_exception(exc)
                return
            try:
                state.push_masks(engine)
            except Exception as exc:  # noqa: BLE001 - handed to the caller
                engine.abort(state.request_id)
                fut.set_exception(exc)
                return
            self._requests[state.request_id] = payload
            fut.set_result(None)
        elif kind == "abort":
            engine.abort(payload)

    def _deliver(self, outs) -> None:
        engine = self.llm.engine
        constrained: dict[str, RequestState] = {}
        for rid, token, logprob, finished, reason, idx, top, spec in outs:
            req = self._requests.get(rid)
            if req is None or req.state.finished:
                continue
            sample = req.state.samples[idx]
            if sample.finished:
                continue
            try:
                delta, must_abort = req.state.on_token(
                    token, logprob, finished, reason, idx, top, spec
                )
            except Exception as exc:  # noqa: BLE001 - e.g. a grammar error: this request only
                self._fail(rid, exc)
                continue
            if must_abort:
                engine.abort(rid, idx)
            output = None
            if req.state.finished:
                output = req.state.output()
                del self._requests[rid]
            elif req.state.constrained:
                constrained[rid] = req.state
            new_ids = [token] if token >= 0 else []
            params = req.state.params
            lps = [logprob for _ in new_ids] if params.wants_logprobs else None
            tops = [dict(top) for _ in new_ids] if params.num_top_logprobs is not None else None
            req.put(
                StreamDelta(
                    rid,
                    idx,
                    delta,
                    new_ids,
                    sample.finished,
                    sample.finish_reason,
                    output,
                    lps,
                    tops,
                )
            )
        for rid, state in constrained.items():
            if rid in self._requests:
                try:
                    state.push_masks(engine)
                except Exception as exc:  # noqa: BLE001 - this request only
                    self._fail(rid, exc)

    def _fail(self, rid: str, exc: Exception) -> None:
        """End one request with an error (its iterator raises it); the others go on."""
        self.llm.engine.abort(rid)
        req = self._requests.pop(rid, None)
        if req is not None:
            req.put(exc)

    def _run(self) -> None:
        engine = self.llm.engine
        try:
            while True:
                with self._cv:
                    while not (self._commands or self._stopping or engine.has_unfinished()):
                        self._cv.wait()
                    commands, self._commands = self._commands, []
                    stopping = self._stopping
                for c in commands:
                    self._apply(c)
                if stopping:
                    for rid in list(self._requests):
                        engine.abort(rid)
                    while engine.has_unfinished():
                        self._deliver(engine.step())
                    break
                if engine.has_unfinished():
                    outs = engine.step()
                    stats = engine.stats()  # before delivering, so a finished caller sees it
                    with self._cv:
                        self._stats = stats
                    self._deliver(outs)
        except BaseException as exc:  # noqa: BLE001 - every waiting caller must hear of it
            with self._cv:
                self._error = exc
                pending, self._commands = self._commands, []
            for c in pending:
                if c[0] == "add":
                    c[2].set_exception(exc)
            for req in self._requests.values():
                req.put(exc)
            self._requests.clear()
        with self._cv:
            self._stats = engine.stats()
