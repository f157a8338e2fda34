"""Continuous batching throughput on the default model (SmolLM2-135M Q4_1): aggregate generated
tokens/s at 1, 4, 16 and 64 concurrent requests, KV utilization (tokens stored / token slots
allocated, mean over steps), TTFT and inter-token latency percentiles. JSON lines to
bench/results/batching.jsonl and a markdown table on stdout; the ratio of aggregate throughput
at 16 concurrent requests to 1.

Each level serves a request set with at most `concurrency` requests in flight (a finished request
is replaced by the next waiting one, as a server with that many clients): max(--requests,
concurrency) requests, so levels up to --requests serve the very same requests and level 1 is the
single-request rate over them. With several waves per level the measure is close to steady state
(one closed batch of variable-length requests would end with a long tail of a few stragglers).
The KV pool is --kv-cache-gb (default 1 GiB, committed only as touched); preemptions are
reported. Request lengths (`--workload`):
  fixed          every request has --prompt tokens and generates --tokens (default 96 / 64)
  sharegpt-like  lognormal lengths with the means of the ShareGPT conversations used by vLLM's
                 paper (Kwon et al. 2023, fig. 11): prompt ~161, output ~338 tokens
  alpaca-like    the same for Alpaca instructions: prompt ~19, output ~58 tokens
Prompts are random token ids (distinct, so the prefix cache does not help). Each level runs
`--reps` times with a different request draw; medians are reported.

    python bench/bench_batching.py [--model PATH] [--workload fixed] [--levels 1 4 16 64]
                                   [--requests 64] [--prompt 96] [--tokens 64] [--reps 3]
                                   [--threads 2] [--block-size 0] [--kv-cache-gb 1]
                                   [--kv-dtype f16] [--out FILE]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import sys
import time
from pathlib import Path

# (prompt mean, output mean) of the lognormal workloads; sigma 0.8 gives the long right tail of
# real conversations while keeping lengths under max_model_len after clipping.
WORKLOADS = {"sharegpt-like": (161.0, 338.0), "alpaca-like": (19.0, 58.0)}
LOGNORMAL_SIGMA = 0.8
MAX_MODEL_LEN = 2048


def _pct(xs: list[float], q: float) -> float | None:
    if not xs:
        return None
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q / 100 * (len(xs) - 1)))]


def draw_requests(
    workload: str, n: int, prompt_len: int, max_tokens: int, seed: int
) -> list[tuple[list[int], int]]:
    """n requests as (prompt token ids, tokens to generate)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    if workload == "fixed":
        lens = [(prompt_len, max_tokens)] * n
    else:
        p_mean, o_mean = WORKLOADS[workload]

        def lognormal(mean):  # mean of exp(N(mu, s^2)) = exp(mu + s^2 / 2)
            mu = np.log(mean) - LOGNORMAL_SIGMA**2 / 2
            return rng.lognormal(mu, LOGNORMAL_SIGMA, size=n)

        prompts = np.clip(np.rint(lognormal(p_mean)), 4, 512).astype(int)
        outputs = np.clip(np.rint(lognormal(o_mean)), 4, MAX_MODEL_LEN - 512).astype(
            int
        )  # prompts <= 512
        lens = list(zip(prompts.tolist(), outputs.tolist()))
    return [(rng.integers(200, 40000, size=p).tolist(), o) for p, o in lens]


