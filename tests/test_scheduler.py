"""Scheduler behaviour through the engine on a tiny model, one step at a time: token budget and
chunked prefill, decode first, max_num_seqs, prefix-cache admission, n-sample forks with
copy-on-write, abort, stats."""

from __future__ import annotations

import math

import pytest

import longbow


def _engine(path, **kw):
    kw.setdefault("num_threads", 1)  # tiny models: threads only add sync cost
    kw.setdefault("max_model_len", 256)
    kw.setdefault("block_size", 16)  # the block arithmetic below assumes 16-token blocks
    return longbow.LLM(str(path), backend="cpu", **kw).engine


def _params(max_tokens=4, n=1, **kw):
    return longbow.SamplingParams(max_tokens=max_tokens, n=n, ignore_eos=True, **kw).to_engine()


def _prompt(n, start=3):
    return [start + (7 * i) % 300 for i in range(n)]


def _cost(start: int, n: int, k: float) -> int:
    """Budget units of prompt tokens [start, start + n): each costs 1 + its position / k
    (attention over its context in token equivalents), rounded up; one token costs 1."""
    if n <= 1:
        return n
    return n + math.ceil((n * start + n * (n - 1) / 2) / k - 1e-9)


def _chunks(length: int, budget: int, k: float, start: int = 0) -> list[int]:
    """The prompt chunks the rule gives, step after step, for a prompt alone in the engine."""
    out = []
    while start < length:
        n = max(
            m
            for m in range(1, min(budget, length - start) + 1)
            if _cost(start, m, k) <= budget or m == 1
        )
        out.append(n)
        start += n
    return out


def test_context_per_token_from_the_model_shape(tiny_gguf_model):
    e = _engine(tiny_gguf_model)
    c = longbow.LLM(str(tiny_gguf_model), backend="cpu").model_file.config
    q, kv = c.num_heads * c.head_dim, c.num_kv_heads * c.head_dim
    weights = c.hidden_size * (2 * q + 2 * kv) + 3 * c.hidden_size * c.intermediate_size
    assert e.context_per_token == pytest.approx(2 * weights / (4 * q))


def test_chunked_prefill_respects_budget(tiny_gguf_model):
    e = _engine(tiny_gguf_model, max_num_batched_tokens=8)
    want = _chunks(20, 8, e.context_per_token)
    assert sum(want) == 20 and max(want) <= 8
    e.add_request("a", _prompt(20), _params())
    steps = []
    for _ in range(len(want)):
        out = e.step()
        steps.append((e.stats()["last_step_tokens"], len(out)))
    # The token comes with the last chunk.
    assert steps == [(n, 0) for n in want[:-1]] + [(want[-1], 1)]
    out = e.step()  # then decodes one token per step
    s = e.stats()
    assert [o[0] for o in out] == ["a"] and s["last_step_tokens"] == 1
    assert s["num_steps"] == len(want) + 1
    assert s["mean_step_tokens"] == pytest.approx(21 / (len(want) + 1))


def test_decode_first_then_prefill_chunk(tiny_gguf_model):
    e = _engine(tiny_gguf_model, max_num_batched_tokens=8)
    e.add_request("a", _prompt(5), _params(max_tokens=10))
    assert len(e.step()) == 1  # a's prompt in one step
    e.add_request("b", _prompt(30, start=50), _params())
    out = e.step()
    # a's decode token goes first (1 unit); b gets what fits in the other 7 units.
    first = _chunks(30, 7, e.context_per_token)[0]
    assert [o[0] for o in out] == ["a"] and e.stats()["last_step_tokens"] == 1 + first
    assert e.stats()["num_running"] == 2 and e.stats()["last_step_seqs"] == 2


def test_long_prompt_chunks_shrink_with_context_and_decodes_keep_going(tiny_gguf_model):
    # A long prompt arriving while another sequence decodes: that sequence gets a token every
    # step, and each step's prefill chunk shrinks as the prompt's context grows, so the step's
    # work (and the decoding sequence's token gap) stays bounded.
    e = _engine(tiny_gguf_model, max_num_batched_tokens=32)
    k = e.context_per_token
    e.add_request("a", _prompt(4), _params(max_tokens=100))
    e.step()
    e.add_request("b", _prompt(240, start=20), _params(max_tokens=2))
    chunks, done = [], 0
    while done < 240:
        out = e.step()
        assert "a" in [o[0] for o in out]  # a decodes every step
        n = e.stats()["last_step_tokens"] - 1
        assert 1 + _cost(done, n, k) <= 32 or n == 1
        chunks.append(n)
        done += n
    assert done == 240 and chunks == _chunks(240, 31, k)
    assert chunks[-1] < chunks[0]


