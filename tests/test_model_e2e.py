"""Whole-model tests on tiny random Llamas: logits against a float64 numpy reference, HF and
GGUF layouts agree, batched equals single, chunked prefill and preemption change nothing."""

from __future__ import annotations

import numpy as np
import pytest

import longbow
import tiny_models
from np_llama import forward_logits

PROMPT = [5, 17, 42, 99, 7, 3, 250, 11, 64, 128, 31, 200, 77]

# Tolerances, as a fraction of the reference logit range.
TOL = {
    "f32": 2e-4,
    "f16": 2e-3,
    "bf16": 2e-3,
    "q8_0": 2e-3,
    "q4_0": 2e-3,
    "q4_1": 2e-3,
    "kv_f16": 3e-3,
}


def _llm(path, **kw):
    kw.setdefault("num_threads", 2)
    kw.setdefault("max_model_len", 256)
    return longbow.LLM(str(path), backend="cpu", **kw)


def _check_logits(llm, weights, knobs, tol):
    got = llm.prompt_logits(PROMPT)
    ref = forward_logits(
        weights, PROMPT, heads=knobs["heads"], kv_heads=knobs["kv_heads"], layers=knobs["layers"]
    )[-1]
    span = ref.max() - ref.min()
    err = np.abs(got - ref).max() / span
    assert err <= tol, f"max |logit diff| / range = {err:.2e} > {tol:.0e}"
    assert int(got.argmax()) == int(ref.argmax())


@pytest.mark.parametrize("fmt", ["hf", "gguf"])
@pytest.mark.parametrize("heads,kv_heads", [(4, 4), (6, 2), (8, 2)])  # GQA ratios 1, 3, 4
@pytest.mark.parametrize("tie", [False, True])
def test_logits_match_numpy(tiny_model_factory, fmt, heads, kv_heads, tie):
    knobs = dict(hidden=48, layers=2, heads=heads, kv_heads=kv_heads, ffn=96, tie=tie)
    path = tiny_model_factory(fmt, **knobs)
    weights = tiny_models.tiny_weights(**knobs)
    _check_logits(_llm(path, kv_dtype="f32"), weights, knobs, TOL["f32"])


@pytest.mark.parametrize("dtype", ["f16", "bf16", "q8_0", "q4_0", "q4_1"])
@pytest.mark.parametrize(
    "tie", [False, True]
)  # tied: the embedding table is also the (packed) LM head
def test_gguf_weight_dtypes_match_numpy(tiny_model_factory, dtype, tie):
    knobs = dict(hidden=64, layers=2, heads=4, kv_heads=2, ffn=128, tie=tie)
    path = tiny_model_factory("gguf", weight_dtype=dtype, **knobs)
    weights = tiny_models.as_stored(tiny_models.tiny_weights(**knobs), dtype, "gguf")
    _check_logits(_llm(path, kv_dtype="f32"), weights, knobs, TOL[dtype])


@pytest.mark.parametrize("dtype", ["f16", "bf16"])
def test_hf_weight_dtypes_match_numpy(tiny_model_factory, dtype):
    knobs = dict(hidden=64, layers=2, heads=4, kv_heads=2, ffn=128)
    path = tiny_model_factory("hf", dtype=dtype, **knobs)
    weights = tiny_models.as_stored(tiny_models.tiny_weights(**knobs), dtype, "hf")
    _check_logits(_llm(path, kv_dtype="f32"), weights, knobs, TOL[dtype])


def test_f16_kv_cache_close_to_f32(tiny_gguf_model):
    knobs = dict(hidden=64, layers=2, heads=4, kv_heads=2, ffn=128)
    _check_logits(
        _llm(tiny_gguf_model, kv_dtype="f16"),
        tiny_models.tiny_weights(**knobs),
        knobs,
        TOL["kv_f16"],
    )


def test_hf_and_gguf_are_the_same_model(tiny_hf_model, tiny_gguf_model):
    a = _llm(tiny_hf_model, kv_dtype="f32").prompt_logits(PROMPT)
    b = _llm(tiny_gguf_model, kv_dtype="f32").prompt_logits(PROMPT)
    np.testing.assert_allclose(a, b, atol=1e-4 * (a.max() - a.min()))


def _prompts(n, seed=0):
    rng = np.random.default_rng(seed)
    return [[int(t) for t in rng.integers(3, 384, size=int(rng.integers(1, 60)))] for _ in range(n)]


