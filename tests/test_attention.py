"""Attention variants (split baseline, fused decode, flash prefill, auto) on the CPU backend
against the split reference and a float64 numpy reference: context lengths 1..8192, head dims
64/128, GQA 1/3/4, mixed varlen batches (prefill, chunked prefill mid-sequence, decode),
shuffled block tables, f16/f32 caches, extreme logits, odd block sizes and head dims; sliding
windows (1, 3, block_size - 1, block_size, past the context) and logit soft-capping (5, 50) on
decode, prefill and mixed batches, blocks wholly outside the window never read, and the
argument checks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from op_refs import paged_batch as make_batch, attention64 as ref64

ops = pytest.importorskip("longbow._core").ops

VARIANTS = ["auto", "fused_decode", "flash_prefill"]
# (atol, rtol) vs the float64 reference and vs split; extreme logits get their own row because
# f32 scores of magnitude ~1e3 carry ~1e-4 absolute rounding, amplified by the softmax.
TOL = {
    "f32": (2e-5, 1e-4),
    "f16": (2e-5, 1e-4),  # both sides read the same f16 cache values
    "large_logits": (2e-3, 2e-3),
}


def check_all(q, batch, scale, tol_key, variants=VARIANTS, window=0, softcap=0.0):
    """Split and each variant vs float64, and each variant vs split (window / softcap: 0 = off)."""
    kc, vc, bt, qs, sl, pos = batch
    want = ref64(q, kc, vc, bt, qs, sl, pos, scale, window, softcap)
    atol, rtol = TOL[tol_key]
    opts = {"sliding_window": window, "logit_softcap": softcap}
    split = ops.attention("cpu", q, kc, vc, bt, qs, sl, pos, scale, "split", **opts)
    np.testing.assert_allclose(
        split, want, atol=atol, rtol=rtol, err_msg=f"split vs float64 {opts}"
    )
    for v in variants:
        got = ops.attention("cpu", q, kc, vc, bt, qs, sl, pos, scale, v, **opts)
        np.testing.assert_allclose(
            got, want, atol=atol, rtol=rtol, err_msg=f"{v} vs float64 {opts}"
        )
        np.testing.assert_allclose(got, split, atol=atol, rtol=rtol, err_msg=f"{v} vs split {opts}")


def dtype_key(cache_dtype):
    return "f16" if cache_dtype == np.float16 else "f32"


# Mixed batch: a length-1 row, a full 17-token prefill, a decode at 255, a chunk of 40 queries
# starting mid-sequence at 216 of 256, a 3-token verify-like chunk at 2049, a decode at 2049.
MIXED_CTX = [1, 17, 255, 256, 2049, 2049]
MIXED_NEW = [1, 17, 1, 40, 3, 1]


@pytest.mark.parametrize("cache_dtype", [np.float32, np.float16])
@pytest.mark.parametrize("head_dim", [64, 128])
@pytest.mark.parametrize("group", [1, 3, 4])
def test_mixed_batch(cache_dtype, head_dim, group):
    r = np.random.default_rng(100 * group + head_dim)
    hkv = 2
    batch = make_batch(r, MIXED_CTX, MIXED_NEW, hkv, head_dim, 16, cache_dtype)
    q = r.standard_normal((int(batch[3][-1]), hkv * group, head_dim)).astype(np.float32)
    check_all(q, batch, head_dim**-0.5, dtype_key(cache_dtype))


@pytest.mark.parametrize("cache_dtype", [np.float32, np.float16])
def test_auto_decodes_generated_sequences_at_any_length(cache_dtype):
    # Sequences flagged as generated tokens (decode and speculative verify steps) take the decode
    # path whatever their query count, so a verify row is computed exactly as plain decoding would;
    # prompt chunks of more than two tokens keep flash prefill.
    r = np.random.default_rng(7)
    ctx, new = [1, 17, 255, 256, 2049, 2049], [1, 17, 1, 40, 9, 3]
    batch = make_batch(r, ctx, new, 2, 64, 16, cache_dtype)
    q = r.standard_normal((int(batch[3][-1]), 6, 64)).astype(np.float32)
    gen = np.array([1, 0, 1, 0, 1, 1], np.int32)
    auto = ops.attention("cpu", q, *batch, 64**-0.5, "auto", generated_seqs=gen)
    decode = ops.attention("cpu", q, *batch, 64**-0.5, "fused_decode")
    flash = ops.attention("cpu", q, *batch, 64**-0.5, "flash_prefill")
    qs = batch[3]
    for s, g in enumerate(gen):
        rows = slice(int(qs[s]), int(qs[s + 1]))
        want = decode if g or new[s] <= 2 else flash
        np.testing.assert_array_equal(auto[rows], want[rows], err_msg=f"sequence {s}")
    # Unflagged, the 9- and 3-token sequences run flash prefill.
    plain = ops.attention("cpu", q, *batch, 64**-0.5, "auto")
    rows = slice(int(qs[4]), int(qs[6]))
    np.testing.assert_array_equal(plain[rows], flash[rows])
    with pytest.raises(ValueError, match="generated_seqs"):
        ops.attention("cpu", q, *batch, 64**-0.5, "auto", generated_seqs=gen[:3])


@pytest.mark.parametrize("cache_dtype", [np.float32, np.float16])
def test_context_8192(cache_dtype):
    # Decode tokens at 8192 and 8191 (flash-decoding splits: few items for the threads) and a
    # 16-token chunk ending at 8192; few heads keep the default run fast.
    r = np.random.default_rng(8192)
    batch = make_batch(r, [8192, 8191, 8192], [1, 1, 16], 1, 64, 16, cache_dtype)
    q = r.standard_normal((18, 3, 64)).astype(np.float32)
    check_all(q, batch, 0.125, dtype_key(cache_dtype))


@pytest.mark.parametrize("ctx", [1, 17, 255, 256, 2049, 8192])
def test_single_decode_splits(ctx):
    # One sequence, one kv head: the fused decode path splits long contexts across threads.
    r = np.random.default_rng(ctx)
    batch = make_batch(r, [ctx], [1], 1, 64, 16, np.float16)
    q = r.standard_normal((1, 4, 64)).astype(np.float32)
    check_all(q, batch, 0.125, "f16")


@pytest.mark.slow  # ~9 s, mostly the float64 reference
def test_full_prefill_2049():
    r = np.random.default_rng(2049)
    batch = make_batch(r, [2049], [2049], 1, 64, 16, np.float16)
    q = r.standard_normal((2049, 3, 64)).astype(np.float32)
    check_all(q, batch, 0.125, "f16")


@pytest.mark.parametrize("q_scale", [1e3, 1e-3])
@pytest.mark.parametrize("cache_dtype", [np.float32, np.float16])
def test_extreme_logits(q_scale, cache_dtype):
    r = np.random.default_rng(7)
    batch = make_batch(r, [1, 300, 300, 70], [1, 1, 60, 70], 2, 64, 16, cache_dtype)
    q = (r.standard_normal((132, 6, 64)) * q_scale).astype(np.float32)
    key = "large_logits" if q_scale > 1 else dtype_key(cache_dtype)
    check_all(q, batch, 0.125, key)
    out = ops.attention("cpu", q, *batch, 0.125, "auto")
    assert np.all(np.isfinite(out))


@pytest.mark.parametrize("block_size", [1, 7, 64, 128])
def test_odd_block_sizes(block_size):
    # Tiles are whole blocks: blocks smaller than, not dividing, equal to and larger than a tile.
    r = np.random.default_rng(block_size)
    batch = make_batch(r, [5, 333, 333, 600], [5, 1, 100, 1], 2, 64, block_size, np.float32)
    q = r.standard_normal((107, 6, 64)).astype(np.float32)
    check_all(q, batch, 0.125, "f32")


@pytest.mark.parametrize("head_dim", [20, 36])
def test_head_dim_not_multiple_of_8(head_dim):
    r = np.random.default_rng(head_dim)
    batch = make_batch(r, [40, 300], [40, 1], 1, head_dim, 16, np.float16)
    q = r.standard_normal((41, 3, head_dim)).astype(np.float32)
    check_all(q, batch, head_dim**-0.5, "f16")


# ---- sliding window and logit soft-capping ----

# Windows with block size 16: one key, a few, block_size - 1, block_size, a tile edge (64), and one
# longer than every context (the plain causal result).
WINDOWS = [1, 3, 15, 16, 64, 5000]
SOFTCAPS = [0.0, 5.0, 50.0]


@pytest.mark.parametrize("cache_dtype", [np.float32, np.float16])
@pytest.mark.parametrize(
    "window,softcap", [(w, c) for w in [0, *WINDOWS] for c in SOFTCAPS if w or c]
)
def test_window_softcap_mixed_batch(window, softcap, cache_dtype):
    # Decode rows (1 token), a full prefill, a chunk mid-sequence and a verify-like chunk, with
    # shuffled block tables; q scaled so that scores reach the cap (both off: test_mixed_batch).
    r = np.random.default_rng(1000 + window + int(softcap))
    batch = make_batch(r, MIXED_CTX, MIXED_NEW, 2, 64, 16, cache_dtype)
    q = (r.standard_normal((int(batch[3][-1]), 6, 64)) * 3.0).astype(np.float32)
    check_all(q, batch, 0.125, dtype_key(cache_dtype), window=window, softcap=softcap)


@pytest.mark.parametrize("block_size", [1, 7, 32])
def test_window_odd_block_sizes(block_size):
    # Windows of block_size - 1 and block_size with blocks smaller than, not dividing and equal to
    # half a key tile; a window start inside a block.
    r = np.random.default_rng(block_size)
    batch = make_batch(r, [5, 333, 333, 600], [5, 1, 100, 1], 2, 64, block_size, np.float32)
    q = r.standard_normal((107, 6, 64)).astype(np.float32)
    for window in sorted({max(block_size - 1, 1), block_size, 100}):
        check_all(
            q, batch, 0.125, "f32", window=window, softcap=30.0 if window == block_size else 0.0
        )


@pytest.mark.parametrize("head_dim", [20, 36, 128])
def test_window_softcap_head_dims(head_dim):
    # Head dims that are not a multiple of 8 (generic tile loop) and 128 (SIMD items).
    r = np.random.default_rng(head_dim)
    batch = make_batch(r, [40, 300, 77], [40, 1, 2], 1, head_dim, 16, np.float16)
    q = (r.standard_normal((43, 3, head_dim)) * 2.0).astype(np.float32)
    check_all(q, batch, head_dim**-0.5, "f16", window=33, softcap=5.0)


@pytest.mark.parametrize("softcap", [0.0, 50.0])
@pytest.mark.parametrize("cache_dtype", [np.float32, np.float16])
def test_window_long_context_decode_splits(softcap, cache_dtype):
    # Long contexts with windows of 300 and 4000: the decode keys (and their flash-decoding splits)
    # cover the window only; a 16-token chunk at the end of the context.
    r = np.random.default_rng(77)
    batch = make_batch(r, [8192, 8191, 8192], [1, 1, 16], 1, 64, 16, cache_dtype)
    q = r.standard_normal((18, 3, 64)).astype(np.float32)
    for window in (300, 4000):
        check_all(q, batch, 0.125, dtype_key(cache_dtype), window=window, softcap=softcap)


def test_softcap_extreme_logits():
    # Scores of ~1e3 are capped to +-cap: the softmax sees bounded logits (all finite).
    r = np.random.default_rng(8)
    batch = make_batch(r, [1, 300, 300, 70], [1, 1, 60, 70], 2, 64, 16, np.float16)
    q = (r.standard_normal((132, 6, 64)) * 1e3).astype(np.float32)
    check_all(q, batch, 0.125, "large_logits", window=50, softcap=10.0)
    out = ops.attention("cpu", q, *batch, 0.125, "auto", sliding_window=50, logit_softcap=10.0)
    assert np.all(np.isfinite(out))


def poison_outside_window(batch, window, margin=128):
    """NaN in K and V of every key that lies `margin`-aligned before the window of each
    sequence's first query: a kernel that read them (even masked: p = 0 times NaN) gives NaN."""
    kc, vc, bt, qs, sl, pos = batch
    kc, vc = kc.copy(), vc.copy()
    bs = kc.shape[1]
    poisoned = 0
    for s in range(len(sl)):
        first = int(pos[qs[s]]) - window + 1
        cut = max(first, 0) // margin * margin
        for j in range(cut):
            kc[bt[s, j // bs], j % bs] = np.nan
            vc[bt[s, j // bs], j % bs] = np.nan
        poisoned += cut
    assert poisoned > 0
    return kc, vc, bt, qs, sl, pos


@pytest.mark.parametrize("variant", ["split", *VARIANTS])
@pytest.mark.parametrize("cache_dtype", [np.float32, np.float16])
def test_window_skips_keys_outside(variant, cache_dtype):
    # Keys wholly before the window are never read: with NaN there, the output is the same as
    # with the real values (the cost of a small window does not grow with the context).
    r = np.random.default_rng(9)
    batch = make_batch(r, [2049, 1000, 600], [1, 37, 2], 2, 64, 16, cache_dtype)
    q = r.standard_normal((40, 6, 64)).astype(np.float32)
    want = ops.attention("cpu", q, *batch, 0.125, "split", sliding_window=100, logit_softcap=20.0)
    got = ops.attention(
        "cpu",
        q,
        *poison_outside_window(batch, 100),
        0.125,
        variant,
        sliding_window=100,
        logit_softcap=20.0,
    )
    assert np.all(np.isfinite(got)), variant
    np.testing.assert_allclose(got, want, atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize("variant", ["split", *VARIANTS])
def test_window_softcap_rejected(variant):
    r = np.random.default_rng(3)
    kc, vc, bt, qs, sl, pos = make_batch(r, [20], [2], 1, 32, 16, np.float32)
    q = r.standard_normal((2, 2, 32)).astype(np.float32)
    args = (q, kc, vc, bt, qs, sl, pos, 0.1, variant)
    with pytest.raises(
        ValueError, match=r"\[cpu.attention\] sliding_window: expected >= 0 \(0 = off\), found -1"
    ):
        ops.attention("cpu", *args, sliding_window=-1)
    for bad in [-1.0, float("nan"), float("inf")]:
        with pytest.raises(
            ValueError, match=r"\[cpu.attention\] logit_softcap: expected a finite value >= 0"
        ):
            ops.attention("cpu", *args, logit_softcap=bad)
    # An empty batch is still checked.
    with pytest.raises(ValueError, match="sliding_window"):
        ops.attention(
            "cpu",
            q[:0],
            kc,
            vc,
            bt[:0],
            np.zeros(1, np.int32),
            sl[:0],
            pos[:0],
            0.1,
            variant,
            sliding_window=-5,
        )


@pytest.mark.parametrize("variant", VARIANTS)
def test_bad_positions_rejected(variant):
    r = np.random.default_rng(3)
    kc, vc, bt, qs, sl, pos = make_batch(r, [20], [2], 1, 32, 16, np.float32)
    q = r.standard_normal((2, 2, 32)).astype(np.float32)
    bad = pos.copy()
    bad[1] = 20
    with pytest.raises(ValueError, match=r"\[cpu.attention\] positions\[1\]"):
        ops.attention("cpu", q, kc, vc, bt, qs, sl, bad, 0.1, variant)
    bad_bt = bt.copy()
    bad_bt[0, 0] = kc.shape[0]
    with pytest.raises(ValueError, match=r"block_tables\[0, 0\]"):
        ops.attention("cpu", q, kc, vc, bad_bt, qs, sl, pos, 0.1, variant)


def test_empty_batch():
    kc = np.zeros((2, 16, 1, 64), np.float16)
    out = ops.attention(
        "cpu",
        np.zeros((0, 2, 64), np.float32),
        kc,
        kc,
        np.zeros((0, 1), np.int32),
        np.zeros(1, np.int32),
        np.zeros(0, np.int32),
        np.zeros(0, np.int32),
        0.1,
        "auto",
    )
    assert out.shape == (0, 2, 64)


CHILD = r"""
import sys, numpy as np
sys.path.insert(0, {tests!r})
import test_attention as ta
r = np.random.default_rng(11)
batch = ta.make_batch(r, [1, 255, 700, 2049], [1, 1, 30, 1], 2, 64, 16, np.float16)
q = r.standard_normal((33, 6, 64)).astype(np.float32)
ta.check_all(q, batch, 0.125, "f16")
print("ok")
"""


@pytest.mark.parametrize(
    "env",
    [
        {"LONGBOW_ATTN_DECODE_STAGE": "1"},
        {"LONGBOW_CPU_SIMD": "scalar"},
        {"LONGBOW_ATTN_DECODE_STAGE": "1", "LONGBOW_CPU_SIMD": "scalar"},
    ],
)
def test_env_selected_paths(env):
    # Env vars are read once per process: the decode stage-1 path and the scalar kernels run in a child.
    tests = str(Path(__file__).parent)
    res = subprocess.run(
        [sys.executable, "-c", CHILD.format(tests=tests)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.strip().endswith("ok")


def test_bad_decode_stage_env():
    code = (
        "import numpy as np\nfrom longbow._core import ops\nkc = np.zeros((2, 16, 1, 64), np.float32)\n"
        "ops.attention('cpu', np.zeros((1, 1, 64), np.float32), kc, kc, np.array([[1]], np.int32),"
        " np.array([0, 1], np.int32), np.array([1], np.int32), np.array([0], np.int32), 0.1, 'auto')\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "LONGBOW_ATTN_DECODE_STAGE": "3"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode != 0
    assert "LONGBOW_ATTN_DECODE_STAGE: expected 1 or 2, found '3'" in res.stderr