def run_level(llm, concurrency: int, requests: list[tuple[list[int], int]], tag: str) -> dict:
    """Serves `requests` with at most `concurrency` in flight; returns throughput and latencies."""
    from longbow import SamplingParams

    e = llm.engine
    pending = list(enumerate(requests))
    arrival: dict[str, float] = {}
    times: dict[str, list[float]] = {}
    utils = []
    in_flight = 0
    preempted0 = e.stats()["num_preemptions"]
    t0 = time.perf_counter()

    def admit():
        nonlocal in_flight
        while pending and in_flight < concurrency:
            i, (ids, max_tokens) = pending.pop(0)
            rid = f"{tag}-{i}"
            e.add_request(
                rid, ids, SamplingParams(max_tokens=max_tokens, ignore_eos=True).to_engine()
            )
            arrival[rid] = time.perf_counter()
            in_flight += 1

    admit()
    while e.has_unfinished():
        outs = e.step()
        now = time.perf_counter()
        s = e.stats()
        if s["num_running"] > 0:
            utils.append(s["kv_utilization"])
        for rid, tok, _logprob, finished, *_ in outs:
            if tok >= 0:
                times.setdefault(rid, []).append(now)
            if finished:
                in_flight -= 1
        admit()
    wall = time.perf_counter() - t0
    ttft = [ts[0] - arrival[rid] for rid, ts in times.items()]
    itl = [b - a for ts in times.values() for a, b in itertools.pairwise(ts)]
    generated = sum(len(ts) for ts in times.values())
    expected = sum(m for _, m in requests)
    if generated != expected:
        raise RuntimeError(
            f"level {concurrency}: generated {generated} tokens, expected {expected}"
        )
    return {
        "concurrency": concurrency,
        "requests": len(requests),
        "generated_tokens": generated,
        "wall_s": wall,
        "aggregate_tok_s": generated / wall,
        "kv_utilization_mean": statistics.fmean(utils) if utils else None,
        "preemptions": e.stats()["num_preemptions"] - preempted0,
        "ttft_p50_s": _pct(ttft, 50),
        "ttft_p90_s": _pct(ttft, 90),
        "ttft_p99_s": _pct(ttft, 99),
        "itl_p50_s": _pct(itl, 50),
        "itl_p90_s": _pct(itl, 90),
        "itl_p99_s": _pct(itl, 99),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=os.environ.get("LONGBOW_TEST_GGUF"))
    ap.add_argument("--workload", choices=["fixed", *WORKLOADS], default="fixed")
    ap.add_argument("--levels", type=int, nargs="+", default=[1, 4, 16, 64])
    ap.add_argument(
        "--requests", type=int, default=64, help="requests per level (at least the level)"
    )
    ap.add_argument(
        "--prompt", type=int, default=96, help="prompt tokens per request (fixed workload)"
    )
    ap.add_argument(
        "--tokens", type=int, default=64, help="generated tokens per request (fixed workload)"
    )
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--block-size", type=int, default=0, help="KV block size in tokens (0: the backend's)"
    )
    ap.add_argument("--kv-cache-gb", type=float, default=1.0, help="KV pool size in GiB")
    ap.add_argument(
        "--kv-dtype", default="f16", help="KV cache type (f16, f32, q8_0, q4_1, q4_0; cpu)"
    )
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "batching.jsonl"))
    args = ap.parse_args()

    from longbow.pull import pull

    import longbow

    model = args.model or str(pull(progress=False))
    llm = longbow.LLM(
        model,
        backend="cpu",
        num_threads=args.threads,
        max_model_len=MAX_MODEL_LEN,
        max_num_seqs=max(64, max(args.levels)),
        enable_prefix_caching=False,
        block_size=args.block_size,
        kv_cache_bytes=int(args.kv_cache_gb * 2**30),
        kv_dtype=args.kv_dtype,
    )
    run_level(llm, 2, draw_requests("fixed", 2, 16, 4, seed=999), "warmup")
    rows = []
    for level in args.levels:
        n = max(args.requests, level)
        # Rep r draws the same requests at every level of size n (levels up to --requests share them).
        reps = [
            run_level(
                llm,
                level,
                draw_requests(args.workload, n, args.prompt, args.tokens, seed=1000 * r + n),
                f"c{level}r{r}",
            )
            for r in range(args.reps)
        ]
        row = {
            k: statistics.median(r[k] for r in reps)
            if isinstance(reps[0][k], float)
            else reps[0][k]
            for k in reps[0]
        }
        row["preemptions"] = max(r["preemptions"] for r in reps)
        row.update(
            bench="batching",
            model=Path(model).name,
            threads=args.threads,
            kv_dtype=args.kv_dtype,
            block_size=llm.engine.block_size,
            kv_cache_gb=args.kv_cache_gb,
            workload=args.workload,
            prompt_tokens=args.prompt if args.workload == "fixed" else None,
            max_tokens=args.tokens if args.workload == "fixed" else None,
            reps=args.reps,
            time=time.strftime("%Y-%m-%dT%H:%M:%S"),
        )
        rows.append(row)
        print(f"concurrency {level}: {row['aggregate_tok_s']:.1f} tok/s", file=sys.stderr)
    base = rows[0]["aggregate_tok_s"] if rows and rows[0]["concurrency"] == 1 else None
    for row in rows:
        row["speedup_vs_1"] = row["aggregate_tok_s"] / base if base else None
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "a") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")

    def ms(x):
        return "-" if x is None else f"{1000 * x:.0f}"

    print(
        f"workload {args.workload}, block size {llm.engine.block_size}, {args.threads} threads, "
        f"median of {args.reps}"
    )
    print(
        "| concurrent | requests | agg tok/s | x vs 1 | KV util | preempted | TTFT p50/p90/p99 ms | "
        "ITL p50/p90/p99 ms |"
    )
    print("|---:|---:|---:|---:|---:|---:|---|---|")
    for r in rows:
        print(
            f"| {r['concurrency']} | {r['requests']} | {r['aggregate_tok_s']:.1f} | "
            f"{(r['speedup_vs_1'] or 0):.2f} | {(r['kv_utilization_mean'] or 0):.3f} | {r['preemptions']} | "
            f"{ms(r['ttft_p50_s'])}/{ms(r['ttft_p90_s'])}/{ms(r['ttft_p99_s'])} | "
            f"{ms(r['itl_p50_s'])}/{ms(r['itl_p90_s'])}/{ms(r['itl_p99_s'])} |"
        )
    by = {r["concurrency"]: r for r in rows}
    if 1 in by and 16 in by:
        print(
            f"\naggregate throughput 16 vs 1: {by[16]['aggregate_tok_s'] / by[1]['aggregate_tok_s']:.2f}x"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
