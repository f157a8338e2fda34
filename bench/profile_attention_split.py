"""Profile of the CPU split attention baseline per phase (scores, softmax, values).

For decode (8 sequences x 1 token) and prefill (one sequence), context 128 ... 8192,
SmolLM2 shapes (9 heads, 3 kv heads, head dim 64, f16 cache): seconds per phase (summed over
threads, from a timed copy of the split loop: attention_split_profile.cpp), each phase's share,
bytes moved per phase and the effective bandwidth. The real split op's wall time is printed
beside the profiled copy's so the timer overhead is visible. JSON lines go to
bench/results/attention_split_profile.jsonl.

    PYTHONPATH=build/py:python python3 bench/profile_attention_split.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_attention import D, H, HKV, case  # noqa: E402

from longbow._core import ops  # noqa: E402


def bytes_moved(kind, n):
    """Bytes read/written per phase by the split algorithm (f16 cache, f32 scores)."""
    if kind == "decode":
        rows = [(8, n)]  # (query tokens, keys each)
    else:
        rows = [(1, k) for k in range(1, n + 1)]
    keys = sum(t * k for t, k in rows) * H  # (token, head, key) triples
    return {
        "scores": keys
        * (D * 2 + 4),  # read a K row (f16), write a score; K is re-read per query head
        "softmax": keys * 8,  # read + write each score
        "values": keys * (D * 2 + 4),  # read a V row (f16) and a weight
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--out", default=str(Path(__file__).parent / "results" / "attention_split_profile.jsonl")
    )
    args = ap.parse_args()
    rows = []
    for kind, sizes in [("decode", [128, 512, 2048, 8192]), ("prefill", [128, 512, 2048, 4096])]:
        for n in sizes:
            q, batch = case(kind, n)
            prof = [ops.attention_split_phases(q, *batch, D**-0.5) for _ in range(args.repeats)]
            real = ops.attention_timed("cpu", q, *batch, D**-0.5, ["split"], args.repeats)["split"]
            phase = {
                p: statistics.median(r[p] for r in prof) for p in ["scores", "softmax", "values"]
            }
            total = sum(phase.values())
            moved = bytes_moved(kind, n)
            row = {
                "bench": "attention_split_profile",
                "kind": kind,
                "context": n,
                "wall_ms_profiled": round(statistics.median(r["wall"] for r in prof) * 1e3, 3),
                "wall_ms_split_op": round(statistics.median(real) * 1e3, 3),
            }
            for p in phase:
                row[f"{p}_ms"] = round(phase[p] * 1e3, 3)
                row[f"{p}_share"] = round(phase[p] / total, 3)
                row[f"{p}_bytes"] = moved[p]
                row[f"{p}_gbps"] = round(moved[p] / max(phase[p], 1e-12) / 1e9, 2)
            rows.append(row)
            print(json.dumps(row), file=sys.stderr)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "a") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    print("| kind | context | split op ms | scores (share, GB/s) | softmax | values |")
    print("|---|---:|---:|---|---|---|")
    for r in rows:
        cells = [
            f"{r[p + '_ms']:.2f} ms ({r[p + '_share']:.0%}, {r[p + '_gbps']} GB/s)"
            for p in ["scores", "softmax", "values"]
        ]
        print(
            f"| {r['kind']} | {r['context']} | {r['wall_ms_split_op']:.2f} | "
            + " | ".join(cells)
            + " |"
        )


if __name__ == "__main__":
    main()