GREEDY = longbow.SamplingParams(max_tokens=16, ignore_eos=True)


def test_batched_equals_single(tiny_gguf_model):
    llm = _llm(tiny_gguf_model)
    prompts = _prompts(8)
    batched = llm.generate(prompts, GREEDY)
    for p, out in zip(prompts, batched):
        alone = llm.generate([p], GREEDY)[0]
        assert out.token_ids == alone.token_ids
        assert out.finish_reason == "length" and len(out.token_ids) == 16


def test_chunked_prefill_and_preemption_change_nothing(tiny_gguf_model):
    prompts = _prompts(12, seed=1)
    ref = [o.token_ids for o in _llm(tiny_gguf_model).generate(prompts, GREEDY)]
    # Tiny token budget (chunked prefill) and a KV pool far smaller than the total demand.
    small = _llm(tiny_gguf_model, max_num_batched_tokens=8, num_blocks=12, max_num_seqs=6)
    got = [o.token_ids for o in small.generate(prompts, GREEDY)]
    assert got == ref
    stats = small.stats()
    assert stats["num_preemptions"] > 0
    assert stats["num_blocks_used"] == 0 and stats["num_running"] == 0


def test_abort_midway_frees_blocks(tiny_gguf_model):
    llm = _llm(tiny_gguf_model)
    gen = llm.stream(PROMPT, longbow.SamplingParams(max_tokens=50, ignore_eos=True))
    next(gen)
    assert llm.stats()["num_blocks_used"] > 0
    gen.close()  # the consumer stops early: the request is aborted and its blocks freed
    assert llm.stats()["num_blocks_used"] == 0


def test_seeded_sampling_is_reproducible(tiny_gguf_model):
    llm = _llm(tiny_gguf_model)
    p = longbow.SamplingParams(
        max_tokens=12, temperature=1.0, top_p=0.9, seed=1234, ignore_eos=True
    )
    a = llm.generate([PROMPT], p)[0].token_ids
    b = llm.generate([PROMPT, PROMPT[:5]], [p, p])[0].token_ids  # batch composition changes nothing
    c = llm.generate(
        [PROMPT],
        longbow.SamplingParams(max_tokens=12, temperature=1.0, top_p=0.9, seed=99, ignore_eos=True),
    )[0].token_ids
    assert a == b
    assert a != c


def test_stream_equals_generate_text(tiny_gguf_model):
    llm = _llm(tiny_gguf_model)
    pieces = list(llm.stream("The quick brown fox", GREEDY))
    full = llm.generate("The quick brown fox", GREEDY)[0]
    assert "".join(pieces) == full.text
    assert full.text == llm.tokenizer.decode(full.token_ids)


def test_stop_string_truncates_and_frees(tiny_gguf_model):
    llm = _llm(tiny_gguf_model)
    full = llm.generate("Hello world", GREEDY)[0].text
    assert len(full) > 4
    stop = full[2:4]
    out = llm.generate(
        "Hello world", longbow.SamplingParams(max_tokens=16, ignore_eos=True, stop=[stop])
    )[0]
    assert out.finish_reason == "stop"
    assert out.text == full[: full.index(stop)]
    assert llm.stats()["num_blocks_used"] == 0


def test_stop_token_ids_and_logprobs(tiny_gguf_model):
    llm = _llm(tiny_gguf_model)
    ref = llm.generate([PROMPT], GREEDY)[0].token_ids
    p = longbow.SamplingParams(
        max_tokens=16, ignore_eos=True, stop_token_ids=[ref[3]], logprobs=True
    )
    out = llm.generate([PROMPT], p)[0]
    assert out.finish_reason == "stop"
    assert out.token_ids == ref[: ref.index(ref[3]) + 1]
    assert all(lp <= 0 for lp in out.logprobs)
    # Greedy logprob of the first token equals log-softmax of the prompt logits.
    logits = llm.prompt_logits(PROMPT).astype(np.float64)
    lse = np.log(np.exp(logits - logits.max()).sum()) + logits.max()
    assert abs(out.logprobs[0] - (logits[ref[0]] - lse)) < 1e-3


