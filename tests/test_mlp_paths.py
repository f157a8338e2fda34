"""The MLP block's paths (Backend::mlp): ours ("custom"), the vendor BLAS ("vendor", OpenBLAS from
scipy-openblas32 here) and the per-shape chooser ("auto"): each against a float64 numpy MLP and a
float64 whole-model reference, batched = single, and the errors for what a path cannot run."""

from __future__ import annotations

import numpy as np
import pytest

import longbow
import tiny_models
from longbow import _core
from longbow.blas import configure_blas, openblas_library
from test_model_e2e import PROMPT, TOL, _check_logits, _llm

configure_blas()
needs_blas = pytest.mark.skipif(
    openblas_library() is None, reason="needs scipy-openblas32 (pip install longbow-quarrel[blas])"
)


def _weights(dtype, n, k, rng):
    w = (rng.standard_normal((n, k)) / np.sqrt(k)).astype(np.float32)
    if dtype == "f32":
        return w, w.astype(np.float64)
    if dtype == "f16":
        h = w.astype(np.float16)
        return h, h.astype(np.float64)
    bits = (w.view(np.uint32) >> 16).astype(np.uint16)
    return bits, (bits.astype(np.uint32) << 16).view(np.float32).astype(np.float64)


def _ref_mlp(x, wg, wu, wd):
    g, u = x @ wg.T, x @ wu.T
    return ((g / (1 + np.exp(-g))) * u) @ wd.T


@needs_blas
@pytest.mark.parametrize("dtype", ["f32", "f16", "bf16"])
@pytest.mark.parametrize("M", [1, 7, 33])
@pytest.mark.parametrize("path", ["custom", "vendor", "auto"])
def test_mlp_op_matches_float64(dtype, M, path):
    rng = np.random.default_rng(M)
    D, F = 40, 72  # not multiples of 16: padded panels, partial column ranges
    (wg, rg), (wu, ru), (wd, rd) = (
        _weights(dtype, F, D, rng),
        _weights(dtype, F, D, rng),
        _weights(dtype, D, F, rng),
    )
    x = rng.standard_normal((M, D)).astype(np.float32)
    out, _, report = _core.ops.mlp(x, wg, wu, wd, dtype, F, path=path, num_threads=2)
    ref = _ref_mlp(x.astype(np.float64), rg, ru, rd)
    assert np.abs(out - ref).max() <= 1e-5 * np.abs(ref).max()
    assert report[0].startswith(f"path: {path}; vendor: OpenBLAS")
    if path == "auto":  # one measured shape, both times and the pick
        assert len(report) == 2 and f"M<={[b for b in (1, 8, 64, 512) if M <= b][0]}" in report[1]
        assert "custom" in report[1] and "vendor" in report[1]


@needs_blas
@pytest.mark.parametrize("dtype", ["f32", "f16", "bf16"])
@pytest.mark.parametrize("path", ["vendor", "auto"])
def test_model_logits_on_every_path(tiny_model_factory, dtype, path):
    knobs = dict(hidden=64, layers=2, heads=4, kv_heads=2, ffn=128)
    p = tiny_model_factory("gguf", weight_dtype=dtype, **knobs)
    weights = tiny_models.as_stored(tiny_models.tiny_weights(**knobs), dtype, "gguf")
    llm = _llm(p, kv_dtype="f32", mlp=path)
    _check_logits(llm, weights, knobs, TOL[dtype])
    custom = _llm(p, kv_dtype="f32", mlp="custom").prompt_logits(PROMPT)
    got = llm.prompt_logits(PROMPT)
    span = float(custom.max() - custom.min())
    assert np.abs(got - custom).max() <= 1e-4 * span  # vendor vs ours: rounding only


@needs_blas
def test_vendor_batched_equals_single(tiny_gguf_model):
    llm = _llm(tiny_gguf_model, mlp="vendor")
    prompts = [PROMPT, PROMPT[:5], [9, 8, 7, 6, 5, 4, 3, 2, 1] * 3]
    params = longbow.SamplingParams(max_tokens=8)
    batched = [o.outputs[0].token_ids for o in llm.generate(prompts, params)]
    single = [llm.generate([p], params)[0].outputs[0].token_ids for p in prompts]
    assert batched == single


@needs_blas
def test_vendor_refuses_quantized_weights(tiny_model_factory):
    p = tiny_model_factory("gguf", weight_dtype="q8_0", hidden=64, ffn=128)
    with pytest.raises(ValueError, match=r"\[cpu.mlp\] w_gate is q8_0: the vendor BLAS takes F32"):
        _llm(p, mlp="vendor")  # at load, before any request
    # auto runs our integer kernels for quantized weights and measures nothing
    auto = _llm(p, mlp="auto")
    auto.prompt_logits(PROMPT)
    assert len(auto.mlp_report()) == 1


def test_mlp_path_names_and_default(tiny_gguf_model):
    # custom by default: batch invariance and speculative exactness rely on it
    assert _llm(tiny_gguf_model).mlp_report()[0].startswith("path: custom; vendor: ")
    assert _core.ENGINE_DEFAULTS["mlp"] == "custom"
    with pytest.raises(
        ValueError, match=r'\[mlp\] expected "auto", "custom" or "vendor", found "blas"'
    ):
        _llm(tiny_gguf_model, mlp="blas")


@pytest.mark.parametrize("dtype", ["f32", "bf16", "q8_0"])
def test_custom_path_is_the_separate_ops_bit_for_bit(dtype):
    # Backend::mlp's default issues matmul_group(gate, up), glu and matmul(down): the same bits as
    # the model issuing them itself (it did before the op existed).
    rng = np.random.default_rng(3)
    D, F, M = 64, 96, 11
    wf = [(rng.standard_normal(s) / 8).astype(np.float32) for s in ((F, D), (F, D), (D, F))]
    if dtype == "f32":
        raw = wf
    elif dtype == "bf16":
        raw = [(w.view(np.uint32) >> 16).astype(np.uint16) for w in wf]
    else:
        from gguf.quants import quantize
        import gguf

        raw = [quantize(w, gguf.GGMLQuantizationType.Q8_0) for w in wf]
    x = rng.standard_normal((M, D)).astype(np.float32)
    out, _, _ = _core.ops.mlp(x, *raw, dtype, F, path="custom", num_threads=2)
    g = _core.ops.matmul("cpu", x, raw[0], dtype, F, D)
    u = _core.ops.matmul("cpu", x, raw[1], dtype, F, D)
    h = _core.ops.glu("cpu", g, u)
    ref = _core.ops.matmul("cpu", h, raw[2], dtype, D, F)
    assert np.array_equal(out, ref)
