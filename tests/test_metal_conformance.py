"""Every Metal kernel, run by the MSL simulator (backend "metal-sim"), against the CPU backend:
awkward sizes (1, 31, 32, 33, 4097), every weight dtype, shuffled block tables, and the
simulator's three thread orders (in order, reverse, seeded random). Tolerances live in TOL."""

from __future__ import annotations

import os

import numpy as np
import pytest

import op_refs as ref
from op_refs import paged_batch as make_batch

core = pytest.importorskip("longbow._core")
if "metal-sim" not in core.available_backends():
    pytest.skip("this build has no metal-sim backend", allow_module_level=True)
ops = core.ops

# metal-sim always; real Metal too when LONGBOW_TEST_BACKENDS lists it (macOS CI) and it exists.
_wanted = os.environ.get("LONGBOW_TEST_BACKENDS", "").split(",")
HAS_METAL = "metal" in _wanted and "metal" in core.available_backends()
SIZES = [1, 31, 32, 33, 4097]
WEIGHT_DTYPES = ["f32", "f16", "bf16", "q8_0", "q4_0", "q4_1"]
ORDERS = [("inorder", 0), ("reverse", 0), ("random", 7)]

# One tolerance table: (atol, rtol) of metal-sim vs cpu. Reductions run in a different order
# (SIMD-group sums, 8x8 tiles) and in f32 where the CPU sometimes uses f64.
TOL = {
    "matmul": (2e-4, 2e-4),
    # Quantized weights: the CPU multiplies activations quantized to blocks, the Metal kernels
    # use the f32 activations, so vs cpu only an NMSE bound; vs the exact dequantized numpy
    # product "matmul" applies (atol scaled by sqrt(K)).
    "matmul_quant_nmse_vs_cpu": 1e-4,
    "embed": (1e-6, 1e-6),
    "rms_norm": (1e-5, 1e-5),
    "rope": (2e-5, 2e-5),
    "silu_mul": (1e-6, 1e-5),
    "softcap": (1e-5, 1e-6),
    "add": (0.0, 0.0),
    "get_rows": (0.0, 0.0),
    "kv_write": (0.0, 0.0),
    "attention": (2e-5, 2e-4),
    "logprob": (1e-4, 1e-5),
}


CASES = [("metal-sim", o) for o in ORDERS] + ([("metal", None)] if HAS_METAL else [])


@pytest.fixture(params=CASES, ids=[b if o is None else f"sim-{o[0]}" for b, o in CASES])
def backend(request):
    """The backend under test; metal-sim once per simulator thread order."""
    name, order = request.param
    if order is None:
        yield name
        return
    old = core.sim_thread_order()
    core.set_sim_thread_order(*order)
    yield name
    core.set_sim_thread_order(*old)


def rng(seed):
    return np.random.default_rng(seed)


def close(got, want, key):
    atol, rtol = TOL[key]
    np.testing.assert_allclose(got, want, atol=atol, rtol=rtol)


def check_matmul(got, cpu, dtype, exact, K):
    """Float weights: close to cpu. Quantized: NMSE vs cpu, close to the exact f64 product."""
    if dtype in ("q8_0", "q4_0", "q4_1"):
        err = float(np.sum((got - cpu) ** 2) / max(np.sum(cpu.astype(np.float64) ** 2), 1e-30))
        assert err <= TOL["matmul_quant_nmse_vs_cpu"]
        atol, rtol = TOL["matmul"]
        np.testing.assert_allclose(got, exact, atol=atol * np.sqrt(K), rtol=rtol)
    else:
        close(got, cpu, "matmul")


# ---- matmul: matrix-vector (M < 8) and simdgroup-tiled (M >= 8) kernels ----


@pytest.mark.parametrize("dtype", WEIGHT_DTYPES)
@pytest.mark.parametrize(
    "M,N,K",
    [
        (1, 1, 32),
        (1, 33, 64),
        (1, 4097, 32),
        (31, 32, 96),
        (33, 31, 32),
        (32, 33, 64),
        (2, 17, 4128),
    ],
)
def test_matmul(backend, dtype, M, N, K):
    r = rng(M * 1000 + N + K)
    x = r.standard_normal((M, K)).astype(np.float32)
    raw, w_deq = ref.make_weight(r.standard_normal((N, K)).astype(np.float32), dtype)
    check_matmul(
        ops.matmul(backend, x, raw, dtype, N, K),
        ops.matmul("cpu", x, raw, dtype, N, K),
        dtype,
        ref.matmul(x, w_deq),
        K,
    )


