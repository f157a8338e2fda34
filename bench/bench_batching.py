"""Continuous batching throughput on the default model (SmolLM2-135M Q4_1): aggregate generated
tokens/s with 1, 4, 16 and 64 concurrent requests, KV utilization (tokens stored / token slots
allocated, mean over steps), TTFT and inter-token latency percentiles. JSON lines to
bench/results/batching.jsonl and a markdown table on stdout; the ratio of aggregate throughput
at 16 concurrent requests to 1. Each level runs `--reps` times; medians are reported.

    python bench/bench_batching.py [--model PATH] [--levels 1 4 16 64] [--prompt 96]
                                   [--tokens 64] [--reps 3] [--threads 2] [--block-size 16]
                                   [--out FILE]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path


def _pct(xs: list[float], q: float) -> float | None:
    if not xs:
        return None
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q / 100 * (len(xs) - 1))))]


def run_level(llm, concurrency: int, prompt_len: int, max_tokens: int, seed: int) -> dict:
    """All `concurrency` requests arrive at once (distinct prompts, so no prefix-cache help)."""
    import numpy as np

    from longbow import SamplingParams

    rng = np.random.default_rng(seed)
    vocab = llm.config.vocab_size
    params = SamplingParams(max_tokens=max_tokens, ignore_eos=True).to_engine()
    e = llm.engine
    t0 = time.perf_counter()
    times: dict[str, list[float]] = {}
    for i in range(concurrency):
        ids = [int(t) for t in rng.integers(200, min(vocab, 40000), size=prompt_len)]
        e.add_request(f"b{seed}-{i}", ids, params)
    utils = []
    while e.has_unfinished():
        outs = e.step()
        now = time.perf_counter()
        s = e.stats()
        if s["num_running"] > 0:
            utils.append(s["kv_utilization"])
        for rid, tok, *_ in outs:
            if tok >= 0:
                times.setdefault(rid, []).append(now)
    wall = time.perf_counter() - t0
    ttft = [ts[0] - t0 for ts in times.values()]
    itl = [b - a for ts in times.values() for a, b in zip(ts, ts[1:])]
    generated = sum(len(ts) for ts in times.values())
    return {
        "concurrency": concurrency,
        "generated_tokens": generated,
        "wall_s": wall,
        "aggregate_tok_s": generated / wall,
        "kv_utilization_mean": statistics.fmean(utils) if utils else None,
        "ttft_p50_s": _pct(ttft, 50), "ttft_p90_s": _pct(ttft, 90), "ttft_p99_s": _pct(ttft, 99),
        "itl_p50_s": _pct(itl, 50), "itl_p90_s": _pct(itl, 90), "itl_p99_s": _pct(itl, 99),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=os.environ.get("LONGBOW_TEST_GGUF"))
    ap.add_argument("--levels", type=int, nargs="+", default=[1, 4, 16, 64])
    ap.add_argument("--prompt", type=int, default=96, help="prompt tokens per request")
    ap.add_argument("--tokens", type=int, default=64, help="generated tokens per request")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--block-size", type=int, default=16, help="KV block size in tokens")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "batching.jsonl"))
    args = ap.parse_args()

    import longbow
    from longbow.pull import pull

    model = args.model or str(pull(progress=False))
    llm = longbow.LLM(model, backend="cpu", num_threads=args.threads, max_model_len=1024,
                      max_num_seqs=max(64, max(args.levels)), enable_prefix_caching=False,
                      block_size=args.block_size)
    run_level(llm, 2, 16, 4, seed=999)  # warm-up
    rows = []
    for level in args.levels:
        reps = [run_level(llm, level, args.prompt, args.tokens, seed=100 * level + r) for r in range(args.reps)]
        row = {k: statistics.median(r[k] for r in reps) if isinstance(reps[0][k], float) else reps[0][k]
               for k in reps[0]}
        row.update(bench="batching", model=Path(model).name, threads=args.threads, block_size=args.block_size,
                   prompt_tokens=args.prompt,
                   max_tokens=args.tokens, reps=args.reps, time=time.strftime("%Y-%m-%dT%H:%M:%S"))
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

    print("| concurrent | agg tok/s | x vs 1 | KV util | TTFT p50/p90/p99 ms | ITL p50/p90/p99 ms |")
    print("|---:|---:|---:|---:|---|---|")
    for r in rows:
        print(f"| {r['concurrency']} | {r['aggregate_tok_s']:.1f} | "
              f"{(r['speedup_vs_1'] or 0):.2f} | {(r['kv_utilization_mean'] or 0):.3f} | "
              f"{ms(r['ttft_p50_s'])}/{ms(r['ttft_p90_s'])}/{ms(r['ttft_p99_s'])} | "
              f"{ms(r['itl_p50_s'])}/{ms(r['itl_p90_s'])}/{ms(r['itl_p99_s'])} |")
    by = {r["concurrency"]: r for r in rows}
    if 1 in by and 16 in by:
        print(f"\naggregate throughput 16 vs 1: {by[16]['aggregate_tok_s'] / by[1]['aggregate_tok_s']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
