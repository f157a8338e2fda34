"""Quantizing float weights at load (EngineConfig.quantize, and the self-draft of speculative
decoding): the weights equal, bit for bit, those of a file quantized by gguf-py (ggml's reference
quantizers), so outputs and logprobs match that file's exactly."""

from __future__ import annotations

import pytest

import longbow
from longbow import _core

PROMPTS = [[5, 17, 3, 99, 42], [7] * 9, [1, 2, 3, 4, 5, 6, 7, 8]]


def _greedy(path, **kw):
    engine = _core.Engine(str(path), backend="cpu", num_threads=1, max_model_len=128, **kw)
    params = longbow.SamplingParams(max_tokens=12, ignore_eos=True, logprobs=5).to_engine()
    for i, prompt in enumerate(PROMPTS):
        engine.add_request(f"r{i}", prompt, params)
    out: dict = {}
    while engine.has_unfinished():
        for rid, tok, lp, _done, _reason, _idx, top, _spec in engine.step():
            if tok >= 0:
                out.setdefault(rid, []).append((tok, lp, top))
    return out


@pytest.mark.parametrize("qtype", ["q4_1", "q8_0", "q4_0"])
def test_quantized_at_load_equals_the_file_quantized_by_gguf(tiny_model_factory, qtype):
    # The embedding table stays float in both (self-draft and quantize keep it as stored).
    knobs = {"vocab": 384, "hidden": 64, "seed": 3}
    f32 = tiny_model_factory("gguf", **knobs)
    reference = tiny_model_factory("gguf", weight_dtype=qtype, embedding_dtype="f32", **knobs)
    want = _greedy(reference)
    assert _greedy(f32, quantize=qtype) == want
    assert _greedy(f32) != want  # quantizing changed the weights


def test_quantize_leaves_quantized_weights_as_stored(tiny_model_factory):
    q8 = tiny_model_factory("gguf", weight_dtype="q8_0", seed=3)
    assert _greedy(q8, quantize="q4_1") == _greedy(q8)


def test_quantize_hf_folder_bf16(tiny_model_factory):
    folder = tiny_model_factory("hf", dtype="bf16", seed=4)
    plain, quantized = _greedy(folder), _greedy(folder, quantize="q8_0")
    assert quantized != plain
    # q8_0 is close: most greedy tokens survive it.
    same = sum(a[0] == b[0] for rid in plain for a, b in zip(plain[rid], quantized[rid]))
    assert same >= 0.5 * sum(len(v) for v in plain.values())


def test_quantize_errors_name_the_setting_and_tensor(tiny_model_factory):
    f32 = tiny_model_factory("gguf", seed=3)
    with pytest.raises(
        ValueError, match="expected quantize '', 'q8_0', 'q4_0' or 'q4_1', found 'q5_k'"
    ):
        _core.Engine(str(f32), quantize="q5_k")
    with pytest.raises(ValueError, match="draft_quantize .* found 'f16'"):
        _core.Engine(str(f32), speculative="self", draft_quantize="f16")
    odd = tiny_model_factory("gguf", hidden=48, heads=4, kv_heads=2, seed=3)
    with pytest.raises(ValueError, match=r"cannot quantize tensor .* rows of 48 .* multiple of 32"):
        _core.Engine(str(odd), quantize="q4_1")


def test_self_draft_needs_float_weights(tiny_model_factory):
    q4 = tiny_model_factory("gguf", weight_dtype="q4_1", seed=3)
    with pytest.raises(ValueError, match=r"speculative 'self' .* stores .* as q4_1"):
        _core.Engine(str(q4), speculative="self")


def test_llm_and_cli_take_quantize(tiny_model_factory):
    f32 = tiny_model_factory("gguf", seed=3)
    llm = longbow.LLM(str(f32), quantize="q4_1", speculative="self", draft_quantize="q8_0")
    params = longbow.SamplingParams(max_tokens=8, ignore_eos=True)
    got = llm.generate([PROMPTS[1]], params)[0]
    want = longbow.LLM(str(f32), quantize="q4_1").generate([PROMPTS[1]], params)[0]
    assert got.token_ids == want.token_ids
    assert got.metrics["num_draft_tokens"] > 0
