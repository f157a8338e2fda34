"""CPU backend ops against the numpy references in op_refs.py (awkward sizes, every dtype)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import op_refs as ref
from op_refs import paged_batch as make_batch

ops = pytest.importorskip("longbow._core").ops

BACKENDS = ["cpu"]

# One tolerance table: (atol, rtol) for elementwise compares, NMSE for quantized matmuls.
TOL = {
    "matmul_f32": (1e-4, 1e-4),
    "matmul_f16": (1e-4, 1e-4),
    "matmul_bf16": (1e-4, 1e-4),
    "matmul_quant_nmse": 5e-4,
    # Q4_0/Q4_1/Q8_0 weights multiply activations quantized per 32 values to int16 (f32 scale
    # amax/32767, round to nearest even; q16_act emulates it exactly): (atol, rtol) against that.
    "matmul_q16_act": (1e-4, 1e-4),
    "embed": (0.0, 0.0),
    "rms_norm": (1e-5, 1e-5),
    "rope": (1e-5, 1e-5),
    "silu_mul": (1e-6, 1e-5),
    "gelu_tanh_mul": (1e-6, 1e-5),
    "softcap": (1e-6, 1e-6),
    "attention_f32": (1e-5, 1e-4),
    "attention_f16": (1e-5, 1e-4),  # reference reads the same f16 cache values
}
SIZES = [1, 31, 32, 33, 4097]
WEIGHT_DTYPES = ["f32", "f16", "bf16", "q8_0", "q4_0", "q4_1"]


def nmse(a, b):
    return float(np.sum((a - b) ** 2) / max(np.sum(b**2), 1e-30))


def q16_act(x):
    """The activations quantized-weight matmuls see: per 32 values d = amax/32767, q = rint(x/d)."""
    x = np.asarray(x, np.float32)
    blocks = x.reshape(*x.shape[:-1], -1, 32)
    amax = np.abs(blocks).max(axis=-1, keepdims=True)
    d = (amax / np.float32(32767)).astype(np.float32)
    with np.errstate(divide="ignore"):
        inv = np.where(amax > 0, np.float32(32767) / amax, np.float32(0)).astype(np.float32)
    q = np.rint((blocks * inv).astype(np.float32))
    return (q.astype(np.float64) * d.astype(np.float64)).reshape(x.shape)


def rng(seed):
    return np.random.default_rng(seed)


# ---- matmul ----


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", WEIGHT_DTYPES)
@pytest.mark.parametrize(
    "M,N,K", [(1, 1, 32), (1, 33, 64), (31, 32, 96), (33, 31, 32), (4, 4097, 64), (2, 17, 4128)]
)
def test_matmul(backend, dtype, M, N, K):
    r = rng(M * 1000 + N + K)
    x = r.standard_normal((M, K)).astype(np.float32)
    raw, w_deq = ref.make_weight(r.standard_normal((N, K)).astype(np.float32), dtype)
    out = ops.matmul(backend, x, raw, dtype, N, K)
    want = ref.matmul(x, w_deq)
    assert out.shape == (M, N)
    if dtype in ("q8_0", "q4_0", "q4_1"):
        assert nmse(out, want) <= TOL["matmul_quant_nmse"]
        # and much tighter against the same dequantized values
        np.testing.assert_allclose(out, want, atol=1e-3 * np.sqrt(K), rtol=1e-3)
    else:
        atol, rtol = TOL[f"matmul_{dtype}"]
        np.testing.assert_allclose(out, want, atol=atol * np.sqrt(K), rtol=rtol)


@pytest.mark.parametrize("dtype", ["f32", "q4_1"])
@pytest.mark.parametrize("M", SIZES)
def test_matmul_sizes_bias_accumulate(dtype, M):
    r = rng(M)
    N, K = 33, 64
    x = r.standard_normal((M, K)).astype(np.float32)
    raw, w_deq = ref.make_weight(r.standard_normal((N, K)).astype(np.float32), dtype)
    bias = r.standard_normal(N).astype(np.float32)
    acc = r.standard_normal((M, N)).astype(np.float32)
    out = ops.matmul("cpu", x, raw, dtype, N, K, bias=bias, accumulate_into=acc)
    if dtype == "q4_1":  # quantized activations: compare against the exact emulation
        atol, rtol = TOL["matmul_q16_act"]
        np.testing.assert_allclose(
            out, ref.matmul(q16_act(x), w_deq, bias, acc), atol=atol, rtol=rtol
        )
    else:
        np.testing.assert_allclose(out, ref.matmul(x, w_deq, bias, acc), atol=1e-4, rtol=1e-4)


def test_matmul_quantized_vs_float_weights():
    """NMSE of the quantized product against the unquantized weights stays at quantization level."""
    r = rng(7)
    x = r.standard_normal((8, 256)).astype(np.float32)
    w = r.standard_normal((64, 256)).astype(np.float32)
    for dtype, bound in [("q8_0", 1e-4), ("q4_1", 2e-2), ("q4_0", 2e-2)]:
        raw, _ = ref.make_weight(w, dtype)
        assert nmse(ops.matmul("cpu", x, raw, dtype, 64, 256), x.astype(np.float64) @ w.T) < bound


def test_matmul_bad_input():
    x = np.zeros((2, 64), np.float32)
    with pytest.raises(ValueError, match=r"\[ops\] w: expected"):
        ops.matmul("cpu", x, np.zeros(10, np.uint8), "q4_0", 3, 64)
    with pytest.raises(ValueError, match="multiple of"):
        ops.matmul("cpu", np.zeros((2, 40), np.float32), np.zeros(10, np.uint8), "q4_0", 3, 40)
    with pytest.raises(ValueError, match="expected shape"):
        ops.matmul("cpu", x, np.zeros((3, 32), np.float32), "f32", 3, 32)
    with pytest.raises(ValueError, match="unknown or unavailable backend"):
        ops.matmul("nope", x, np.zeros((3, 64), np.float32), "f32", 3, 64)


# ---- embed / rms_norm / rope / elementwise ----


@pytest.mark.parametrize("dtype", WEIGHT_DTYPES)
def test_embed(dtype):
    r = rng(3)
    vocab, dim = 37, 64
    raw, deq = ref.make_weight(r.standard_normal((vocab, dim)).astype(np.float32), dtype)
    ids = np.array([0, 36, 5, 5, 17], np.int32)
    np.testing.assert_array_equal(ops.embed("cpu", ids, raw, dtype, vocab, dim), deq[ids])
    np.testing.assert_array_equal(
        ops.embed("cpu", ids, raw, dtype, vocab, dim, 8.0), deq[ids] * np.float32(8.0)
    )
    with pytest.raises(ValueError, match=r"token_ids\[1\]: expected 0 <= id < 37, found 37"):
        ops.embed("cpu", np.array([1, 37], np.int32), raw, dtype, vocab, dim)


@pytest.mark.parametrize("rows", SIZES)
def test_rms_norm(rows):
    r = rng(rows)
    dim = 33 if rows != 4097 else 64
    x = r.standard_normal((rows, dim)).astype(np.float32)
    w = r.standard_normal(dim).astype(np.float32)
    atol, rtol = TOL["rms_norm"]
    np.testing.assert_allclose(
        ops.rms_norm("cpu", x, w, 1e-5), ref.rms_norm(x, w, 1e-5), atol=atol, rtol=rtol
    )


@pytest.mark.parametrize("interleaved", [False, True])
@pytest.mark.parametrize(
    "T,H,Hkv,D,rot", [(1, 4, 2, 64, 64), (33, 3, 1, 32, 16), (5, 9, 3, 64, 32)]
)
def test_rope(interleaved, T, H, Hkv, D, rot):
    r = rng(T + D)
    q = r.standard_normal((T, H, D)).astype(np.float32)
    k = r.standard_normal((T, Hkv, D)).astype(np.float32)
    pos = r.integers(0, 5000, T).astype(np.int32)
    inv_freq = (10000.0 ** (-np.arange(0, rot, 2) / rot)).astype(np.float32)
    gq, gk = ops.rope("cpu", q, k, pos, inv_freq, interleaved)
    atol, rtol = TOL["rope"]
    np.testing.assert_allclose(gq, ref.rope(q, pos, inv_freq, interleaved), atol=atol, rtol=rtol)
    np.testing.assert_allclose(gk, ref.rope(k, pos, inv_freq, interleaved), atol=atol, rtol=rtol)
    np.testing.assert_array_equal(gq[..., rot:], q[..., rot:])  # partial rotation leaves the rest


@pytest.mark.parametrize("n", SIZES + [70001])
def test_elementwise(n):
    r = rng(n)
    g, u = r.standard_normal((2, n)).astype(np.float32)
    atol, rtol = TOL["silu_mul"]
    np.testing.assert_allclose(
        ops.glu("cpu", g[None], u[None])[0], ref.silu_mul(g, u), atol=atol, rtol=rtol
    )
    atol, rtol = TOL["gelu_tanh_mul"]
    g4 = g * 4  # reaches the saturated tails of tanh
    np.testing.assert_allclose(
        ops.glu("cpu", g4[None], u[None], "gelu_tanh")[0],
        ref.gelu_tanh_mul(g4, u),
        atol=atol,
        rtol=rtol,
    )
    atol, rtol = TOL["softcap"]
    np.testing.assert_allclose(
        ops.softcap("cpu", g4 * 10, 30.0), ref.softcap(g4 * 10, 30.0), atol=atol * 30, rtol=rtol
    )
    np.testing.assert_array_equal(ops.add("cpu", g, u), g + u)
    x = r.standard_normal((7, 3)).astype(np.float32)
    rows = np.array([6, 0, 0, 3], np.int32)
    np.testing.assert_array_equal(ops.get_rows("cpu", x, rows), x[rows])
    with pytest.raises(ValueError, match="found 7"):
        ops.get_rows("cpu", x, np.array([7], np.int32))


# ---- KV cache ----


@pytest.mark.parametrize("cache_dtype", [np.float32, np.float16])
def test_kv_write(cache_dtype):
    r = rng(11)
    nb, bs, hkv, d, T = 5, 16, 2, 32, 33
    kc = r.standard_normal((nb, bs, hkv, d)).astype(cache_dtype)
    vc = r.standard_normal((nb, bs, hkv, d)).astype(cache_dtype)
    k = r.standard_normal((T, hkv, d)).astype(np.float32)
    v = r.standard_normal((T, hkv, d)).astype(np.float32)
    slots = r.permutation(nb * bs)[:T].astype(np.int32)
    slots[[3, 10]] = -1  # skipped tokens
    gk, gv = ops.kv_write("cpu", k, v, kc, vc, slots)
    wk, wv = ref.kv_write(k, v, kc, vc, slots)
    assert gk.dtype == cache_dtype
    np.testing.assert_array_equal(gk, wk)
    np.testing.assert_array_equal(gv, wv)
    slots[0] = nb * bs
    with pytest.raises(ValueError, match="slot_mapping"):
        ops.kv_write("cpu", k, v, kc, vc, slots)


def test_copy_blocks():
    r = rng(12)
    cache = r.standard_normal((4, 6, 16, 2, 8)).astype(np.float16)  # (layers*2, blocks, ...)
    pairs = np.array([[1, 4], [2, 0], [3, 3]], np.int32)
    got = ops.copy_blocks("cpu", cache, pairs)
    want = cache.copy()
    for s, d in pairs:
        want[:, d] = cache[:, s]
    np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError, match="block ids"):
        ops.copy_blocks("cpu", cache, np.array([[0, 6]], np.int32))


# ---- attention ----


@pytest.mark.parametrize("cache_dtype", [np.float32, np.float16])
@pytest.mark.parametrize("group", [1, 3, 4])
def test_attention(cache_dtype, group):
    r = rng(group)
    hkv, d, bs = 2, 32, 16
    H = hkv * group
    ctx_lens, new_lens = [1, 31, 33, 70, 16], [1, 31, 1, 5, 2]  # prefill, decode and chunks
    kc, vc, bt, qs, sl, pos = make_batch(r, ctx_lens, new_lens, hkv, d, bs, cache_dtype)
    q = r.standard_normal((int(qs[-1]), H, d)).astype(np.float32)
    scale = d**-0.5
    got = ops.attention("cpu", q, kc, vc, bt, qs, sl, pos, scale)
    want = ref.attention(q, kc, vc, bt, qs, sl, pos, scale)
    atol, rtol = TOL["attention_f16" if cache_dtype == np.float16 else "attention_f32"]
    np.testing.assert_allclose(got, want, atol=atol, rtol=rtol)
    for variant in [
        "split",
        "auto",
        "fused_decode",
        "flash_prefill",
    ]:  # each algorithm, same answer
        np.testing.assert_allclose(
            ops.attention("cpu", q, kc, vc, bt, qs, sl, pos, scale, variant),
            want,
            atol=atol,
            rtol=rtol,
        )


@pytest.mark.parametrize(
    "window,softcap", [(1, 0.0), (3, 5.0), (15, 0.0), (16, 50.0), (0, 5.0), (500, 0.0)]
)
def test_attention_window_softcap(window, softcap):
    # Against the one-row-at-a-time reference (a second, independent numpy formulation).
    r = rng(window + 7)
    hkv, d, bs = 2, 32, 16
    kc, vc, bt, qs, sl, pos = make_batch(
        r, [1, 31, 33, 70, 16], [1, 31, 1, 5, 2], hkv, d, bs, np.float16
    )
    q = (r.standard_normal((int(qs[-1]), 2 * hkv, d)) * 3.0).astype(np.float32)
    want = ref.attention(q, kc, vc, bt, qs, sl, pos, d**-0.5, window, softcap)
    atol, rtol = TOL["attention_f16"]
    for variant in ["split", "auto", "fused_decode", "flash_prefill"]:
        got = ops.attention(
            "cpu",
            q,
            kc,
            vc,
            bt,
            qs,
            sl,
            pos,
            d**-0.5,
            variant,
            sliding_window=window,
            logit_softcap=softcap,
        )
        np.testing.assert_allclose(got, want, atol=atol, rtol=rtol, err_msg=variant)


def test_attention_long_context():
    r = rng(5)
    kc, vc, bt, qs, sl, pos = make_batch(r, [4097], [2], 1, 64, 16, np.float16)
    q = r.standard_normal((2, 4, 64)).astype(np.float32)
    got = ops.attention("cpu", q, kc, vc, bt, qs, sl, pos, 0.125)
    np.testing.assert_allclose(
        got, ref.attention(q, kc, vc, bt, qs, sl, pos, 0.125), atol=1e-5, rtol=1e-4
    )


def test_attention_bad_input():
    r = rng(6)
    kc, vc, bt, qs, sl, pos = make_batch(r, [20], [2], 1, 32, 16, np.float32)
    q = r.standard_normal((2, 2, 32)).astype(np.float32)
    bad = pos.copy()
    bad[1] = 20
    with pytest.raises(
        ValueError, match=r"positions\[1\]: expected 0 <= pos < seq_len=20, found 20"
    ):
        ops.attention("cpu", q, kc, vc, bt, qs, sl, bad, 1.0)
    bt2 = bt.copy()
    bt2[0, 0] = kc.shape[0]
    with pytest.raises(ValueError, match="block_tables"):
        ops.attention("cpu", q, kc, vc, bt2, qs, sl, pos, 1.0)
    with pytest.raises(ValueError, match="multiple of num_kv_heads"):
        ops.attention(
            "cpu",
            r.standard_normal((2, 3, 32)).astype(np.float32),
            np.repeat(kc, 2, 2),
            np.repeat(vc, 2, 2),
            bt,
            qs,
            sl,
            pos,
            1.0,
        )


# ---- SIMD: the scalar fallback computes the same results ----

_SCALAR_SCRIPT = r"""
import sys, numpy as np
sys.path.insert(0, {tests!r})
import op_refs as ref
from longbow import _core
assert _core.ops.cpu_simd() == "scalar", _core.ops.cpu_simd()
r = np.random.default_rng(0)
out = {{}}
x = r.standard_normal((3, 96)).astype(np.float32)
for dt in {dtypes!r}:
    raw, _ = ref.make_weight(r.standard_normal((33, 96)).astype(np.float32), dt)
    out[dt] = _core.ops.matmul("cpu", x, raw, dt, 33, 96)
