"""bench/bench_batching.py: the request draws (same requests at levels 1, 4 and 16; lengths of the
lognormal workloads) and one closed-loop run on a tiny model (never timings)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import longbow

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import bench_batching


def test_fixed_draw_has_the_given_lengths():
    reqs = bench_batching.draw_requests("fixed", 16, 96, 64, seed=3)
    assert [(len(ids), n) for ids, n in reqs] == [(96, 64)] * 16
    assert len({tuple(ids) for ids, _ in reqs}) == 16  # distinct prompts: no prefix-cache help


def test_draws_are_reproducible_per_seed():
    a = bench_batching.draw_requests("sharegpt-like", 16, 0, 0, seed=7)
    b = bench_batching.draw_requests("sharegpt-like", 16, 0, 0, seed=7)
    c = bench_batching.draw_requests("sharegpt-like", 16, 0, 0, seed=8)
    assert a == b and a != c


@pytest.mark.parametrize("workload", sorted(bench_batching.WORKLOADS))
def test_lognormal_workload_means(workload):
    reqs = bench_batching.draw_requests(workload, 4000, 0, 0, seed=1)
    prompts = np.array([len(ids) for ids, _ in reqs])
    outputs = np.array([n for _, n in reqs])
    p_mean, o_mean = bench_batching.WORKLOADS[workload]
    # Clipping trims the tails a little; the means stay within 10 %.
    assert abs(prompts.mean() / p_mean - 1) < 0.1 and abs(outputs.mean() / o_mean - 1) < 0.1
    assert prompts.min() >= 4 and prompts.max() <= 512
    assert outputs.min() >= 4 and prompts.max() + outputs.max() <= bench_batching.MAX_MODEL_LEN


def test_closed_loop_run_generates_every_token(tiny_gguf_model):
    llm = longbow.LLM(
        str(tiny_gguf_model), backend="cpu", num_threads=2, max_model_len=256, max_num_seqs=8
    )
    reqs = [([5 + i, 6, 7, 8], 3 + i) for i in range(5)]
    row = bench_batching.run_level(llm, 2, reqs, "t")
    assert row["requests"] == 5 and row["generated_tokens"] == sum(n for _, n in reqs)
    assert (
        row["ttft_p50_s"] is not None
        and 0 < row["kv_utilization_mean"] <= 1
        and row["preemptions"] == 0
    )
    assert not llm.engine.has_unfinished() and llm.engine.stats()["num_blocks_used"] == 0


def test_closed_loop_run_counts_preemptions(tiny_gguf_model):
    # 6 blocks of 16 slots (one is the null block): 4 requests of up to 60 tokens cannot all fit.
    llm = longbow.LLM(
        str(tiny_gguf_model),
        backend="cpu",
        num_threads=2,
        max_model_len=64,
        max_num_seqs=8,
        block_size=16,
        num_blocks=6,
    )
    reqs = [([5 + i, 6, 7, 8], 56) for i in range(4)]
    row = bench_batching.run_level(llm, 4, reqs, "p")
    assert row["generated_tokens"] == 4 * 56 and row["preemptions"] > 0