def test_top_logprobs(tiny_gguf_model):
    llm = _llm(tiny_gguf_model)
    ref = llm.generate([PROMPT], GREEDY)[0].token_ids
    out = llm.generate(
        [PROMPT], longbow.SamplingParams(max_tokens=16, ignore_eos=True, logprobs=5)
    )[0]
    assert out.token_ids == ref  # reporting top logprobs changes nothing drawn
    assert (
        len(out.top_logprobs) == len(out.logprobs) == 16
        and out.outputs[0].top_logprobs == out.top_logprobs
    )
    for tok, lp, top in zip(out.token_ids, out.logprobs, out.top_logprobs):
        ids, lps = list(top), list(top.values())
        assert len(top) == 5 and lps == sorted(lps, reverse=True)
        assert ids[0] == tok and lps[0] == pytest.approx(
            lp, abs=1e-6
        )  # greedy: the chosen token leads
    # The first step's top 5 are those of the prompt logits (raw: before temperature / penalties).
    logits = llm.prompt_logits(PROMPT).astype(np.float64)
    lse = np.log(np.exp(logits - logits.max()).sum()) + logits.max()
    want = np.lexsort((np.arange(len(logits)), -logits))[:5]
    assert list(out.top_logprobs[0]) == want.tolist()
    np.testing.assert_allclose(list(out.top_logprobs[0].values()), logits[want] - lse, atol=1e-4)
    hot = longbow.SamplingParams(
        max_tokens=4, ignore_eos=True, logprobs=3, temperature=5.0, seed=3, repetition_penalty=2.0
    )
    hot_out = llm.generate([PROMPT], hot)[0]
    np.testing.assert_allclose(
        list(hot_out.top_logprobs[0].values()), logits[want[:3]] - lse, atol=1e-4
    )


def test_top_logprobs_mixed_batch_and_flags(tiny_gguf_model):
    llm = _llm(tiny_gguf_model)
    ks = [20, 0, 3, True, False]
    params = [longbow.SamplingParams(max_tokens=6, ignore_eos=True, logprobs=k) for k in ks]
    batch = llm.generate([PROMPT] * len(ks), params)  # one step samples rows with different k
    single = llm.generate([PROMPT], params[0])[0]
    for a, b in zip(batch[0].top_logprobs, single.top_logprobs, strict=True):
        assert list(a) == list(b)
        np.testing.assert_allclose(list(a.values()), list(b.values()), atol=1e-5)
    assert [len(d) for d in batch[0].top_logprobs] == [20] * 6
    assert batch[1].top_logprobs == [{}] * 6 and len(batch[1].logprobs) == 6  # 0: chosen only
    assert [list(d) for d in batch[2].top_logprobs] == [list(d)[:3] for d in batch[0].top_logprobs]
    assert batch[3].top_logprobs is None and len(batch[3].logprobs) == 6  # True: chosen only
    assert batch[4].top_logprobs is None and batch[4].logprobs is None
    n2 = llm.generate(
        [PROMPT],
        longbow.SamplingParams(
            max_tokens=3, ignore_eos=True, logprobs=2, n=2, temperature=1.0, seed=5
        ),
    )[0]
    assert all(
        len(o.top_logprobs) == 3 and all(len(d) == 2 for d in o.top_logprobs) for o in n2.outputs
    )


@pytest.mark.parametrize("bad", [21, -1, 1.5, "3"])
def test_bad_logprobs_raise_value_error(bad):
    with pytest.raises(
        ValueError, match=r"\[SamplingParams\] logprobs must be True, False or an int in 0..20"
    ):
        longbow.SamplingParams(logprobs=bad)


def test_engine_rejects_top_logprobs_out_of_range(tiny_gguf_model):
    llm = _llm(tiny_gguf_model)
    p = longbow.SamplingParams().to_engine()
    p.top_logprobs = 21
    with pytest.raises(ValueError, match=r"\[sampling\] top_logprobs must be in 0..20, got 21"):
        llm.engine.add_request("bad", PROMPT, p)


def test_bad_requests_raise_value_error(tiny_gguf_model):
    llm = _llm(tiny_gguf_model)
    with pytest.raises(ValueError, match="out of range"):
        llm.generate([[5, 100000]], GREEDY)
    with pytest.raises(ValueError, match="temperature"):
        longbow.SamplingParams(temperature=-1)
    with pytest.raises(ValueError, match="max_model_len"):
        llm.generate([[5] * 300], GREEDY)
    with pytest.raises(ValueError, match="backend"):
        longbow.LLM(str(tiny_gguf_model), backend="nope")
    assert llm.stats()["num_blocks_used"] == 0 and not llm.engine.has_unfinished()
