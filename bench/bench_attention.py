"""CPU attention bench: split baseline vs fused decode and vs flash prefill, in one run.

Decode: a batch of 8 sequences, one query token each, context 512/2048/8192.
Prefill: one sequence of 512/2048/8192 prompt tokens.
SmolLM2-135M shapes: 9 query heads, 3 kv heads, head dim 64, f16 cache, block size 16.
Variants alternate inside each repeat (same inputs, same process); we report medians and
the ratio split / variant (of medians, and of minima: the
machine may be shared, the load average is recorded). Writes JSON lines to bench/results/attention.jsonl and prints a
markdown table.

    PYTHONPATH=build/py:python python3 bench/bench_attention.py [--repeats 7] [--quick]
        [--sliding-window W] [--logit-softcap C]

With --sliding-window, every variant (split included) reads only the last W keys of each query:
the times should follow min(context, W), not the context.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from test_attention import make_batch  # noqa: E402

from longbow._core import ops  # noqa: E402

H, HKV, D, BS = 9, 3, 64, 16


def case(kind, n, seed=0):
    r = np.random.default_rng(seed)
    if kind == "decode":
        batch = make_batch(r, [n] * 8, [1] * 8, HKV, D, BS, np.float16)
    else:
        batch = make_batch(r, [n], [n], HKV, D, BS, np.float16)
    q = r.standard_normal((int(batch[3][-1]), H, D)).astype(np.float32)
    return q, batch


def repeats_for(kind, n, base):
    if kind == "prefill" and n >= 8192:
        return max(3, base // 2)
    return base


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--quick", action="store_true", help="contexts 512 and 2048 only")
    ap.add_argument("--sliding-window", type=int, default=0, help="attention window W (0 = off)")
    ap.add_argument("--logit-softcap", type=float, default=0.0, help="logit soft-cap (0 = off)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "attention.jsonl"))
    args = ap.parse_args()
    opts = {"sliding_window": args.sliding_window, "logit_softcap": args.logit_softcap}
    sizes = [512, 2048] if args.quick else [512, 2048, 8192]
    stage = os.environ.get("LONGBOW_ATTN_DECODE_STAGE", "2")
    rows = []
    for kind, variant in [("decode", "fused_decode"), ("prefill", "flash_prefill")]:
        for n in sizes:
            q, batch = case(kind, n)
            reps = repeats_for(kind, n, args.repeats)
            ops.attention_timed("cpu", q, *batch, D**-0.5, ["split", variant], 1, **opts)  # warm-up
            t = ops.attention_timed("cpu", q, *batch, D**-0.5, ["split", variant], reps, **opts)
            split_ms, var_ms = (
                statistics.median(t["split"]) * 1e3,
                statistics.median(t[variant]) * 1e3,
            )
            row = {
                "bench": "attention",
                "kind": kind,
                "context": n,
                "variant": variant,
                "decode_stage": int(stage) if kind == "decode" else None,
                "batch_seqs": 8 if kind == "decode" else 1,
                "heads": H,
                "kv_heads": HKV,
                "head_dim": D,
                "cache": "f16",
                "sliding_window": args.sliding_window,
                "logit_softcap": args.logit_softcap,
                "repeats": reps,
                "split_ms": round(split_ms, 3),
                "variant_ms": round(var_ms, 3),
                "speedup": round(split_ms / var_ms, 3),
                "split_min_ms": round(min(t["split"]) * 1e3, 3),
                "variant_min_ms": round(min(t[variant]) * 1e3, 3),
                "speedup_min": round(min(t["split"]) / min(t[variant]), 3),
                "loadavg": round(os.getloadavg()[0], 2),
                "cpu": platform.processor() or platform.machine(),
                "threads": os.cpu_count(),
                "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
            }
            rows.append(row)
            print(json.dumps(row), file=sys.stderr)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "a") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    print(
        "| kind | context | split ms | variant | variant ms | speedup (median) | speedup (min) | load |"
    )
    print("|---|---:|---:|---|---:|---:|---:|---:|")
    for r in rows:
        name = r["variant"] + (f" (stage {r['decode_stage']})" if r["kind"] == "decode" else "")
        print(
            f"| {r['kind']} | {r['context']} | {r['split_ms']:.2f} | {name} | {r['variant_ms']:.2f} | "
            f"{r['speedup']:.2f}x | {r['speedup_min']:.2f}x | {r['loadavg']} |"
        )


if __name__ == "__main__":
    main()