@pytest.mark.parametrize("dtype", ["f32", "f16", "bf16"])
@pytest.mark.parametrize("M", [1, 31, 33])
@pytest.mark.parametrize("K", [1, 31, 33])
def test_matmul_float_odd_k_bias_accumulate(backend, dtype, M, K):
    r = rng(M + 100 * K)
    N = 33
    x = r.standard_normal((M, K)).astype(np.float32)
    raw, _ = ref.make_weight(r.standard_normal((N, K)).astype(np.float32), dtype)
    bias = r.standard_normal(N).astype(np.float32)
    acc = r.standard_normal((M, N)).astype(np.float32)
    got = ops.matmul(backend, x, raw, dtype, N, K, bias=bias, accumulate_into=acc)
    close(got, ops.matmul("cpu", x, raw, dtype, N, K, bias=bias, accumulate_into=acc), "matmul")


@pytest.mark.parametrize("dtype", ["q8_0", "q4_1"])
def test_matmul_quant_bias_accumulate_tiled(backend, dtype):
    r = rng(3)
    M, N, K = 33, 40, 64
    x = r.standard_normal((M, K)).astype(np.float32)
    raw, w_deq = ref.make_weight(r.standard_normal((N, K)).astype(np.float32), dtype)
    bias = r.standard_normal(N).astype(np.float32)
    acc = r.standard_normal((M, N)).astype(np.float32)
    got = ops.matmul(backend, x, raw, dtype, N, K, bias=bias, accumulate_into=acc)
    check_matmul(
        got,
        ops.matmul("cpu", x, raw, dtype, N, K, bias=bias, accumulate_into=acc),
        dtype,
        ref.matmul(x, w_deq, bias, acc),
        K,
    )


# ---- embed, rms_norm, rope, elementwise ----


@pytest.mark.parametrize("dtype", WEIGHT_DTYPES)
@pytest.mark.parametrize("T", [1, 33])
def test_embed(backend, dtype, T):
    r = rng(T)
    vocab, dim = 37, (33 if dtype in ("f32", "f16", "bf16") else 64)
    raw, _ = ref.make_weight(r.standard_normal((vocab, dim)).astype(np.float32), dtype)
    ids = r.integers(0, vocab, T).astype(np.int32)
    close(
        ops.embed(backend, ids, raw, dtype, vocab, dim),
        ops.embed("cpu", ids, raw, dtype, vocab, dim),
        "embed",
    )
    close(
        ops.embed(backend, ids, raw, dtype, vocab, dim, 5.5),
        ops.embed("cpu", ids, raw, dtype, vocab, dim, 5.5),
        "embed",
    )


@pytest.mark.parametrize("dim", SIZES)
def test_rms_norm(backend, dim):
    r = rng(dim)
    x = r.standard_normal((3, dim)).astype(np.float32)
    w = r.standard_normal(dim).astype(np.float32)
    close(ops.rms_norm(backend, x, w, 1e-5), ops.rms_norm("cpu", x, w, 1e-5), "rms_norm")


@pytest.mark.parametrize("interleaved", [False, True])
@pytest.mark.parametrize(
    "T,H,Hkv,D,rot", [(1, 1, 1, 2, 2), (33, 3, 1, 64, 64), (31, 4, 2, 32, 16), (2, 2, 2, 128, 128)]
)
def test_rope(backend, interleaved, T, H, Hkv, D, rot):
    r = rng(T * H + D)
    q = r.standard_normal((T, H, D)).astype(np.float32)
    k = r.standard_normal((T, Hkv, D)).astype(np.float32)
    pos = r.integers(0, 100_000, T).astype(np.int32)
    inv_freq = (10000.0 ** (-np.arange(0, rot, 2) / rot)).astype(np.float32)
    gq, gk = ops.rope(backend, q, k, pos, inv_freq, interleaved)
    wq, wk = ops.rope("cpu", q, k, pos, inv_freq, interleaved)
    close(gq, wq, "rope")
    close(gk, wk, "rope")


