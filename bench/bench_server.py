"""Load test of `longbow serve` beside llama.cpp's `llama-server` on the same GGUF, in one run.

Each server is started as a subprocess (one after the other, so they never share the cores), waited
for on /health, warmed up, and then, for each client count, that many concurrent clients (asyncio,
the `openai` SDK's AsyncOpenAI, no retries) each send --requests-per-client streaming chat
completions (temperature 0, --max-tokens, prompts from a small built-in list). Per request: TTFT,
the gaps between streamed content chunks (ITL), output tokens (the usage chunk asked for with
stream_options.include_usage, else the number of content chunks) and the error, if any (HTTP
status, e.g. "HTTP 429", or the exception type; counted, never fatal). Per server and client
count: output tokens/s over the wall time, TTFT and ITL p50/p95/p99, the longest gap, errors, and
the server's RSS (VmRSS of the process and its children) before and after. A markdown table on
stdout with the longbow / llama.cpp throughput ratio, JSON lines to bench/results/bench_server.jsonl
and the servers' logs beside it.

--long-prompt: while --long-prompt-clients streams run, one more client sends a prompt of about
--long-prompt-tokens tokens (paragraphs repeated); reported are the other streams' ITL p50/p99 and
longest gap while it is being served (and before it, as the baseline), and its own TTFT.

    PYTHONPATH=build-dev/py:python python bench/bench_server.py --quick
    python bench/bench_server.py [--model GGUF] [--llama-server /tmp/llama-build/bin/llama-server]
        [--clients 1,8,32,64] [--requests-per-client 4] [--max-tokens 128] [--threads 2]
        [--long-prompt] [--long-prompt-tokens 6000] [--long-prompt-clients 4]
        [--longbow-args="--kv-dtype q8_0"] [--llama-args="-no-kvu"] [--llama-ctx 16384]

The default model is longbow's default (`longbow.pull.pull()`, SmolLM2-135M-Instruct Q4_1).
llama-server gets `-np` = the most concurrent requests (client count, or --long-prompt-clients + 1
with --long-prompt) and a unified KV cache (`-kvu`) of --llama-ctx tokens, so every slot may use the
whole context (the long prompt needs it); longbow serve gets its own defaults (KV pool of 256 MiB,
~11k tokens of this model in f16).

The client runs on the same machine and needs CPU too. With --threads = all cores, ggml's worker
threads (which spin while waiting) lose time whenever the client or anything else preempts one of
them: on 2 cores llama-server at 8 clients fell from ~140 tok/s (4 clients) to ~50, with 3 s gaps.
Leave a core free (--threads 1 on 2 cores) for a comparison of the servers rather than of that.

How to build llama-server for this bench (nothing of it goes into this repository): take the
llama.cpp sources, e.g. those vendored in the llama-cpp-python sdist, and build the one target:

    pip download --no-deps --no-binary llama-cpp-python llama-cpp-python==0.3.36 -d /tmp/lcp
    tar xzf /tmp/lcp/llama_cpp_python-0.3.36.tar.gz -C /tmp/lcp
    cmake -S /tmp/lcp/llama_cpp_python-0.3.36/vendor/llama.cpp -B /tmp/llama-build -G Ninja \\
        -DCMAKE_BUILD_TYPE=Release -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_TESTS=OFF \\
        -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_UI=OFF \\
        -DLLAMA_USE_PREBUILT_UI=OFF -DBUILD_SHARED_LIBS=OFF -DGGML_NATIVE=OFF -DGGML_AVX2=ON \\
        -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF
        # plus -DGGML_AVX512=ON (and _VNNI, _BF16, _VBMI) when /proc/cpuinfo lists them
    cmake --build /tmp/llama-build --target llama-server -j2    # -> /tmp/llama-build/bin/llama-server

(LLAMA_BUILD_UI/LLAMA_USE_PREBUILT_UI off: the web UI would otherwise be built with npm or
downloaded; the server runs without it.)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

RESULTS = Path(__file__).parent / "results"

# Varied on purpose: lengths and kinds differ so the streams do not run in lockstep.
PROMPTS = [
    "Write a short poem about the sea at night.",
    "Explain in simple words how a refrigerator keeps food cold.",
    "List five ideas for a rainy weekend afternoon.",
    "What is the difference between a list and a tuple in Python?",
    "Tell me a story about a fox who learns to read.",
    "Summarize the water cycle for a ten year old.",
    "Give me three tips for writing clear emails at work.",
    "Why is the sky blue? Answer in a few sentences.",
    "Describe a good breakfast for a long hiking day.",
    "How do bees make honey?",
]

# The long prompt: these paragraphs repeated (and numbered, so they are not all one prefix).
PARAGRAPHS = [
    "The old lighthouse stood at the edge of the cliff, its white paint peeling in long strips. "
    "Every evening the keeper climbed the spiral stairs, trimmed the wick and polished the lens "
    "until the beam swept clean across the dark water.",
    "In the valley below, the village woke early. Bakers lit their ovens before dawn, fishermen "
    "checked their nets by lantern light, and the school bell rang at eight while children ran "
    "along the muddy lanes with their satchels bouncing.",
    "Trade came by the river in spring and by the mountain road in summer. Merchants brought "
    "salt, wool, iron tools and news from distant towns, and they left with cheese, dried fish "
    "and barrels of the cider the valley was known for.",
    "When the storms of autumn arrived, the harbour filled with boats seeking shelter. Sailors "
    "from many ports crowded the inn, telling stories of sea monsters, lost treasure and the "
    "strange lights that sometimes danced above the waves.",
]
# Measured with this model's tokenizer on PARAGRAPHS (SmolLM2: ~4.6 characters per token);
# the server's usage.prompt_tokens gives the exact count, which is what is reported.
CHARS_PER_TOKEN = 4.6


def long_prompt_text(num_tokens: int) -> str:
    """About num_tokens tokens of text, then a question about it."""
    parts, num_chars, idx = [], 0, 0
    while num_chars < num_tokens * CHARS_PER_TOKEN:
        para = f"{idx + 1}. {PARAGRAPHS[idx % len(PARAGRAPHS)]}"
        parts.append(para)
        num_chars += len(para) + 2
        idx += 1
    return "\n\n".join(parts) + "\n\nIn one sentence, what is this text about?"


def pct(xs: list[float], q: float) -> float | None:
    """Nearest-rank percentile q (0-100) of xs, None when empty."""
    if not xs:
        return None
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q / 100 * (len(xs) - 1)))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _children(pid: int) -> list[int]:
    kids = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            kids += [int(x) for x in (task / "children").read_text().split()]
        except OSError:
            pass
    return kids


def rss_bytes(pid: int) -> int | None:
    """VmRSS of pid and all its descendants (Linux /proc), None where /proc has no such pid."""
    total, todo, seen = 0, [pid], set()
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            if p == pid:
                return None
            continue
        todo += _children(p)
    return total


@dataclass
class Server:
    """A server subprocess with an OpenAI-compatible API on 127.0.0.1:port."""

    name: str
    cmd: list[str]
    port: int
    log_path: Path
    proc: subprocess.Popen | None = None
    model_id: str = ""
    log_file: object = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self, timeout_s: float) -> None:
        """Start the process and wait until /health answers 200 and /v1/models names a model."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_file = open(self.log_path, "w")
        print(f"[{self.name}] {shlex.join(self.cmd)}", file=sys.stderr)
        self.proc = subprocess.Popen(
            self.cmd, stdout=self.log_file, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"[{self.name}] exited with {self.proc.returncode} before /health answered; "
                    f"see {self.log_path}"
                )
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as r:
                    if r.status == 200:
                        with urllib.request.urlopen(f"{self.base_url}/models", timeout=5) as m:
                            self.model_id = json.load(m)["data"][0]["id"]
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.25)
        self.stop()
        raise RuntimeError(f"[{self.name}] /health did not answer in {timeout_s:.0f} s")

    def rss(self) -> int | None:
        return rss_bytes(self.proc.pid) if self.proc else None

    def stop(self) -> None:
        """SIGINT (graceful for uvicorn and llama-server), then SIGKILL after 15 s."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.log_file is not None:
            self.log_file.close()
            self.log_file = None


@dataclass
class Request:
    """One streamed request, times from time.perf_counter()."""

    start: float
    chunk_times: list[float] = field(default_factory=list)  # content-bearing chunks
    end: float = 0.0
    tokens: int = 0
    usage_tokens: int | None = None
    prompt_tokens: int | None = None
    error: str | None = None
    error_detail: str | None = None

    @property
    def ttft(self) -> float | None:
        return self.chunk_times[0] - self.start if self.chunk_times else None

    def gaps(self) -> list[tuple[float, float]]:
        t = self.chunk_times
        return list(zip(t, t[1:]))


def error_name(exc: BaseException) -> str:
    status = getattr(exc, "status_code", None)
    return f"HTTP {status}" if status is not None else type(exc).__name__


async def stream_one(
    client, model: str, prompt: str, max_tokens: int, first_token: asyncio.Event | None = None
) -> Request:
    """One streaming chat completion; errors are recorded, not raised. first_token is set at the
    first content chunk."""
    req = Request(start=time.perf_counter())
    try:
        stream = await client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": prompt}],
            max_tokens=max_tokens,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
        async for chunk in stream:
            now = time.perf_counter()
            if chunk.choices and chunk.choices[0].delta and chunk.choices[0].delta.content:
                req.chunk_times.append(now)
                if first_token is not None:
                    first_token.set()
            if getattr(chunk, "usage", None):
                req.usage_tokens = chunk.usage.completion_tokens
                req.prompt_tokens = chunk.usage.prompt_tokens
    except Exception as exc:  # noqa: BLE001 - every failure is a data point here
        req.error = error_name(exc)
        cause = exc.__cause__ or exc.__context__
        req.error_detail = f"{exc}" + (f" ({type(cause).__name__}: {cause})" if cause else "")
    req.end = time.perf_counter()
    if req.error is None and not req.chunk_times and req.usage_tokens is None:
        req.error = "EmptyStream"  # a 200 without a single content chunk or usage
    req.tokens = req.usage_tokens if req.usage_tokens is not None else len(req.chunk_times)
    return req


def make_client(server: Server, timeout_s: float):
    from openai import AsyncOpenAI

    return AsyncOpenAI(base_url=server.base_url, api_key="none", max_retries=0, timeout=timeout_s)


def count_errors(reqs: list[Request]) -> dict[str, int]:
    errors: dict[str, int] = {}
    for r in reqs:
        if r.error:
            errors[r.error] = errors.get(r.error, 0) + 1
    return errors


def error_examples(reqs: list[Request]) -> dict[str, str]:
    """The first message of each kind of error (with its cause), for the JSON line."""
    out: dict[str, str] = {}
    for r in reqs:
        if r.error and r.error not in out:
            out[r.error] = (r.error_detail or "")[:300]
    return out


def latency_stats(reqs: list[Request]) -> dict:
    ttfts = [r.ttft for r in reqs if r.ttft is not None]
    itls = [b - a for r in reqs for a, b in r.gaps()]
    row = {f"ttft_p{q}_s": pct(ttfts, q) for q in (50, 95, 99)}
    row.update({f"itl_p{q}_s": pct(itls, q) for q in (50, 95, 99)})
    row["max_gap_s"] = max(itls) if itls else None
    return row


async def run_load(server: Server, args, num_clients: int) -> dict:
    """num_clients concurrent clients, each sending its requests one after another."""
    client = make_client(server, args.timeout)

    async def one_client(client_idx: int) -> list[Request]:
        out = []
        for i in range(args.requests_per_client):
            prompt = PROMPTS[(client_idx * args.requests_per_client + i) % len(PROMPTS)]
            out.append(await stream_one(client, server.model_id, prompt, args.max_tokens))
        return out

    rss_before = server.rss()
    t0 = time.perf_counter()
    per_client = await asyncio.gather(*(one_client(c) for c in range(num_clients)))
    wall = time.perf_counter() - t0
    await client.close()
    reqs = [r for rs in per_client for r in rs]
    tokens = sum(r.tokens for r in reqs)
    row = {
        "scenario": "load",
        "clients": num_clients,
        "requests": len(reqs),
        "wall_s": wall,
        "output_tokens": tokens,
        "tok_s": tokens / wall if wall > 0 else None,
        "usage_reported": all(r.usage_tokens is not None for r in reqs if not r.error),
        **latency_stats([r for r in reqs if not r.error]),
        "errors": count_errors(reqs),
        "error_examples": error_examples(reqs),
        "rss_before_bytes": rss_before,
        "rss_after_bytes": server.rss(),
    }
    return row


async def run_long_prompt(server: Server, args) -> dict:
    """K streams run; one long prompt arrives while they do; their gaps during it are reported."""
    client = make_client(server, args.timeout)
    stop = asyncio.Event()
    started = [asyncio.Event() for _ in range(args.long_prompt_clients)]
    max_requests = 1000  # bound the loop whatever the servers do

    async def background(idx: int) -> list[Request]:
        out = []
        while not stop.is_set() and len(out) < max_requests:
            prompt = PROMPTS[(idx + len(out)) % len(PROMPTS)]
            req = await stream_one(client, server.model_id, prompt, args.max_tokens, started[idx])
            out.append(req)
            started[idx].set()  # also after a failed request, so a failing server cannot hang us
        return out

    rss_before = server.rss()
    tasks = [asyncio.create_task(background(i)) for i in range(args.long_prompt_clients)]
    await asyncio.wait_for(asyncio.gather(*(e.wait() for e in started)), args.timeout)
    await asyncio.sleep(args.long_prompt_baseline)  # baseline gaps before the long prompt
    text = long_prompt_text(args.long_prompt_tokens)
    long_req = await stream_one(client, server.model_id, text, args.long_prompt_max_tokens)
    stop.set()
    bg = [r for rs in await asyncio.gather(*tasks) for r in rs]
    await client.close()
    t0, t1 = long_req.start, long_req.end
    during = [b - a for r in bg for a, b in r.gaps() if b > t0 and a < t1]
    before = [b - a for r in bg for a, b in r.gaps() if b <= t0]
    bg_ttft_during = [r.ttft for r in bg if r.ttft is not None and t0 <= r.start < t1]
    return {
        "scenario": "long_prompt",
        "clients": args.long_prompt_clients,
        "long_prompt_tokens": long_req.prompt_tokens,
        "long_prompt_target_tokens": args.long_prompt_tokens,
        "long_ttft_s": long_req.ttft,
        "long_total_s": t1 - t0,
        "long_error": long_req.error,
        "itl_during_p50_s": pct(during, 50),
        "itl_during_p99_s": pct(during, 99),
        "max_gap_during_s": max(during) if during else None,
        "num_gaps_during": len(during),
        "itl_before_p50_s": pct(before, 50),
        "itl_before_p99_s": pct(before, 99),
        "max_gap_before_s": max(before) if before else None,
        "bg_ttft_max_during_s": max(bg_ttft_during) if bg_ttft_during else None,
        "bg_requests": len(bg),
        "errors": count_errors(bg + [long_req]),
        "error_examples": error_examples(bg + [long_req]),
        "rss_before_bytes": rss_before,
        "rss_after_bytes": server.rss(),
    }


async def run_server(server: Server, args, levels: list[int]) -> list[dict]:
    """Warm-up, every client count, then the long-prompt scenario if asked."""
    client = make_client(server, args.timeout)
    warm = await stream_one(client, server.model_id, PROMPTS[0], 8)
    await client.close()
    if warm.error:
        print(f"[{server.name}] warm-up request failed: {warm.error}", file=sys.stderr)
    rows = []
    for n in levels:
        row = await run_load(server, args, n)
        print(
            f"[{server.name}] {n} clients: {row['tok_s'] or 0:.1f} tok/s, errors {row['errors']}"
            + (f" {row['error_examples']}" if row["errors"] else ""),
            file=sys.stderr,
        )
        rows.append(row)
    if args.long_prompt:
        row = await run_long_prompt(server, args)
        print(
            f"[{server.name}] long prompt ({row['long_prompt_tokens']} tokens): TTFT "
            f"{row['long_ttft_s'] or 0:.2f} s, others' max gap {row['max_gap_during_s'] or 0:.3f} s",
            file=sys.stderr,
        )
        rows.append(row)
    return rows


def build_note() -> str:
    doc = __doc__ or ""
    start = doc.index("How to build llama-server")
    return doc[start:]


def bench_server(server: Server, args, levels: list[int]) -> list[dict]:
    server.start(args.start_timeout)
    try:
        rows = asyncio.run(run_server(server, args, levels))
    finally:
        server.stop()
    for row in rows:
        row.update(server=server.name, command=shlex.join(server.cmd), model_id=server.model_id)
    return rows


def ms(x: float | None) -> str:
    return "-" if x is None else f"{1000 * x:.0f}"


def mib(x: int | None) -> str:
    return "-" if x is None else f"{x / 2**20:.0f}"


def errors_str(errors: dict[str, int]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in sorted(errors.items())) or "0"


def print_tables(rows: list[dict]) -> None:
    load = [r for r in rows if r["scenario"] == "load"]
    if load:
        print_load_table(load)
    long = [r for r in rows if r["scenario"] == "long_prompt"]
    if long:
        print_long_prompt_table(long)


def print_load_table(load: list[dict]) -> None:
    print(
        "| server | clients | requests | tok/s | TTFT p50/p95/p99 ms | ITL p50/p95/p99 ms | "
        "max gap ms | errors | RSS before/after MiB |"
    )
    print("|---|---:|---:|---:|---|---|---:|---|---|")
    for r in load:
        print(
            f"| {r['server']} | {r['clients']} | {r['requests']} | {r['tok_s'] or 0:.1f} | "
            f"{ms(r['ttft_p50_s'])}/{ms(r['ttft_p95_s'])}/{ms(r['ttft_p99_s'])} | "
            f"{ms(r['itl_p50_s'])}/{ms(r['itl_p95_s'])}/{ms(r['itl_p99_s'])} | "
            f"{ms(r['max_gap_s'])} | {errors_str(r['errors'])} | "
            f"{mib(r['rss_before_bytes'])}/{mib(r['rss_after_bytes'])} |"
        )
    by = {(r["server"], r["clients"]): r for r in load}
    ratios = [
        (n, by[("longbow", n)]["tok_s"], by[("llama.cpp", n)]["tok_s"])
        for (s, n) in by
        if s == "longbow" and ("llama.cpp", n) in by
    ]
    if ratios:
        print("\n| clients | longbow tok/s | llama.cpp tok/s | longbow / llama.cpp |")
        print("|---:|---:|---:|---:|")
        for n, a, b in ratios:
            print(f"| {n} | {a or 0:.1f} | {b or 0:.1f} | {(a / b) if a and b else 0:.2f} |")


def print_long_prompt_table(long: list[dict]) -> None:
    print(
        "\n| server | streams | long prompt tokens | its TTFT s | others' ITL p50/p99 ms during "
        "(before) | max gap ms during (before) | errors |"
    )
    print("|---|---:|---:|---:|---|---|---|")
    for r in long:
        print(
            f"| {r['server']} | {r['clients']} | {r['long_prompt_tokens']} | "
            f"{r['long_ttft_s'] or 0:.2f} | {ms(r['itl_during_p50_s'])}/{ms(r['itl_during_p99_s'])}"
            f" ({ms(r['itl_before_p50_s'])}/{ms(r['itl_before_p99_s'])}) | "
            f"{ms(r['max_gap_during_s'])} ({ms(r['max_gap_before_s'])}) | "
            f"{errors_str(r['errors'])} |"
        )


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--model", default=os.environ.get("LONGBOW_TEST_GGUF"), help="GGUF file")
    ap.add_argument("--llama-server", default=None, help="llama-server binary (else longbow only)")
    ap.add_argument(
        "--clients",
        default="1,8,32,64",
        help='comma-separated client counts ("" with --long-prompt: that alone)',
    )
    ap.add_argument("--requests-per-client", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2, help="compute threads for both servers")
    ap.add_argument("--long-prompt", action="store_true", help="run the long-prompt scenario")
    ap.add_argument("--long-prompt-tokens", type=int, default=6000)
    ap.add_argument("--long-prompt-clients", type=int, default=4, help="streams running beside it")
    ap.add_argument("--long-prompt-max-tokens", type=int, default=16)
    ap.add_argument(
        "--long-prompt-baseline", type=float, default=1.0, help="seconds of streams before it"
    )
    ap.add_argument(
        "--longbow-args",
        default="",
        help='extra args for `longbow serve` (--longbow-args="-b cpu")',
    )
    ap.add_argument(
        "--llama-args", default="", help='extra args for llama-server (--llama-args="-fa on")'
    )
    ap.add_argument("--llama-ctx", type=int, default=16384, help="llama-server -c (unified KV)")
    ap.add_argument("--timeout", type=float, default=600.0, help="per request, seconds")
    ap.add_argument("--start-timeout", type=float, default=300.0, help="per server, seconds")
    ap.add_argument("--quick", action="store_true", help="sanity run: 1,4 clients, 2 req, 32 tok")
    ap.add_argument("--out", default=str(RESULTS / "bench_server.jsonl"))
    args = ap.parse_args()
    if args.quick:
        args.clients, args.requests_per_client, args.max_tokens = "1,4", 2, 32
    levels = [int(x) for x in args.clients.split(",") if x.strip()]
    if (not levels and not args.long_prompt) or (levels and min(levels) < 1):
        raise ValueError(
            f"[bench_server] --clients: expected positive counts (empty only with --long-prompt), "
            f"got {args.clients!r}"
        )

    model = args.model
    if not model:
        from longbow.pull import pull

        model = str(pull(progress=False))
    servers = [
        Server(
            "longbow",
            [
                sys.executable,
                "-m",
                "longbow",
                "serve",
                "--model",
                model,
                "--port",
                "{port}",
                "--threads",
                str(args.threads),
                *shlex.split(args.longbow_args),
            ],
            free_port(),
            RESULTS / "bench_server_longbow.log",
        )
    ]
    if args.llama_server and Path(args.llama_server).is_file():
        num_slots = max(levels + ([args.long_prompt_clients + 1] if args.long_prompt else []))
        servers.append(
            Server(
                "llama.cpp",
                [
                    args.llama_server,
                    "-m",
                    model,
                    "--host",
                    "127.0.0.1",
                    "--port",
                    "{port}",
                    "-np",
                    str(num_slots),
                    "-c",
                    str(args.llama_ctx),
                    "-kvu",
                    "-t",
                    str(args.threads),
                    *shlex.split(args.llama_args),
                ],
                free_port(),
                RESULTS / "bench_server_llama_cpp.log",
            )
        )
    else:
        what = f"{args.llama_server} is not a file" if args.llama_server else "no --llama-server"
        print(f"[bench_server] {what}: longbow only.\n\n{build_note()}", file=sys.stderr)
    for s in servers:
        s.cmd = [str(s.port) if a == "{port}" else a for a in s.cmd]

    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
    rows = []
    for s in servers:
        rows += bench_server(s, args, levels)
    llama_tok_s = {
        r["clients"]: r["tok_s"]
        for r in rows
        if r["server"] == "llama.cpp" and r["scenario"] == "load"
    }
    for r in rows:
        base = llama_tok_s.get(r["clients"]) if r["scenario"] == "load" else None
        r.update(
            bench="server",
            model=Path(model).name,
            threads=args.threads,
            requests_per_client=args.requests_per_client,
            max_tokens=args.max_tokens,
            time=stamp,
        )
        if r["server"] == "longbow" and base:
            r["tok_s_ratio_vs_llama_cpp"] = r["tok_s"] / base if r["tok_s"] else None
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "a") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    print(
        f"{Path(model).name}, {args.threads} threads, {args.requests_per_client} requests per "
        f"client, max_tokens {args.max_tokens}, temperature 0, streaming"
    )
    print_tables(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
