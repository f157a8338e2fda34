"""Continuous batching on the real SmolLM2 model (slow): 64 staggered requests equal isolated
greedy runs, aborts free their blocks, a shared 200-token system prompt hits the prefix cache."""

from __future__ import annotations

import numpy as np
import pytest

import longbow
from real_model import smollm2_gguf

pytestmark = pytest.mark.slow


def _llm(**kw):
    return longbow.LLM(str(smollm2_gguf()), backend="cpu", max_model_len=1024, **kw)


def _greedy(m):
    return longbow.SamplingParams(max_tokens=m, ignore_eos=True)


def test_64_staggered_requests_equal_isolated_and_aborts_free_blocks():
    rng = np.random.default_rng(0)
    llm = _llm(max_num_seqs=32, num_blocks=64)  # 1008 slots: preemption happens too
    vocab = llm.config.vocab_size
    reqs = [
        (
            [int(t) for t in rng.integers(100, vocab, size=int(rng.integers(4, 120)))],
            int(rng.integers(2, 24)),
        )
        for _ in range(64)
    ]
    aborted = {f"r{i}" for i in range(3, 64, 9)}
    e = llm.engine
    free0 = e.stats()["num_blocks_free"]
    got: dict[str, list[int]] = {}
    pending = list(enumerate(reqs))
    step = 0
    while pending or e.has_unfinished():
        if pending and step % 2 == 0:  # requests arrive at different steps
            for _ in range(int(rng.integers(1, 5))):
                if pending:
                    i, (p, m) = pending.pop(0)
                    e.add_request(f"r{i}", p, _greedy(m).to_engine())
        for rid, tok, *_ in e.step():
            if tok >= 0:
                got.setdefault(rid, []).append(tok)
            if rid in aborted and tok >= 0 and len(got[rid]) == 1:
                assert e.abort(rid)  # midway
        step += 1
    s = e.stats()
    assert s["num_blocks_used"] == 0 and s["num_blocks_free"] == free0 and s["num_running"] == 0
    solo = _llm(enable_prefix_caching=False)
    for i, (p, m) in enumerate(reqs):
        rid = f"r{i}"
        if rid in aborted:
            assert len(got.get(rid, [])) < m
            continue
        assert got[rid] == solo.generate([p], _greedy(m))[0].token_ids, rid


def test_shared_system_prompt_hits_prefix_cache():
    rng = np.random.default_rng(1)
    on = _llm()
    vocab = on.config.vocab_size
    system = [int(t) for t in rng.integers(100, vocab, size=200)]
    prompts = [
        system + [int(t) for t in rng.integers(100, vocab, size=int(rng.integers(3, 30)))]
        for _ in range(16)
    ]
    got = on.generate(prompts, _greedy(12))
    s = on.stats()
    print(
        f"prefix cache: {s['prefix_cache_hits']}/{s['prefix_cache_queries']} tokens, "
        f"hit rate {s['prefix_cache_hit_rate']:.3f}"
    )
    want = _llm(enable_prefix_caching=False).generate(prompts, _greedy(12))
    assert [o.token_ids for o in got] == [o.token_ids for o in want]
    # The first request is admitted alone (the others wait for its blocks only if the budget
    # ends); at least 12 of 16 requests take the 192 cached tokens (12 full blocks).
    assert s["prefix_cache_hits"] >= 12 * 192
    assert s["prefix_cache_hit_rate"] > 0.5