def test_max_num_seqs_and_fcfs(tiny_gguf_model):
    e = _engine(tiny_gguf_model, max_num_seqs=2)
    for rid in "abc":
        e.add_request(rid, _prompt(4), _params(max_tokens=2))
    assert sorted(o[0] for o in e.step()) == ["a", "b"]
    s = e.stats()
    assert (s["num_running"], s["num_waiting"]) == (2, 1)
    finished = [o[0] for o in e.step() if o[3]]
    assert sorted(finished) == ["a", "b"]
    assert [o[0] for o in e.step()] == ["c"]


def test_prefix_cache_admission_skips_cached_blocks(tiny_gguf_model):
    e = _engine(tiny_gguf_model)  # block_size 16
    system = _prompt(40)
    e.add_request("a", system, _params(max_tokens=1))
    e.step()
    assert e.stats()["num_blocks_used"] == 0 and e.stats()["num_blocks_cached"] == 2
    e.add_request("b", system[:32] + [9, 9, 9], _params(max_tokens=1))
    e.step()
    s = e.stats()
    assert s["last_step_tokens"] == 3  # 32 cached tokens were not recomputed
    assert s["prefix_cache_queries"] == 40 + 35 and s["prefix_cache_hits"] == 32
    assert s["prefix_cache_hit_rate"] == pytest.approx(32 / 75)
    # A prompt that is entirely cached still computes its last block's tokens for logits.
    e.add_request("c", system[:32], _params(max_tokens=1))
    e.step()
    assert e.stats()["last_step_tokens"] == 16


def test_prefix_cache_off(tiny_gguf_model):
    e = _engine(tiny_gguf_model, enable_prefix_caching=False)
    system = _prompt(40)
    for rid in "ab":
        e.add_request(rid, system, _params(max_tokens=1))
        e.step()
        assert e.stats()["last_step_tokens"] == 40
    assert e.stats()["prefix_cache_hits"] == 0 and e.stats()["num_blocks_cached"] == 0


@pytest.mark.parametrize("prompt_len,copies", [(13, 2), (16, 0)])
def test_fork_and_copy_on_write(tiny_gguf_model, prompt_len, copies):
    e = _engine(tiny_gguf_model)
    e.add_request("a", _prompt(prompt_len), _params(max_tokens=3, n=3))
    out = e.step()
    assert [(o[0], o[5]) for o in out] == [("a", 0), ("a", 1), ("a", 2)]
    assert len({o[1] for o in out}) == 1  # greedy: the same first token from the shared logits
    assert e.stats()["num_running"] == 3
    assert e.stats()["num_blocks_used"] == 1  # the prompt block is shared, not copied
    e.step()
    s = e.stats()
    # A partly filled shared block is copied for all writers but the last; a full one is not.
    assert s["num_cow_copies"] == copies
    assert s["num_blocks_used"] == (3 if copies else 4)
    out = e.step()
    assert sorted(o[5] for o in out if o[3]) == [0, 1, 2]
    assert e.stats()["num_blocks_used"] == 0


def test_abort_all_samples_and_one_sample(tiny_gguf_model):
    e = _engine(tiny_gguf_model)
    e.add_request("a", _prompt(10), _params(max_tokens=20, n=3))
    e.add_request("b", _prompt(10), _params(max_tokens=20, n=2))
    assert e.abort("a", 1) is True  # not forked yet: skipped at the fork
    assert e.abort("a", 1) is False
    out = e.step()
    assert ("a", -1, 1) in [(o[0], o[1], o[5]) for o in out]
    assert sorted(o[5] for o in out if o[0] == "a" and o[1] >= 0) == [
        0,
        2,
    ]  # the fork made sample 2 only
    assert e.abort("a", 2) is True
    out = e.step()
    assert ("a", -1, 2) in [(o[0], o[1], o[5]) for o in out]
    assert e.abort("b") is True and e.abort("b") is False
    out = e.step()
    assert sorted((o[0], o[5]) for o in out if o[1] == -1) == [("b", 0), ("b", 1)]
    e.abort("a")
    e.step()
    assert not e.has_unfinished() and e.stats()["num_blocks_used"] == 0


def test_abort_before_fork_reports_every_sample(tiny_gguf_model):
    e = _engine(tiny_gguf_model)
    e.add_request("a", _prompt(10), _params(n=3))
    assert e.abort("a")
    out = e.step()
    assert sorted(o[5] for o in out) == [0, 1, 2] and all(o[3] and o[4] == "abort" for o in out)
    assert not e.has_unfinished()


def test_bad_n(tiny_gguf_model):
    e = _engine(tiny_gguf_model, max_num_seqs=4)
    with pytest.raises(ValueError, match="n in"):
        e.add_request("a", _prompt(4), _params(n=5))
    with pytest.raises(ValueError, match="n must be"):
        longbow.SamplingParams(n=0)