@pytest.mark.parametrize("n", SIZES)
def test_elementwise(backend, n):
    r = rng(n)
    g = (r.standard_normal((1, n)) * 4).astype(np.float32)
    u = r.standard_normal((1, n)).astype(np.float32)
    close(ops.glu(backend, g, u), ops.glu("cpu", g, u), "silu_mul")
    close(ops.glu(backend, g, u, "gelu_tanh"), ops.glu("cpu", g, u, "gelu_tanh"), "silu_mul")
    close(ops.softcap(backend, g[0] * 10, 30.0), ops.softcap("cpu", g[0] * 10, 30.0), "softcap")
    close(ops.add(backend, g[0], u[0]), ops.add("cpu", g[0], u[0]), "add")
    rows = r.integers(0, 1, 5).astype(np.int32)
    close(ops.get_rows(backend, g, rows), ops.get_rows("cpu", g, rows), "get_rows")


def test_silu_mul_rows_and_get_rows(backend):
    r = rng(9)
    g = r.standard_normal((33, 31)).astype(np.float32)
    u = r.standard_normal((33, 31)).astype(np.float32)
    close(ops.glu(backend, g, u), ops.glu("cpu", g, u), "silu_mul")
    rows = r.permutation(33)[:17].astype(np.int32)
    close(ops.get_rows(backend, g, rows), ops.get_rows("cpu", g, rows), "get_rows")


# ---- KV cache ----


@pytest.mark.parametrize("cache_dtype", [np.float32, np.float16])
@pytest.mark.parametrize("T", [1, 33])
def test_kv_write(backend, cache_dtype, T):
    r = rng(T)
    nb, bs, hkv, d = 8, 16, 2, 32
    k = r.standard_normal((T, hkv, d)).astype(np.float32)
    v = r.standard_normal((T, hkv, d)).astype(np.float32)
    kc = r.standard_normal((nb, bs, hkv, d)).astype(cache_dtype)
    vc = r.standard_normal((nb, bs, hkv, d)).astype(cache_dtype)
    slots = r.permutation(nb * bs)[:T].astype(np.int32)
    slots[0] = -1  # a padding token is skipped
    got = ops.kv_write(backend, k, v, kc, vc, slots)
    want = ops.kv_write("cpu", k, v, kc, vc, slots)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("name", ["q8_0", "q4_0", "q4_1"])
def test_kv_write_block_types(backend, name):
    # Byte for byte the CPU's quantization (ggml's reference rules), a thread per 32-value group.
    r = rng(6)
    T, nb, bs, hkv, d = 9, 4, 4, 2, 64
    k = (r.standard_normal((T, hkv, d)) * 4).astype(np.float32)
    v = r.standard_normal((T, hkv, d)).astype(np.float32)
    k[3, 1] = 0.0  # an all-zero group: d = 0
    k[4, 0, :32] = np.linspace(-1.0, 1.0, 32)  # ties of the rounding
    row = core.kv_row_bytes(name, d)
    kc = np.full((nb, bs, hkv, row), 0xAB, np.uint8)
    vc = kc.copy()
    slots = r.permutation(nb * bs)[:T].astype(np.int32)
    slots[0] = -1
    got = ops.kv_write(backend, k, v, kc, vc, slots, cache_dtype=name)
    want = ops.kv_write("cpu", k, v, kc, vc, slots, cache_dtype=name)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("name", ["q8_0", "q4_0", "q4_1"])
@pytest.mark.parametrize("variant", ["split", "auto", "fused_decode", "flash_prefill"])
def test_attention_block_types(backend, name, variant):
    # The CPU over the same quantized cache (itself checked against float64 in test_kv_quant.py);
    # GQA, a decode, a prefill and chunks, and soft-capping on the fused kernels' own variants.
    from test_kv_quant import quantize_cache

    r = rng(8)
    hkv, d, bs = 2, 64, 16
    kc, vc, bt, qs, sl, pos = make_batch(
        r, [1, 31, 33, 300, 32], [1, 31, 1, 5, 2], hkv, d, bs, np.float32
    )
    kq, vq = quantize_cache(kc, name), quantize_cache(vc, name)
    q = r.standard_normal((int(qs[-1]), hkv * 3, d)).astype(np.float32)
    args = (q, kq, vq, bt, qs, sl, pos, d**-0.5)
    for opts in ({}, {"logit_softcap": 5.0, "sliding_window": 20}):
        close(
            ops.attention(backend, *args, variant, cache_dtype=name, **opts),
            ops.attention("cpu", *args, "split", cache_dtype=name, **opts),
            "attention",
        )


