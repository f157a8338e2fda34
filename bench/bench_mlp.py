"""The MLP block: our kernels vs the vendor library, for M = 1, 8, 64, 512 tokens and F32 / F16 /
BF16 weights, in one run, plus what the chooser (mlp="auto") picks for each shape on this machine.
CPU: the vendor is a BLAS sgemm (OpenBLAS from scipy-openblas32, Accelerate on macOS). Metal
(--backend metal, on a Mac): the vendor is MPSGraph, against our Metal kernels.

    python bench/bench_mlp.py [--backend cpu|metal] [--shapes smollm2 1.5b]
        [--dtypes f32 f16 bf16] [--tokens 1 8 64 512] [--threads 2] [--reps 5] [--out FILE]

The first Mac's table: python bench/bench_mlp.py --backend metal --shapes smollm2 1.5b
Shapes: smollm2 = SmolLM2-135M (D 576, F 1536); 1.5b = a 1-2B model (D 2048, F 8192). Each cell
is the best of --reps calls after a warm-up, both paths on the same weights and activations (the
vendor's f32 weight copies are made in the warm-up). JSON lines to bench/results/mlp.jsonl and a
markdown table on stdout (µs, vendor / custom time ratio: < 1 means the vendor is faster).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

SHAPES = {"smollm2": (576, 1536), "1.5b": (2048, 8192)}


def weights(dtype: str, n: int, k: int, rng) -> np.ndarray:
    w = (rng.standard_normal((n, k)) / np.sqrt(k)).astype(np.float32)
    if dtype == "f32":
        return w
    if dtype == "f16":
        return w.astype(np.float16)
    return (w.view(np.uint32) >> 16).astype(np.uint16)  # bf16 bits (truncated)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--backend", default="cpu", choices=["cpu", "metal"])
    ap.add_argument("--shapes", nargs="+", default=["smollm2"], choices=sorted(SHAPES))
    ap.add_argument("--dtypes", nargs="+", default=["f32", "f16", "bf16"])
    ap.add_argument("--tokens", nargs="+", type=int, default=[1, 8, 64, 512])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "mlp.jsonl"))
    args = ap.parse_args(argv)

    from longbow import _core
    from longbow.blas import configure_blas

    configure_blas()
    if args.backend == "cpu":
        print(f"vendor BLAS: {_core.vendor_blas_status()}", file=sys.stderr)
    rng = np.random.default_rng(0)
    rows = []
    for shape in args.shapes:
        D, F = SHAPES[shape]
        for dtype in args.dtypes:
            wg, wu, wd = (
                weights(dtype, F, D, rng),
                weights(dtype, F, D, rng),
                weights(dtype, D, F, rng),
            )
            for M in args.tokens:
                x = rng.standard_normal((M, D)).astype(np.float32)
                t = {}
                outs = {}
                for path in ("custom", "vendor"):
                    out, best, _ = _core.ops.mlp(
                        x,
                        wg,
                        wu,
                        wd,
                        dtype,
                        F,
                        path=path,
                        num_threads=args.threads,
                        backend=args.backend,
                        reps=args.reps + 1,  # the first call is the warm-up
                    )
                    t[path], outs[path] = best * 1e6, out
                _, _, report = _core.ops.mlp(
                    x,
                    wg,
                    wu,
                    wd,
                    dtype,
                    F,
                    path="auto",
                    num_threads=args.threads,
                    backend=args.backend,
                    reps=1,
                )
                pick = report[-1].rsplit("-> ", 1)[-1] if len(report) > 1 else "custom"
                scale = float(np.abs(outs["custom"]).max()) or 1.0
                row = {
                    "backend": args.backend,
                    "shape": shape,
                    "D": D,
                    "F": F,
                    "dtype": dtype,
                    "M": M,
                    "threads": args.threads,
                    "custom_us": t["custom"],
                    "vendor_us": t["vendor"],
                    "vendor_over_custom": t["vendor"] / t["custom"],
                    "auto_pick": pick,
                    "max_diff_rel": float(np.abs(outs["custom"] - outs["vendor"]).max()) / scale,
                }
                rows.append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "a") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    print(
        "| shape | dtype | M | custom µs | vendor µs | vendor/custom | auto picks | max rel diff |"
    )
    print("|---|---|---:|---:|---:|---:|---|---:|")
    for r in rows:
        print(
            f"| {r['shape']} | {r['dtype']} | {r['M']} | {r['custom_us']:.0f} | {r['vendor_us']:.0f} "
            f"| {r['vendor_over_custom']:.2f} | {r['auto_pick']} | {r['max_diff_rel']:.1e} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