np.savez({path!r}, **out)
"""


def test_scalar_fallback_matches_simd(tmp_path):
    path = str(tmp_path / "scalar.npz")
    env = dict(os.environ, LONGBOW_CPU_SIMD="scalar")
    here = os.path.dirname(os.path.abspath(__file__))
    script = _SCALAR_SCRIPT.format(tests=here, dtypes=WEIGHT_DTYPES, path=path)
    subprocess.run([sys.executable, "-c", script], env=env, check=True)
    scalar = np.load(path)
    r = np.random.default_rng(0)
    x = r.standard_normal((3, 96)).astype(np.float32)
    for dt in WEIGHT_DTYPES:
        raw, _ = ref.make_weight(r.standard_normal((33, 96)).astype(np.float32), dt)
        np.testing.assert_allclose(
            ops.matmul("cpu", x, raw, dt, 33, 96), scalar[dt], atol=1e-4, rtol=1e-5
        )


# ---- quantized-weight matmuls see 16-bit block-quantized activations (exact emulation) ----


@pytest.mark.parametrize("dtype", ["q8_0", "q4_0", "q4_1"])
@pytest.mark.parametrize("M,K", [(1, 32), (5, 96), (9, 576)])
def test_matmul_quantized_activation_emulation(dtype, M, K):
    r = rng(M * 7 + K)
    # Awkward scales per block, an all-zero block and exact ties at .5 after scaling.
    x = (
        r.standard_normal((M, K)) * r.choice([1e-3, 1.0, 50.0], size=(M, K // 32)).repeat(32, 1)
    ).astype(np.float32)
    x[0, :32] = 0.0
    raw, w_deq = ref.make_weight(r.standard_normal((40, K)).astype(np.float32), dtype)
    out = ops.matmul("cpu", x, raw, dtype, 40, K)
    want = ref.matmul(q16_act(x), w_deq)
    atol, rtol = TOL["matmul_q16_act"]
    scale = np.abs(want).max()
    np.testing.assert_allclose(out, want, atol=atol * scale, rtol=rtol)


def test_matmul_batched_rows_equal_single_rows():
    """A token's output does not depend on how many rows share the call (tile sizes 1..4)."""
    r = rng(11)
    x = r.standard_normal((7, 128)).astype(np.float32)
    for dtype in WEIGHT_DTYPES:
        raw, _ = ref.make_weight(r.standard_normal((19, 128)).astype(np.float32), dtype)
        full = ops.matmul("cpu", x, raw, dtype, 19, 128)
        for m in range(7):
            np.testing.assert_array_equal(
                ops.matmul("cpu", x[m : m + 1], raw, dtype, 19, 128)[0], full[m]
            )