@pytest.mark.parametrize(
    "block_shape,dtype", [((16, 2, 8), np.float16), ((3, 1, 3), np.uint8), ((1, 1, 33), np.float32)]
)
def test_copy_blocks(backend, block_shape, dtype):
    r = rng(4)
    planes, nb = 4, 9
    cache = (r.standard_normal((planes, nb, *block_shape)) * 50).astype(dtype)
    pairs = np.array([[1, 5], [2, 6], [5, 7], [3, 3]], np.int32)  # 5 -> 7 after 1 -> 5: in order
    np.testing.assert_array_equal(
        ops.copy_blocks(backend, cache, pairs), ops.copy_blocks("cpu", cache, pairs)
    )


@pytest.mark.parametrize("cache_dtype", [np.float32, np.float16])
@pytest.mark.parametrize("group", [1, 3])
def test_attention(backend, cache_dtype, group):
    r = rng(group)
    hkv, d, bs = 2, 32, 16
    ctx_lens, new_lens = [1, 31, 33, 70, 32], [1, 31, 1, 5, 2]  # prefill, decode and chunks
    kc, vc, bt, qs, sl, pos = make_batch(r, ctx_lens, new_lens, hkv, d, bs, cache_dtype)
    q = r.standard_normal((int(qs[-1]), hkv * group, d)).astype(np.float32)
    args = (q, kc, vc, bt, qs, sl, pos, d**-0.5)
    close(ops.attention(backend, *args), ops.attention("cpu", *args, "split"), "attention")


@pytest.mark.parametrize("variant", ["split", "auto", "fused_decode", "flash_prefill"])
@pytest.mark.parametrize("window,softcap", [(1, 0.0), (15, 5.0), (16, 50.0), (0, 5.0), (40, 0.0)])
def test_attention_window_softcap(backend, variant, window, softcap):
    r = rng(window + 3)
    hkv, d, bs = 2, 32, 16
    kc, vc, bt, qs, sl, pos = make_batch(
        r, [1, 31, 33, 70, 32], [1, 31, 1, 5, 2], hkv, d, bs, np.float16
    )
    q = (r.standard_normal((int(qs[-1]), hkv * 3, d)) * 3.0).astype(np.float32)
    args = (q, kc, vc, bt, qs, sl, pos, d**-0.5)
    opts = {"sliding_window": window, "logit_softcap": softcap}
    close(
        ops.attention(backend, *args, variant, **opts),
        ops.attention("cpu", *args, "split", **opts),
        "attention",
    )


def test_attention_long_context_odd_head_dim(backend):
    r = rng(5)
    kc, vc, bt, qs, sl, pos = make_batch(r, [4097], [1], 1, 33, 16, np.float16)
    q = r.standard_normal((1, 2, 33)).astype(np.float32)
    args = (q, kc, vc, bt, qs, sl, pos, 0.17)
    close(ops.attention(backend, *args), ops.attention("cpu", *args, "split"), "attention")


# ---- sample: ids identical to the CPU rule, logprobs close ----


def random_params(r, vocab):
    return ref.random_sample_params(
        r, vocab, temperatures=[0.0, 0.3, 0.8, 1.7], top_ks=[1, 2, 5, 40]
    )


def check_sample(backend, logits, params):
    ids, lps = ops.sample(backend, logits, params)
    want_ids, want_lps = ops.sample("cpu", logits, params)
    np.testing.assert_array_equal(ids, want_ids, err_msg=str(params))
    close(lps, want_lps, "logprob")


@pytest.mark.parametrize("vocab", [1, 31, 32, 33, 4097])
def test_sample(backend, vocab):
    r = rng(vocab)
    rows = 6
    logits = (r.standard_normal((rows, vocab)) * 3).astype(np.float32)
    check_sample(backend, logits, [random_params(r, vocab) for _ in range(rows)])


def test_sample_greedy_ties_lowest_index(backend):
    logits = np.zeros((2, 100), np.float32)
    logits[0, [7, 40, 99]] = 5.0
    logits[1, [0, 1]] = -1.0
    check_sample(backend, logits, [{}, {}])


def test_sample_greedy_nan_rows_match_cpu(backend):
    # The CPU rule: the first index whose value beats all before it (NaN never wins; a NaN at 0 is
    # never beaten). An all-NaN row used to give id vocab_size and read past the row.
    logits = np.full((4, 40), np.nan, np.float32)
    logits[1, 6] = -np.inf
    logits[2, [0, 5]] = [1.0, 3.0]
    logits[3, :] = -np.inf
    logits[3, 0] = np.nan
    check_sample(backend, logits, [{}, {}, {}, {"penalty_tokens": [1], "repetition_penalty": 1.0}])


