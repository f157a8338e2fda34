"""Decode roofline: machine read bandwidth (a STREAM-like probe) vs weight bytes read per token.

The probe is a tiny C++ program compiled on the fly with the system compiler (sums a 256 MiB
buffer with 1..T threads, best of several passes); without a compiler it falls back to numpy
(one thread). Weight bytes per token are every 2-D weight matrix of the GGUF, with the tied
token embedding counted in full as the LM head (the embedding lookup itself reads one row).

    python -m longbow.benchmarks.roofline [--model PATH] [--threads 1 2] [--decode-tok-s X]   # JSON lines
    (bench/roofline.py is a wrapper). Without --decode-tok-s it measures longbow's decode speed
    with longbow.benchmarks.generate.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

PROBE_SRC = r"""
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstdint>
#include <thread>
#include <vector>
int main(int argc, char** argv) {
  const int threads = argc > 1 ? std::atoi(argv[1]) : 1;
  const size_t n = (256u << 20) / sizeof(uint64_t);
  std::vector<uint64_t> buf(n);
  for (size_t i = 0; i < n; ++i) buf[i] = i;
  double best = 0;
  volatile uint64_t sink = 0;
  for (int pass = 0; pass < 6; ++pass) {
    std::vector<std::thread> ts;
    std::vector<uint64_t> part(threads * 8);
    auto t0 = std::chrono::steady_clock::now();
    for (int t = 0; t < threads; ++t) ts.emplace_back([&, t] {
      const size_t b = n * t / threads, e = n * (t + 1) / threads;
      uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      for (size_t i = b; i + 4 <= e; i += 4) { s0 += buf[i]; s1 += buf[i + 1]; s2 += buf[i + 2]; s3 += buf[i + 3]; }
      part[t * 8] = s0 + s1 + s2 + s3;
    });
    for (auto& th : ts) th.join();
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    for (int t = 0; t < threads; ++t) sink = sink + part[t * 8];
    if (n * sizeof(uint64_t) / s > best) best = n * sizeof(uint64_t) / s;
  }
  std::printf("%.6e\n", best);
  return 0;
}
"""


def read_bandwidth(threads: int) -> tuple[float, str]:
    """Bytes/s of a streaming read with `threads` threads, and how it was measured."""
    cxx = shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")
    if cxx:
        with tempfile.TemporaryDirectory() as d:
            src, exe = Path(d) / "probe.cpp", Path(d) / "probe"
            src.write_text(PROBE_SRC)
            subprocess.run(
                [cxx, "-O2", "-march=native", "-std=c++17", "-pthread", str(src), "-o", str(exe)],
                check=True,
            )
            out = subprocess.run(
                [str(exe), str(threads)], check=True, capture_output=True, text=True
            ).stdout
            return float(out.strip()), "c++ probe"
    import time

    import numpy as np

    a = np.ones(256 << 17, dtype=np.float64)  # 256 MiB
    best = 0.0
    for _ in range(5):
        t0 = time.perf_counter()
        a.sum()
        best = max(best, a.nbytes / (time.perf_counter() - t0))
    return best, "numpy (1 thread)"


def weight_bytes_per_token(model: str) -> int:
    import gguf

    r = gguf.GGUFReader(model)
    names = {t.name for t in r.tensors}
    total = 0
    for t in r.tensors:
        if len(t.shape) < 2:
            continue
        if t.name == "token_embd.weight" and "output.weight" in names:
            continue  # untied: the embedding lookup reads one row; output.weight is the LM head
        total += int(t.n_bytes)
    return total


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--model", default=None)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument(
        "--decode-tok-s", type=float, default=None, help="a measured decode speed to place"
    )
    args = ap.parse_args(argv)
    from longbow.pull import resolve_model

    model = str(resolve_model(args.model))
    wb = weight_bytes_per_token(model)
    for t in args.threads:
        bw, how = read_bandwidth(t)
        roof = bw / wb
        dec = args.decode_tok_s
        if dec is None:
            from longbow.benchmarks.generate import bench_longbow

            rows = bench_longbow(model, t, reps=3)
            dec = next(r["tok_s"] for r in rows if r["case"] == "decode_128_short")
        print(
            json.dumps(
                {
                    "model": model,
                    "threads": t,
                    "read_bw_gb_s": bw / 1e9,
                    "probe": how,
                    "weight_mb_per_token": wb / 1e6,
                    "roofline_tok_s": roof,
                    "decode_tok_s": dec,
                    "fraction_of_roofline": dec / roof,
                }
            ),
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
