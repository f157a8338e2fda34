"""Review pass: bad input raises ValueError (never TypeError, a crash or a silent change of
meaning), and scheduler edge cases on a tiny model: exact block fills, max_tokens=1, prompts of
max_model_len - 1, eos as the first token, n > 1 with stop strings, INT_MAX max_tokens."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import longbow
from longbow import _core

SP = longbow.SamplingParams
GREEDY = SP(max_tokens=4, ignore_eos=True)


def _llm(path, **kw):
    kw.setdefault("num_threads", 1)
    kw.setdefault("max_model_len", 64)
    return longbow.LLM(str(path), backend="cpu", **kw)


@pytest.fixture(scope="module")
def llm(tiny_gguf_model):
    return _llm(tiny_gguf_model)


def _prompt(n, start=3):
    return [start + (7 * i) % 300 for i in range(n)]


# ---- engine configuration ------------------------------------------------------------------


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"block_size": -1}, "block_size"),
        ({"block_size": 1 << 30}, "block_size"),
        ({"num_blocks": -5}, "num_blocks"),
        ({"num_blocks": 1}, "num_blocks"),
        ({"max_num_seqs": 0}, "max_num_seqs"),
        ({"max_num_seqs": 1 << 30}, "max_num_seqs"),
        ({"max_num_batched_tokens": 1 << 30}, "max_num_batched_tokens"),
        ({"max_model_len": -3}, "max_model_len"),
        ({"max_model_len": 257}, r"max_model_len in \[0, 256\]"),  # the tiny model's context is 256
        ({"max_model_len": 2**31 - 1}, "max_model_len"),
        ({"num_threads": -1}, "num_threads"),
        ({"kv_dtype": "fp16"}, "fp16"),
        ({"kv_dtype": "q8_0"}, "kv_dtype"),
        ({"attention": "flsh"}, "attention"),
    ],
)
def test_bad_engine_config_raises_value_error(tiny_gguf_model, kw, match):
    kw.setdefault("max_model_len", 0)
    with pytest.raises(ValueError, match=match):
        _core.Engine(str(tiny_gguf_model), **kw)


@pytest.mark.parametrize(
    "kw",
    [
        {"num_threads": "2"},
        {"max_num_seqs": 1.5},
        {"block_size": True},
        {"num_blocks": 2**40},
        {"kv_cache_bytes": "x"},
        {"kv_cache_bytes": -1},
        {"enable_prefix_caching": "yes"},
        {"kv_rotation": "no"},
        {"attention": 5},
        {"kv_dtype": 5},
        {"backend": 5},
        {"mlp": 3},
        {"quantize": 1},
        {"num_speculative_tokens": "4"},
        {"speculative_max_batch": 1.0},
    ],
)
def test_llm_arguments_of_the_wrong_type_raise_value_error_naming_them(tiny_gguf_model, kw):
    # Not a pybind TypeError listing the C++ signature.
    (name,) = kw
    with pytest.raises(ValueError, match=rf"\[LLM\] {name} must be"):
        longbow.LLM(str(tiny_gguf_model), **kw)


def test_token_ids_and_prompt_logits_arguments_raise_value_error(llm):
    with pytest.raises(ValueError, match="out of range"):
        llm.generate([2**40], GREEDY)
    with pytest.raises(ValueError, match="first must be"):
        llm.prompt_logits("hello", first="a")
    assert llm.prompt_logits("hello there", first=1).ndim == 2


def test_engine_config_at_the_limits(tiny_gguf_model):
    e = _core.Engine(
        str(tiny_gguf_model), num_threads=1, max_model_len=256, num_blocks=2, block_size=256
    )
    assert (e.max_model_len, e.num_blocks, e.block_size) == (256, 2, 256)
    assert _llm(tiny_gguf_model, max_model_len=0).engine.max_model_len == 256
    assert _llm(tiny_gguf_model, block_size=8).engine.block_size == 8


def test_block_size_zero_is_the_backends_choice(tiny_gguf_model):
    # The CPU's 8-token blocks halve the tail waste; Metal reads a 16-token block per SIMD group.
    assert _llm(tiny_gguf_model).engine.block_size == 8
    assert _core.Engine(str(tiny_gguf_model), num_threads=1, max_model_len=64).block_size == 8
    if "metal-sim" in _core.available_backends():
        assert (
            longbow.LLM(
                str(tiny_gguf_model), backend="metal-sim", max_model_len=64
            ).engine.block_size
            == 16
        )


# ---- SamplingParams --------------------------------------------------------------------------

_FIELDS = {
    "n": st.one_of(
        st.integers(-5, 2**70), st.floats(), st.booleans(), st.none(), st.text(max_size=2)
    ),
    "max_tokens": st.one_of(st.integers(-5, 2**70), st.floats(), st.booleans(), st.none()),
    "min_tokens": st.one_of(st.integers(-5, 2**40), st.floats()),
    "temperature": st.one_of(
        st.floats(), st.integers(-3, 2**70), st.booleans(), st.text(max_size=2)
    ),
    "top_k": st.one_of(st.integers(-5, 2**70), st.floats()),
    "top_p": st.one_of(st.floats(), st.integers(-3, 3)),
    "min_p": st.floats(),
    "repetition_penalty": st.floats(),
    "presence_penalty": st.floats(),
    "seed": st.one_of(st.none(), st.integers(-5, 2**70), st.floats()),
    "stop": st.one_of(
        st.none(),
        st.text(max_size=3),
        st.lists(st.one_of(st.text(max_size=3), st.integers()), max_size=3),
    ),
    "stop_token_ids": st.one_of(
        st.none(), st.lists(st.one_of(st.integers(-5, 2**40), st.floats()), max_size=3)
    ),
}


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.fixed_dictionaries({}, optional=_FIELDS))
def test_sampling_params_fuzz_only_value_errors(kw):
    # Either ValueError at construction, or the engine copy takes the values as they are.
    try:
        p = SP(**kw)
    except ValueError:
        return
    e = p.to_engine()
    assert (e.n, e.max_tokens, e.top_k, e.seed) == (p.n, p.max_tokens, p.top_k, p.seed)
    assert e.stop_token_ids == list(p.stop_token_ids)


def test_sampling_params_int32_bounds_and_none_lists():
    for name in ["n", "max_tokens", "top_k"]:
        with pytest.raises(ValueError, match=name):
            SP(**{name: 2**31})
    with pytest.raises(ValueError, match="stop_token_ids"):
        SP(stop_token_ids=[2**40])
    with pytest.raises(ValueError, match="temperature"):
        SP(temperature=True)
    p = SP(stop=None, stop_token_ids=None, max_tokens=np.int64(3), top_p=np.float32(0.5))
    assert p.stop == [] and p.stop_token_ids == [] and p.to_engine().max_tokens == 3


def test_sampling_params_fields_and_defaults_come_from_the_engine():
    # The engine's struct is the one definition: Python declares each of its fields (top_logprobs
    # is spelled `logprobs`) with the engine's default, and the ranges are the engine's checks.
    engine = _core.EngineSamplingParams()
    python_fields = {f.name: f for f in dataclasses.fields(SP)}
    assert set(_core.EngineSamplingParams.FIELDS) - {"top_logprobs"} <= set(python_fields)
    default = SP()
    for name in set(_core.EngineSamplingParams.FIELDS) - {"top_logprobs"}:
        assert getattr(default, name) == getattr(engine, name), name
    assert longbow.sampling.MAX_TOP_LOGPROBS == _core.MAX_TOP_LOGPROBS
    for kw, message in [
        ({"top_p": 0.0}, r"\[sampling\] top_p must be in \(0, 1\], got 0"),
        ({"max_tokens": 0}, r"\[sampling\] max_tokens must be >= 1"),
        ({"frequency_penalty": float("inf")}, r"\[sampling\] frequency_penalty must be finite"),
        ({"logprobs": 21}, r"\[SamplingParams\] logprobs"),
    ]:
        with pytest.raises(ValueError, match=message):
            SP(**kw)
    with pytest.raises(ValueError, match=r"\[sampling\] top_k"):
        e = SP().to_engine()
        e.top_k = -1
        e.validate()
    with pytest.raises(TypeError):
        SP(8)  # keyword arguments only: a positional 8 must not silently mean n or max_tokens


# ---- prompts -------------------------------------------------------------------------------


@pytest.mark.parametrize("prompt", [[[5.7, 6]], [["5", 6]], [[True, 6]], None, 5, [[[1, 2]]], [[]]])
def test_bad_prompt_token_ids_raise_value_error(llm, prompt):
    with pytest.raises(ValueError, match=r"\[LLM\]"):
        llm.generate(prompt, GREEDY)
    assert not llm.engine.has_unfinished()


def test_numpy_prompts_are_token_ids(llm):
    want = llm.generate([[5, 6, 7]], GREEDY)[0].token_ids
    assert llm.generate(np.array([5, 6, 7]), GREEDY)[0].token_ids == want
    assert llm.generate([np.int64(5), np.int64(6), np.int64(7)], GREEDY)[0].token_ids == want
    assert [o.token_ids for o in llm.generate(np.array([[5, 6, 7], [5, 6, 7]]), GREEDY)] == [
        want,
        want,
    ]


# ---- scheduler edge cases ------------------------------------------------------------------


def test_max_tokens_int_max_runs_to_the_context_end(llm):
    out = llm.generate([_prompt(60)], SP(max_tokens=2**31 - 1, ignore_eos=True))[0]
    assert out.finish_reason == "length" and len(out.token_ids) == 4  # 60 + 4 = max_model_len
    assert llm.stats()["num_blocks_used"] == 0


def test_prompt_of_max_model_len_minus_one(llm):
    out = llm.generate([_prompt(63)], SP(max_tokens=5, ignore_eos=True))[0]
    assert out.finish_reason == "length" and len(out.token_ids) == 1
    with pytest.raises(ValueError, match="max_model_len"):
        llm.generate([_prompt(64)], GREEDY)


@pytest.mark.parametrize("n", [16, 32])
def test_prompt_exactly_filling_blocks_with_prefix_hits(tiny_gguf_model, n):
    cached = _llm(tiny_gguf_model, block_size=16)
    plain = _llm(tiny_gguf_model, block_size=16, enable_prefix_caching=False)
    want = plain.generate([_prompt(n)], SP(max_tokens=6, ignore_eos=True))[0].token_ids
    for _ in range(2):  # the second run hits every full block but the last
        assert cached.generate([_prompt(n)], SP(max_tokens=6, ignore_eos=True))[0].token_ids == want
    assert cached.stats()["prefix_cache_hits"] == n - 16
    one = cached.generate([_prompt(n)], SP(max_tokens=1, ignore_eos=True))[0]
    assert one.token_ids == want[:1] and one.finish_reason == "length"


def test_eos_as_first_token(tiny_gguf_model):
    llm = _llm(tiny_gguf_model)
    first = llm.generate([_prompt(10)], GREEDY)[0].token_ids[0]
    llm.engine.set_eos_token_ids([first])
    out = llm.generate([_prompt(10)], SP(max_tokens=4))[0]
    assert (out.token_ids, out.text, out.finish_reason) == ([first], "", "stop")
    assert llm.stats()["num_blocks_used"] == 0


def test_min_tokens_masks_eos_and_stop_ids(tiny_gguf_model):
    """Before min_tokens the end-of-sequence and stop ids cannot be drawn (vLLM semantics): the
    output never holds them early, and greedy continues with the next best token."""
    llm = _llm(tiny_gguf_model)
    ref = llm.generate([_prompt(10)], GREEDY)[0].token_ids
    llm.engine.set_eos_token_ids([ref[0]])  # the greedy first token is now end-of-sequence
    out = llm.generate([_prompt(10)], SP(max_tokens=6, min_tokens=3))[0]
    assert ref[0] not in out.token_ids[:3] and len(out.token_ids) >= 3
    if out.finish_reason == "stop":  # ended on end-of-sequence, never before min_tokens + 1 tokens
        assert out.token_ids[-1] == ref[0] and len(out.token_ids) >= 4
    # A stop id is masked the same way; without min_tokens it ends the request at once.
    llm.engine.set_eos_token_ids([])
    early = llm.generate([_prompt(10)], SP(max_tokens=6, stop_token_ids=[ref[0]]))[0]
    assert (early.token_ids, early.finish_reason) == ([ref[0]], "stop")
    late = llm.generate([_prompt(10)], SP(max_tokens=6, stop_token_ids=[ref[0]], min_tokens=2))[0]
    assert ref[0] not in late.token_ids[:2] and len(late.token_ids) >= 2
    assert llm.stats()["num_blocks_used"] == 0


def test_n_samples_with_stop_strings_stop_each_sample(llm):
    kw = dict(max_tokens=16, ignore_eos=True, temperature=1.0, seed=3, n=3)
    full = llm.generate("Hello world", SP(**kw))[0].outputs
    stop = full[1].text[3:5]
    assert len(stop) == 2
    got = llm.generate("Hello world", SP(stop=[stop], **kw))[0].outputs
    for f, g in zip(full, got):
        if stop in f.text:
            assert (g.text, g.finish_reason) == (f.text[: f.text.index(stop)], "stop")
        else:
            assert (g.text, g.finish_reason) == (f.text, "length")
    assert llm.stats()["num_blocks_used"] == 0 and not llm.engine.has_unfinished()


# ---- shared op argument checks (backend/op_checks) -----------------------------------------


@pytest.mark.parametrize("backend", ["cpu", "metal-sim"])
def test_rope_rot_dim_beyond_head_dim_is_a_value_error(backend):
    if backend not in _core.available_backends():
        pytest.skip(f"no {backend} backend in this build")
    q = np.zeros((2, 2, 4), np.float32)
    k = np.zeros((2, 1, 4), np.float32)
    pos = np.arange(2, dtype=np.int32)
    with pytest.raises(
        ValueError, match=r"rope\] expected an even rot_dim in \(0, head_dim=4\], found 6"
    ):
        _core.ops.rope(backend, q, k, pos, np.ones(3, np.float32), False)
