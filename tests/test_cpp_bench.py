"""C++ kernel micro-benchmarks (bench/cpp/bench_kernels.cpp), run only in benchmark mode:

    LONGBOW_BENCH=1 pytest tests/test_cpp_bench.py -m bench -s [-k matmul]

They never assert timings: a run checks that every selected benchmark ran and reported sane
numbers, and prints its JSON lines. Marked `bench` and skipped unless LONGBOW_BENCH=1, so the
default test run never pays for them.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from cpp_programs import require_program

pytestmark = [
    pytest.mark.bench,
    pytest.mark.skipif(
        os.environ.get("LONGBOW_BENCH") != "1", reason="benchmark mode: set LONGBOW_BENCH=1"
    ),
]

FILTERS = [
    "matmul/decode/",
    "matmul/prefill512/",
    "matmul/decode/q8_0/lm_head",
    "quantize_q16a",
    "rms_norm",
    "silu_mul",
    "thread_pool",
]


def _run(filter_: str, simd: str | None = None) -> list[dict]:
    exe = require_program("bench_kernels")
    env = dict(os.environ)
    if simd:
        env["LONGBOW_CPU_SIMD"] = simd
    ms = os.environ.get("LONGBOW_BENCH_MIN_MS", "200")
    out = subprocess.run(
        [str(exe), f"--filter={filter_}", f"--min-ms={ms}"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    for r in rows:
        print(json.dumps({**r, "simd": simd or "auto"}))
    return rows


@pytest.mark.parametrize("filter_", FILTERS)
def test_bench_kernels(filter_):
    rows = _run(filter_)
    assert rows, f"no benchmark matched {filter_!r}"
    for r in rows:
        assert r["iters"] >= 1 and r["ns_per_iter"] > 0


def test_bench_scalar_fallback_decode():
    rows = _run("matmul/decode/q4_1/", simd="scalar")
    assert len(rows) == 4 and all(r["ns_per_iter"] > 0 for r in rows)


def test_bench_filter_and_list():
    exe = require_program("bench_kernels")
    names = subprocess.run(
        [str(exe), "--list", "--filter=matmul/decode*q8_0"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    assert names and all(n.startswith("matmul/decode/q8_0/") for n in names)
    bad = subprocess.run([str(exe), "--filter=no-such-bench"], capture_output=True, text=True)
    assert bad.returncode == 1 and "no benchmark matches" in bad.stderr
