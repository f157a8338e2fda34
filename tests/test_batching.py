"""Continuous batching end to end on a tiny model: fragmentation (200 requests through a tiny
pool), n samples with copy-on-write, prefix caching equal to no caching, AsyncEngine."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

import longbow
from longbow.async_engine import AsyncEngine


def _llm(path, **kw):
    kw.setdefault("num_threads", 1)  # tiny models: threads only add sync cost
    kw.setdefault("max_model_len", 256)
    return longbow.LLM(str(path), backend="cpu", **kw)


def _requests(n, seed, max_prompt=60, max_out=20):
    rng = np.random.default_rng(seed)
    return [
        (
            [int(t) for t in rng.integers(3, 384, size=int(rng.integers(1, max_prompt)))],
            int(rng.integers(1, max_out)),
        )
        for _ in range(n)
    ]


def _greedy(max_tokens, n=1):
    return longbow.SamplingParams(max_tokens=max_tokens, ignore_eos=True, n=n)


def _isolated(path, reqs):
    ref = _llm(path, enable_prefix_caching=False)
    return [ref.generate([p], _greedy(m))[0].token_ids for p, m in reqs]


def test_fragmentation_200_requests_all_finish(tiny_gguf_model):
    reqs = _requests(200, seed=5)
    want = _isolated(tiny_gguf_model, reqs)
    # 11 usable blocks of 16 tokens = 176 slots for ~8000 tokens of demand.
    llm = _llm(tiny_gguf_model, num_blocks=12, max_num_seqs=8, max_num_batched_tokens=32)
    e = llm.engine
    got: dict[str, list[int]] = {}
    finished: dict[str, str] = {}
    pending = list(enumerate(reqs))
    steps = 0
    while pending or e.has_unfinished():
        for _ in range(3 if steps % 2 == 0 else 0):  # requests arrive at different steps
            if pending:
                i, (p, m) = pending.pop(0)
                e.add_request(f"r{i}", p, _greedy(m).to_engine())
        for rid, tok, _, done, reason, _, _, _ in e.step():
            got.setdefault(rid, []).append(tok)
            if done:
                finished[rid] = reason
        steps += 1
    assert all(finished[f"r{i}"] == "length" for i in range(200))
    assert [got[f"r{i}"] for i in range(200)] == want
    s = llm.stats()
    assert s["num_preemptions"] > 0 and s["num_blocks_used"] == 0 and s["num_running"] == 0


def test_n_samples_equal_seeded_single_runs(tiny_gguf_model):
    llm = _llm(tiny_gguf_model)
    prompt = [
        5,
        17,
        42,
        99,
        7,
        3,
        250,
        11,
        64,
        128,
        31,
        200,
        77,
    ]  # 13 tokens: a shared partial block
    p = longbow.SamplingParams(
        max_tokens=24, temperature=1.0, seed=7, n=4, ignore_eos=True, logprobs=True
    )
    out = llm.generate([prompt], p)[0]
    assert [o.index for o in out.outputs] == [0, 1, 2, 3]
    assert out.token_ids == out.outputs[0].token_ids and out.text == out.outputs[0].text
    assert llm.stats()["num_cow_copies"] >= 3
    for i, o in enumerate(out.outputs):
        single = llm.generate(
            [prompt],
            longbow.SamplingParams(max_tokens=24, temperature=1.0, seed=7 + i, ignore_eos=True),
        )[0]
        assert o.token_ids == single.token_ids and o.finish_reason == "length"
        assert len(o.logprobs) == 24
    assert len({tuple(o.token_ids) for o in out.outputs}) > 1
    assert llm.stats()["num_blocks_used"] == 0


def test_abort_one_sample_before_its_fork(tiny_gguf_model):
    """Sample 2 of n = 4 aborted before the prompt ran: it is reported aborted with no tokens, is
    never created, and the other samples are exactly those of a run without the abort."""
    llm = _llm(tiny_gguf_model)
    prompt = [5, 17, 42, 99, 7, 3, 250, 11, 64, 128, 31, 200, 77]
    p = longbow.SamplingParams(max_tokens=12, temperature=1.0, seed=7, n=4, ignore_eos=True)
    want = [o.token_ids for o in llm.generate([prompt], p)[0].outputs]
    e = llm.engine
    e.add_request("r", prompt, p.to_engine())
    assert e.abort("r", 2) and not e.abort("r", 2) and not e.abort("r", 9)
    tokens, reasons = {i: [] for i in range(4)}, {}
    while e.has_unfinished():
        for rid, tok, _lp, finished, reason, idx, _top, _spec in e.step():
            assert rid == "r"
            if tok >= 0:
                tokens[idx].append(tok)
            if finished:
                reasons[idx] = reason
    assert reasons == {0: "length", 1: "length", 2: "abort", 3: "length"}
    assert tokens[2] == [] and [tokens[i] for i in (0, 1, 3)] == [want[i] for i in (0, 1, 3)]
    assert llm.stats()["num_blocks_used"] == 0 and llm.stats()["num_running"] == 0


def test_n_samples_under_preemption(tiny_gguf_model):
    reqs = _requests(12, seed=9, max_prompt=40, max_out=16)
    want = _isolated(tiny_gguf_model, reqs)
    llm = _llm(tiny_gguf_model, num_blocks=10, max_num_seqs=6, max_num_batched_tokens=24)
    outs = llm.generate([p for p, _ in reqs], [_greedy(m, n=2) for _, m in reqs])
    for out, ref in zip(outs, want):
        assert [o.token_ids for o in out.outputs] == [ref, ref]
    assert llm.stats()["num_preemptions"] > 0 and llm.stats()["num_blocks_used"] == 0


def test_prefix_caching_equals_no_caching(tiny_gguf_model):
    rng = np.random.default_rng(3)
    system = [int(t) for t in rng.integers(3, 384, size=70)]
    prompts = [
        system + [int(t) for t in rng.integers(3, 384, size=int(rng.integers(1, 20)))]
        for _ in range(10)
    ]
    on = _llm(tiny_gguf_model)
    off = _llm(tiny_gguf_model, enable_prefix_caching=False)
    first = on.generate(prompts[:1], _greedy(8))  # fills the cache
    got = first + on.generate(prompts[1:], _greedy(8))
    want = off.generate(prompts, _greedy(8))
    assert [o.token_ids for o in got] == [o.token_ids for o in want]
    s = on.stats()
    assert s["prefix_cache_hits"] == 9 * 64 and s["prefix_cache_hit_rate"] > 0.5
    assert off.stats()["prefix_cache_hits"] == 0


async def _collect(engine, prompt, params, request_id=None):
    pieces, final = [], None
    async for d in engine.generate(prompt, params, request_id=request_id):
        pieces.append(d)
        if d.output is not None:
            final = d.output
    return pieces, final


def test_async_engine_many_callers(tiny_gguf_model):
    llm = _llm(tiny_gguf_model)
    reqs = _requests(12, seed=11, max_out=12)
    want = [o.token_ids for o in llm.generate([p for p, _ in reqs], [_greedy(m) for _, m in reqs])]

    async def main():
        async with AsyncEngine(llm) as engine:
            results = await asyncio.gather(*[_collect(engine, p, _greedy(m)) for p, m in reqs])
            text = await _collect(engine, "The quick brown fox", _greedy(10, n=2))
            return results, text, engine.stats()

    results, (pieces, final), stats = asyncio.run(main())
    for (deltas, out), ref in zip(results, want):
        assert [t for d in deltas for t in d.token_ids] == ref == out.token_ids
        assert deltas[-1].finished and deltas[-1].finish_reason == "length"
    assert "".join(d.text for d in pieces if d.index == 0) == final.outputs[0].text
    assert "".join(d.text for d in pieces if d.index == 1) == final.outputs[1].text
    assert (
        final.outputs[0].token_ids == llm.generate("The quick brown fox", _greedy(10))[0].token_ids
    )
    assert stats["num_blocks_used"] == 0 and stats["num_running"] == 0


def test_async_engine_abort_and_errors(tiny_gguf_model):
    llm = _llm(tiny_gguf_model)

    async def main():
        engine = AsyncEngine(llm)
        long = _greedy(200)
        seen = []

        async def aborted():
            async for d in engine.generate([5, 6, 7], long, request_id="x"):
                seen.append(d)
                if len(seen) == 3:
                    engine.abort("x")
            return seen[-1]

        async def broken_off():
            async for _ in engine.generate([8, 9], long):
                break  # leaving early aborts the request

        last, _ = await asyncio.gather(aborted(), broken_off())
        with pytest.raises(ValueError, match="out of range"):
            await _collect(engine, [5, 100000], _greedy(2))
        # Two callers with one id (submitted within microseconds, the first runs 200 steps).
        twins = await asyncio.gather(
            _collect(engine, [1, 2, 3], long, request_id="dup"),
            _collect(engine, [1, 2, 3], long, request_id="dup"),
            return_exceptions=True,
        )
        errors = [r for r in twins if isinstance(r, BaseException)]
        assert (
            len(errors) == 1 and isinstance(errors[0], ValueError) and "duplicate" in str(errors[0])
        )
        for _ in range(100):
            if engine.stats()["num_blocks_used"] == 0:
                break
            await asyncio.sleep(0.01)
        stats = engine.stats()
        await engine.shutdown()
        with pytest.raises(RuntimeError, match="shut down"):
            await _collect(engine, [1, 2], _greedy(2))
        return last, stats

    last, stats = asyncio.run(main())
    assert last.finished and last.finish_reason == "abort" and last.output.finish_reason == "abort"
    assert stats["num_blocks_used"] == 0 and not llm.engine.has_unfinished()
