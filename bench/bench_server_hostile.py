"""The server under hostile load, timed (issue 16's timing defects re-run against `longbow serve`
on the default model):

1. a big body: a 15 MB chat prompt (under the 16 MB body limit, far over the context) and a 50 MB
   one (over it): status, time to the answer, /health latency meanwhile, server RSS before/after;
2. clients that leave: 8 non-streaming requests whose clients disconnect after 2 s: requests
   still running 1 s later;
3. a flood: 500 simultaneous requests against --max-queue: how many get 200 / 429, the latency of
   the accepted ones.

    python bench/bench_server_hostile.py [--model GGUF] [--threads 2] [--max-queue 64]

JSON lines to bench/results/server_hostile.jsonl and a summary on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def health_latencies(url: str, stop: asyncio.Event) -> list[float]:
    out = []
    async with httpx.AsyncClient(base_url=url, timeout=300) as http:
        while not stop.is_set():
            t = time.perf_counter()
            await http.get("/health")
            out.append(time.perf_counter() - t)
            await asyncio.sleep(0.05)
    return out


async def big_body(url: str, pid: int, megabytes: int) -> dict:
    content = "word " * (megabytes * (1 << 20) // 5)
    body = json.dumps({"messages": [{"role": "user", "content": content}], "max_tokens": 8})
    before = rss_mib(pid)
    stop = asyncio.Event()
    health = asyncio.create_task(health_latencies(url, stop))
    async with httpx.AsyncClient(base_url=url, timeout=600) as http:
        t = time.perf_counter()
        r = await http.post(
            "/v1/chat/completions", content=body, headers={"content-type": "application/json"}
        )
        elapsed = time.perf_counter() - t
    stop.set()
    lat = await health
    return {
        "case": f"body_{megabytes}MB",
        "status": r.status_code,
        "seconds": elapsed,
        "error": r.json().get("error", {}).get("message", "")[:100],
        "health_max_ms": 1e3 * max(lat),
        "rss_before_mib": before,
        "rss_after_mib": rss_mib(pid),
    }


async def clients_leave(url: str) -> dict:
    async with httpx.AsyncClient(base_url=url, timeout=600) as http:
        body = {
            "messages": [{"role": "user", "content": "Tell me a long story."}],
            "max_tokens": 2000,
            "ignore_eos": True,
        }
        tasks = [
            asyncio.create_task(http.post("/v1/chat/completions", json=body)) for _ in range(8)
        ]
        await asyncio.sleep(2.0)
        running_before = (await http.get("/stats")).json()["num_running"]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.sleep(1.0)
        stats = (await http.get("/stats")).json()
    return {
        "case": "8_clients_leave_after_2s",
        "running_before": running_before,
        "running_1s_after": stats["num_running"],
        "kv_blocks_used_1s_after": stats["num_blocks_used"],
    }


async def flood(url: str, n: int) -> dict:
    limits = httpx.Limits(max_connections=n)
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as http:
        body = {"messages": [{"role": "user", "content": "Hi!"}], "max_tokens": 32}

        async def one():
            t = time.perf_counter()
            r = await http.post("/v1/chat/completions", json=body)
            return r.status_code, time.perf_counter() - t, r.headers.get("retry-after")

        results = await asyncio.gather(*(one() for _ in range(n)), return_exceptions=True)
    ok = [r for r in results if not isinstance(r, BaseException) and r[0] == 200]
    busy = [r for r in results if not isinstance(r, BaseException) and r[0] == 429]
    failed = [r for r in results if isinstance(r, BaseException)]
    return {
        "case": f"flood_{n}",
        "ok": len(ok),
        "rejected_429": len(busy),
        "failed": len(failed),
        "ok_latency_p50_s": statistics.median(r[1] for r in ok) if ok else None,
        "ok_latency_max_s": max(r[1] for r in ok) if ok else None,
        "reject_latency_max_s": max(r[1] for r in busy) if busy else None,
        "retry_after": sorted({r[2] for r in busy}),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--model", default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-queue", type=int, default=64)
    ap.add_argument("--flood", type=int, default=500)
    ap.add_argument("--out", default="bench/results/server_hostile.jsonl")
    args = ap.parse_args(argv)
    port = free_port()
    cmd = [sys.executable, "-m", "longbow", "serve", "--port", str(port), "--backend", "cpu"]
    cmd += ["--threads", str(args.threads), "--max-queue", str(args.max_queue)]
    if args.model:
        cmd += ["--model", args.model]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                raise SystemExit("longbow serve did not start")
            time.sleep(0.3)
        rows = []
        for case in (
            lambda: big_body(url, proc.pid, 15),
            lambda: big_body(url, proc.pid, 50),
            lambda: clients_leave(url),
            lambda: flood(url, args.flood),
        ):
            row = asyncio.run(case())
            print(json.dumps(row))
            rows.append(row)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a") as f:
        for row in rows:
            f.write(json.dumps({"bench": "server_hostile", "threads": args.threads, **row}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