def check_sample_top(backend, logits, params, max_top):
    """Ids and top ids identical to the CPU's and to numpy's order, logprobs close."""
    got = ops.sample(backend, logits, params, max_top=max_top)
    want = ops.sample("cpu", logits, params, max_top=max_top)
    np.testing.assert_array_equal(got[0], want[0], err_msg=str(params))
    np.testing.assert_array_equal(got[2], want[2], err_msg=str(params))
    close(got[1], want[1], "logprob")
    close(got[3], want[3], "logprob")
    for i, p in enumerate(params):
        k = p.get("top_logprobs", 0)
        np.testing.assert_array_equal(
            got[2][i, :k], ref.top_logprobs(logits[i], k)[0], err_msg=f"row {i}"
        )


@pytest.mark.parametrize("vocab", [1, 31, 32, 33, 4097])
def test_sample_top_logprobs(backend, vocab):
    r = rng(200 + vocab)
    max_top = 20
    logits = (r.standard_normal((5, vocab)) * 3).astype(np.float32)
    logits[1] = np.round(logits[1])  # many ties: lower id first
    params = [dict(random_params(r, vocab), top_logprobs=k) for k in [max_top, 7, 0, 1, 13]]
    check_sample_top(backend, logits, params, max_top)


def test_sample_top_logprobs_special_rows(backend):
    logits = np.zeros((7, 40), np.float32)
    logits[0, :] = -np.inf
    logits[1, [3, 30]] = np.nan  # NaN ranks last; the row's logprobs are NaN
    logits[1, 5] = 2.0
    logits[2, [1, 4]] = np.inf
    logits[3, [2, 6, 7]] = 1.5
    logits[4, ::2] = -0.0  # ties +0: lower id first
    logits[4, 1] = -1.0
    logits[5, :] = np.nan
    logits[5, 6] = -np.inf  # greedy keeps the NaN at 0 (never beaten), as the CPU
    logits[6, :] = np.nan  # greedy: 0, not out of range
    params = [{"top_logprobs": k} for k in [5, 20, 3, 4, 8, 2, 3]]
    params[2].update(temperature=0.5, seed=1)
    check_sample_top(backend, logits, params, 20)


def test_sample_top_logprobs_bad_max_top(backend):
    with pytest.raises(ValueError, match=r"sample\] expected max_top in 0..20, found 21"):
        ops.sample(backend, np.zeros((1, 8), np.float32), [{}], max_top=21)


@pytest.mark.parametrize("vocab", [5, 300, 4097])
def test_sample_speculative_rows(backend, vocab):
    """Rows that write their distribution to a probs row, and rows that rejection-sample a draft
    against one: the CPU's ids, and the same distributions."""
    r = rng(50 + vocab)
    rows = 8
    logits = (r.standard_normal((rows, vocab)) * 2).astype(np.float32)
    writers = [dict(random_params(r, vocab), probs_row=i, stream=1) for i in range(rows)]
    empty = np.zeros((rows, vocab), np.float32)
    ids, lps, probs = ops.sample(backend, logits, writers, probs=empty)
    want_ids, want_lps, want_probs = ops.sample("cpu", logits, writers, probs=empty)
    np.testing.assert_array_equal(ids, want_ids, err_msg=str(writers))
    close(lps, want_lps, "logprob")
    np.testing.assert_allclose(probs, want_probs, atol=1e-5)
    # Verify rows against those distributions: drafts that are likely, unlikely or impossible.
    q = np.stack([r.dirichlet(np.full(vocab, 0.5)).astype(np.float32) for _ in range(rows)])
    q[:, : vocab // 3] = 0.0
    readers = [
        dict(random_params(r, vocab), draft_row=i, draft_token=int(r.integers(vocab)))
        for i in range(rows)
    ]
    for qrow, p in zip(q, readers):
        qrow[p["draft_token"]] += 0.1
    got = ops.sample(backend, logits, readers, probs=q)[0]
    want = ops.sample("cpu", logits, readers, probs=q)[0]
    np.testing.assert_array_equal(got, want, err_msg=str(readers))


@pytest.mark.slow
@pytest.mark.parametrize("vocab", [49152])
def test_sample_large_vocab(backend, vocab):
    r = rng(vocab)
    logits = (r.standard_normal((4, vocab)) * 3).astype(np.float32)
    check_sample(backend, logits, [random_params(r, vocab) for _ in range(4)])
