"""Where a 512-token prefill of SmolLM2-135M spends its time on the CPU backend, per op family.

Runs bench_prefill_ops (bench/cpp/bench_prefill_ops.cpp, built into build/tests/cpp/; each op
alone with the real shapes: hidden 576, 9 heads, 3 kv heads, head dim 64, intermediate 1536, f16
paged KV cache) and multiplies by the op's count per forward (30 layers: rms_norm x 60, rope / kv_write / attention / silu_mul x 30, embed x 1, the
seven Q8_0 matmuls x 30). With --before BUILD_DIR a second build's program runs alternately in the
same process loop (same machine load) and the table shows both and the ratio. With --model the
end-to-end prefill time (time to first token of a 512-token prompt) is measured too, for the
main build only (through the Python package on PYTHONPATH).

    PYTHONPATH=build/py:python python3 bench/profile_prefill.py --build build [--before OLD_BUILD]
        [--threads 2] [--repeats 3] [--model PATH.gguf] [--out bench/results/profile_prefill.jsonl]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import time
from pathlib import Path

LAYERS = 30
# op -> (count per forward, label); matmul names are (N x K) of one layer's weights.
COUNTS = {
    "embed_q8_0": (1, "embed"),
    "rms_norm": (2 * LAYERS, "rms_norm"),
    "rope": (LAYERS, "rope"),
    "kv_write_f16": (LAYERS, "kv_write"),
    "attention": (LAYERS, "attention"),
    "silu_mul": (LAYERS, "silu_mul"),
    "matmul_q8_0/576x576": (2 * LAYERS, "matmul"),  # q, o
    "matmul_q8_0/192x576": (2 * LAYERS, "matmul"),  # k, v
    "matmul_q8_0/1536x576": (2 * LAYERS, "matmul"),  # gate, up
    "matmul_q8_0/576x1536": (LAYERS, "matmul"),  # down
}


def program(build: str) -> Path:
    hits = [
        p for p in Path(build).rglob("bench_prefill_ops") if p.is_file() and os.access(p, os.X_OK)
    ]
    if not hits:
        raise SystemExit(
            f"[profile_prefill] no bench_prefill_ops under {build}: build it with "
            f"`ninja -C {build} bench_prefill_ops`"
        )
    return max(hits, key=lambda p: p.stat().st_mtime)


def run_ops(exe: Path, threads: int, min_ms: int) -> dict[str, float]:
    """Seconds per call of each op."""
    env = {**os.environ, "LONGBOW_BENCH_THREADS": str(threads)}
    out = subprocess.run(
        [str(exe), "--filter=prefill512/", f"--min-ms={min_ms}"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    res = {}
    for line in out.splitlines():
        if line.startswith("{"):
            row = json.loads(line)
            name = row["name"].split("/", 1)[1]
            res[name] = row["ns_per_iter"] * 1e-9
    return res


def per_forward(sec: dict[str, float]) -> dict[str, float]:
    fam: dict[str, float] = {}
    for name, s in sec.items():
        count, label = COUNTS[name]
        fam[label] = fam.get(label, 0.0) + count * s
    return fam


def e2e_prefill(model: str, threads: int, reps: int) -> float:
    from longbow import LLM, SamplingParams
    from longbow.benchmarks.generate import prompt_ids

    llm = LLM(
        model, backend="cpu", num_threads=threads, max_num_batched_tokens=1024, max_model_len=2048
    )
    params = SamplingParams(max_tokens=1, temperature=0.0, ignore_eos=True)
    llm.generate([prompt_ids(8, llm.config.vocab_size, seed=999)], params)  # warm-up
    ttft = [
        llm.generate([prompt_ids(512, llm.config.vocab_size, seed=r)], params)[0].metrics[
            "time_to_first_token_s"
        ]
        for r in range(reps)
    ]
    return statistics.median(ttft)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "--build", default="build", help="build folder holding tests/cpp/bench_prefill_ops"
    )
    ap.add_argument("--before", help="a second build folder to compare against, run alternately")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--min-ms", type=int, default=300)
    ap.add_argument("--model", help="GGUF path: also time the real end-to-end prefill")
    ap.add_argument(
        "--out", default=str(Path(__file__).parent / "results" / "profile_prefill.jsonl")
    )
    args = ap.parse_args()
    builds = {"after": program(args.build)}
    if args.before:
        builds["before"] = program(args.before)
    samples: dict[str, list[dict[str, float]]] = {k: [] for k in builds}
    for _ in range(args.repeats):
        for k, exe in builds.items():  # alternate: both see the same machine load
            samples[k].append(per_forward(run_ops(exe, args.threads, args.min_ms)))
    fams = list(samples["after"][0])
    med = {k: {f: statistics.median(s[f] for s in v) for f in fams} for k, v in samples.items()}
    total = {k: sum(m.values()) for k, m in med.items()}
    hdr = "| op family | " + " | ".join(f"{k} ms/forward | {k} share" for k in builds)
    print(hdr + (" | before/after |" if "before" in builds else " |"))
    print("|---" * (1 + 2 * len(builds) + ("before" in builds)) + "|")
    for f in fams + ["total"]:
        vals = {k: (total[k] if f == "total" else med[k][f]) for k in builds}
        cells = " | ".join(f"{1e3 * vals[k]:.2f} | {100 * vals[k] / total[k]:.1f}%" for k in builds)
        ratio = f" | {vals['before'] / vals['after']:.2f}x |" if "before" in builds else " |"
        print(f"| {f} | {cells}{ratio}")
    row = {
        "threads": args.threads,
        "per_forward_s": med,
        "total_s": total,
        "machine": platform.machine(),
        "load": os.getloadavg()[0],
        "time": time.time(),
    }
    if args.model:
        row["e2e_prefill_s"] = e2e_prefill(args.model, args.threads, max(3, args.repeats))
        print(
            f"end-to-end 512-token prefill ({args.build} via PYTHONPATH): {row['e2e_prefill_s']:.4f} s = "
            f"{512 / row['e2e_prefill_s']:.0f} tok/s"
        )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "a") as fh:
        fh.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
