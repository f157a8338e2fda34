"""Fused Metal attention kernels on metal-sim (attention_decode.metal, attention_flash.metal): every
variant (auto, fused_decode, flash_prefill; decode stage 1 and 2) against the CPU split path and a
float64 numpy reference. Context lengths 1, 17, 255, 256, 2049 (8192 slow), head dims 64/128 (and
odd ones), GQA 1/3/4 (and groups wider than one threadgroup), mixed varlen batches (prefill, chunked
prefill mid-sequence, decode), flash-decoding key splits, shuffled block tables, f16/f32 caches,
extreme logits, the simulator's three thread orders, and the tiny model end to end; sliding windows
(1, 3, block_size - 1, block_size, past the context) and logit soft-capping (5, 50) through the
`_window` / `_softcap` kernels, with keys outside the window never read."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import longbow
from op_refs import paged_batch as make_batch, attention64 as ref64

core = pytest.importorskip("longbow._core")
if "metal-sim" not in core.available_backends():
    pytest.skip("this build has no metal-sim backend", allow_module_level=True)
ops = core.ops

VARIANTS = ["auto", "fused_decode", "flash_prefill"]
ORDERS = [("inorder", 0), ("reverse", 0), ("random", 11)]
# (atol, rtol) vs the float64 reference and vs the CPU split path. Extreme logits: f32 scores of
# magnitude ~1e3 carry ~1e-4 absolute rounding that the softmax amplifies.
TOL = {
    "f32": (2e-5, 1e-4),
    "f16": (2e-5, 1e-4),  # every path reads the same f16 cache values
    "large_logits": (2e-3, 2e-3),
}


@pytest.fixture(params=ORDERS, ids=[o[0] for o in ORDERS])
def order(request):
    """Runs the test under one simulator thread order."""
    old = core.sim_thread_order()
    core.set_sim_thread_order(*request.param)
    yield request.param[0]
    core.set_sim_thread_order(*old)


def check_variants(q, batch, scale, tol_key, variants=VARIANTS, window=0, softcap=0.0):
    """Each metal-sim variant vs float64 and vs the CPU split path (window / softcap: 0 = off);
    returns the outputs by variant."""
    want = ref64(q, *batch, scale, window, softcap)
    atol, rtol = TOL[tol_key]
    opts = {"sliding_window": window, "logit_softcap": softcap}
    split = ops.attention("cpu", q, *batch, scale, "split", **opts)
    np.testing.assert_allclose(
        split, want, atol=atol, rtol=rtol, err_msg=f"cpu split vs float64 {opts}"
    )
    outs = {}
    for v in variants:
        got = ops.attention("metal-sim", q, *batch, scale, v, **opts)
        assert np.all(np.isfinite(got)), v
        np.testing.assert_allclose(
            got, want, atol=atol, rtol=rtol, err_msg=f"metal-sim {v} vs float64 {opts}"
        )
        np.testing.assert_allclose(
            got, split, atol=atol, rtol=rtol, err_msg=f"metal-sim {v} vs cpu split {opts}"
        )
        outs[v] = got
    return outs


def dtype_key(cache_dtype):
    return "f16" if cache_dtype == np.float16 else "f32"


# Mixed batch: a length-1 row, a full 17-token prefill, a decode at 255, a chunk of 40 queries
# starting mid-sequence at 216 of 256, a 3-token verify-like chunk at 2049 (decode tokens at 2049:
# test_single_decode_key_splits).
MIXED_CTX = [1, 17, 255, 256, 2049]
MIXED_NEW = [1, 17, 1, 40, 3]


# Each head dim and group once, both cache dtypes per head dim (the simulator is slow).
@pytest.mark.parametrize(
    "head_dim,group,cache_dtype",
    [
        (64, 1, np.float16),
        (64, 3, np.float32),
        (64, 4, np.float16),
        (128, 1, np.float32),
        (128, 3, np.float16),
        (128, 4, np.float32),
    ],
)
def test_mixed_batch(cache_dtype, head_dim, group):
    r = np.random.default_rng(100 * group + head_dim)
    batch = make_batch(r, MIXED_CTX, MIXED_NEW, 2, head_dim, 16, cache_dtype)
    q = r.standard_normal((int(batch[3][-1]), 2 * group, head_dim)).astype(np.float32)
    check_variants(q, batch, head_dim**-0.5, dtype_key(cache_dtype))


def test_auto_decodes_generated_sequences(order):
    # Generated sequences (decode, speculative verify) take the decode kernels at any query count:
    # the same as the CPU's auto with the same flags, and as fused decode.
    r = np.random.default_rng(11)
    ctx, new = [17, 255, 300, 2049], [17, 1, 9, 3]
    batch = make_batch(r, ctx, new, 2, 64, 16, np.float16)
    q = r.standard_normal((int(batch[3][-1]), 4, 64)).astype(np.float32)
    gen = np.array([0, 1, 1, 1], np.int32)
    got = ops.attention("metal-sim", q, *batch, 64**-0.5, "auto", generated_seqs=gen)
    want = ops.attention("cpu", q, *batch, 64**-0.5, "auto", generated_seqs=gen)
    atol, rtol = TOL["f16"]
    np.testing.assert_allclose(got, want, atol=atol, rtol=rtol)
    decode = ops.attention("metal-sim", q, *batch, 64**-0.5, "fused_decode")
    rows = slice(int(batch[3][1]), int(batch[3][-1]))
    np.testing.assert_allclose(got[rows], decode[rows], atol=1e-6, rtol=1e-6)


def test_mixed_batch_thread_orders(order):
    # Races between SIMD groups (missing barriers) show up as order-dependent results.
    r = np.random.default_rng(5)
    batch = make_batch(r, [1, 17, 255, 300], [1, 17, 1, 45], 2, 64, 16, np.float16)
    q = r.standard_normal((int(batch[3][-1]), 6, 64)).astype(np.float32)
    check_variants(q, batch, 0.125, "f16")


@pytest.mark.parametrize("ctx", [1, 17, 255, 256, 2049])
@pytest.mark.parametrize("head_dim", [64, 128])
def test_single_decode_key_splits(ctx, head_dim):
    # One decode token and one kv head: few threadgroups, so long contexts are split across
    # threadgroups (flash-decoding) and merged by attention_decode_merge_f32.
    r = np.random.default_rng(ctx + head_dim)
    batch = make_batch(r, [ctx], [1], 1, head_dim, 16, np.float16)
    q = r.standard_normal((1, 4, head_dim)).astype(np.float32)
    check_variants(q, batch, head_dim**-0.5, "f16")


def test_many_decode_tokens_unsplit():
    # 70 decode sequences x 2 kv heads (140 threadgroups) fill the GPU: no key splits.
    r = np.random.default_rng(40)
    ctx = [int(c) for c in r.integers(1, 600, 70)]
    batch = make_batch(r, ctx, [1] * 70, 2, 64, 16, np.float32)
    q = r.standard_normal((70, 6, 64)).astype(np.float32)
    check_variants(q, batch, 0.125, "f32", ["auto", "fused_decode"])


@pytest.mark.parametrize("q_scale", [1e3, 1e-3])
@pytest.mark.parametrize("cache_dtype", [np.float16, np.float32])
def test_extreme_logits(q_scale, cache_dtype):
    r = np.random.default_rng(7)
    batch = make_batch(r, [1, 300, 300, 70], [1, 1, 60, 70], 2, 64, 16, cache_dtype)
    q = (r.standard_normal((132, 6, 64)) * q_scale).astype(np.float32)
    check_variants(q, batch, 0.125, "large_logits" if q_scale > 1 else dtype_key(cache_dtype))


@pytest.mark.parametrize("head_dim", [8, 33, 72, 256])
def test_other_head_dims(head_dim):
    # Not multiples of 8 are zero-padded in the flash tiles; 256 uses 16-key tiles.
    r = np.random.default_rng(head_dim)
    batch = make_batch(r, [40, 70, 2], [40, 1, 2], 1, head_dim, 16, np.float32)
    q = r.standard_normal((43, 2, head_dim)).astype(np.float32)
    check_variants(q, batch, head_dim**-0.5, "f32")


@pytest.mark.parametrize("group,hkv", [(9, 1), (40, 1), (8, 2)])
def test_wide_groups(group, hkv):
    # Groups wider than one threadgroup: decode takes 8 heads per threadgroup, flash 32 rows.
    r = np.random.default_rng(group)
    batch = make_batch(r, [37, 300], [37, 1], hkv, 16, 16, np.float16)
    q = r.standard_normal((38, hkv * group, 16)).astype(np.float32)
    check_variants(q, batch, 0.25, "f16")


@pytest.mark.parametrize("block_size", [1, 5, 32])
def test_odd_block_sizes(block_size):
    r = np.random.default_rng(block_size)
    batch = make_batch(r, [70, 300, 9], [35, 1, 2], 2, 32, block_size, np.float32)
    q = r.standard_normal((38, 4, 32)).astype(np.float32)
    check_variants(q, batch, 32**-0.5, "f32")


def test_length_one_rows_and_empty_sequences():
    # Sequences of one token at position 0 (one key each), a sequence with no query tokens this
    # step, and flash tiles holding a single row.
    r = np.random.default_rng(1)
    batch = list(make_batch(r, [1, 5, 1, 1], [1, 1, 1, 1], 1, 64, 16, np.float16))
    batch[3] = np.array([0, 1, 1, 2, 3], np.int32)  # sequence 1 has no queries
    batch[5] = np.array([0, 0, 0], np.int32)
    keep = [0, 2, 3]
    q = r.standard_normal((3, 2, 64)).astype(np.float32)
    want = ops.attention("cpu", q, *batch, 0.125, "split")
    for v in VARIANTS:
        got = ops.attention("metal-sim", q, *batch, 0.125, v)
        np.testing.assert_allclose(got, want, atol=2e-6, rtol=1e-5, err_msg=v)
    # One key: the output is that key's value row.
    for t, s in enumerate(keep):
        slot = batch[2][s, 0] * 16
        np.testing.assert_allclose(
            want[t], np.repeat(batch[1].reshape(-1, 1, 64)[slot], 2, 0), rtol=1e-6
        )


# ---- sliding window and logit soft-capping ----

WINDOWS = [
    1,
    3,
    15,
    16,
    5000,
]  # block size 16: 1, a few, block_size - 1, block_size, past the context


@pytest.mark.parametrize(
    "window,softcap", [(w, c) for w in [0, *WINDOWS] for c in [0.0, 5.0, 50.0] if w or c]
)
def test_window_softcap_mixed_batch(window, softcap):
    # Decode rows, a full prefill, a chunk mid-sequence and a verify-like chunk (shuffled block
    # tables), every variant: `_window` / `_softcap` flash kernels and `_softcap` decode kernels
    # (both off: test_mixed_batch).
    r = np.random.default_rng(500 + window + int(softcap))
    dtype = np.float16 if window % 2 else np.float32
    batch = make_batch(r, MIXED_CTX, MIXED_NEW, 2, 64, 16, dtype)
    q = (r.standard_normal((int(batch[3][-1]), 6, 64)) * 3.0).astype(np.float32)
    check_variants(q, batch, 0.125, dtype_key(dtype), window=window, softcap=softcap)


def test_window_softcap_thread_orders(order):
    # Per-row window starts inside one flash tile, under the three thread orders.
    r = np.random.default_rng(6)
    batch = make_batch(r, [1, 17, 255, 300], [1, 17, 1, 45], 2, 64, 16, np.float16)
    q = (r.standard_normal((int(batch[3][-1]), 6, 64)) * 2.0).astype(np.float32)
    check_variants(q, batch, 0.125, "f16", window=20, softcap=5.0)


@pytest.mark.parametrize("ctx", [255, 2049])
@pytest.mark.parametrize("window", [100, 600])
def test_window_decode_key_splits(ctx, window):
    # One decode token: the flash-decoding splits cover the window's keys only.
    r = np.random.default_rng(ctx + window)
    batch = make_batch(r, [ctx], [1], 1, 128, 16, np.float32)
    q = r.standard_normal((1, 4, 128)).astype(np.float32)
    check_variants(q, batch, 128**-0.5, "f32", window=window, softcap=50.0 if window > 200 else 0.0)


@pytest.mark.parametrize("block_size,head_dim", [(1, 32), (5, 33), (32, 256)])
def test_window_odd_blocks_and_head_dims(block_size, head_dim):
    # Blocks of 1 and 5 keys (a window start inside a block), an odd head dim (zero padded) and 256
    # (16-key flash tiles).
    r = np.random.default_rng(block_size + head_dim)
    batch = make_batch(r, [70, 300, 9], [35, 1, 2], 2, head_dim, block_size, np.float32)
    q = r.standard_normal((38, 4, head_dim)).astype(np.float32)
    for window in sorted({max(block_size - 1, 1), block_size, 40}):
        check_variants(
            q, batch, head_dim**-0.5, "f32", window=window, softcap=5.0 if window == 40 else 0.0
        )


def test_window_skips_keys_outside():
    # NaN in every key wholly before the window: no kernel reads them (p = 0 times NaN would show).
    from test_attention import poison_outside_window

    r = np.random.default_rng(9)
    batch = make_batch(r, [2049, 1000, 600], [1, 37, 2], 2, 64, 16, np.float16)
    q = r.standard_normal((40, 6, 64)).astype(np.float32)
    want = ops.attention("cpu", q, *batch, 0.125, "split", sliding_window=100, logit_softcap=20.0)
    poisoned = poison_outside_window(batch, 100)
    for v in ["split", *VARIANTS]:
        got = ops.attention(
            "metal-sim", q, *poisoned, 0.125, v, sliding_window=100, logit_softcap=20.0
        )
        assert np.all(np.isfinite(got)), v
        np.testing.assert_allclose(got, want, atol=2e-5, rtol=1e-4, err_msg=v)


@pytest.mark.parametrize("variant", ["split", *VARIANTS])
def test_window_softcap_rejected(variant):
    r = np.random.default_rng(2)
    kc, vc, bt, qs, sl, pos = make_batch(r, [8, 8], [4, 4], 1, 16, 16, np.float32)
    q = r.standard_normal((8, 1, 16)).astype(np.float32)
    args = (q, kc, vc, bt, qs, sl, pos, 0.25, variant)
    with pytest.raises(
        ValueError,
        match=r"\[metal-sim.attention\] sliding_window: expected >= 0 \(0 = off\), " r"found -2",
    ):
        ops.attention("metal-sim", *args, sliding_window=-2)
    for bad in [-0.5, float("nan"), float("inf")]:
        with pytest.raises(
            ValueError, match=r"\[metal-sim.attention\] logit_softcap: expected a finite value >= 0"
        ):
            ops.attention("metal-sim", *args, logit_softcap=bad)


def test_query_start_errors():
    r = np.random.default_rng(2)
    kc, vc, bt, qs, sl, pos = make_batch(r, [8, 8], [4, 4], 1, 16, 16, np.float32)
    q = r.standard_normal((8, 1, 16)).astype(np.float32)
    bad = np.array([0, 5, 4], np.int32)  # ends at 4 of 8 tokens
    with pytest.raises(ValueError, match=r"\[metal-sim.attention\] query_start"):
        ops.attention("metal-sim", q, kc, vc, bt, bad, sl, pos, 0.25, "auto")
    bad = np.array([0, 9, 8], np.int32)  # decreasing
    with pytest.raises(ValueError, match="non-decreasing"):
        ops.attention("metal-sim", q, kc, vc, bt, bad, sl, pos, 0.25, "flash_prefill")


def test_head_dim_above_256():
    # Forced fused variants refuse; auto runs the split baseline.
    r = np.random.default_rng(3)
    batch = make_batch(r, [20], [2], 1, 264, 16, np.float32)
    q = r.standard_normal((2, 1, 264)).astype(np.float32)
    for v in ["fused_decode", "flash_prefill"]:
        with pytest.raises(ValueError, match="expected head_dim <= 256, found 264"):
            ops.attention("metal-sim", q, *batch, 0.1, v)
    np.testing.assert_allclose(
        ops.attention("metal-sim", q, *batch, 0.1, "auto"),
        ops.attention("cpu", q, *batch, 0.1, "split"),
        atol=2e-5,
        rtol=1e-4,
    )


def test_invalid_block_ids_stay_in_bounds():
    # A block id out of range is masked by every kernel (no out-of-bounds read); the result is
    # the same as the split baseline's.
    r = np.random.default_rng(4)
    kc, vc, bt, qs, sl, pos = make_batch(r, [40, 40], [40, 1], 1, 16, 16, np.float32)
    bt = bt.copy()
    bt[0, 1] = 10_000
    bt[1, 0] = -3
    q = r.standard_normal((41, 2, 16)).astype(np.float32)
    want = ops.attention("metal-sim", q, kc, vc, bt, qs, sl, pos, 0.25, "split")
    for v in VARIANTS:
        got = ops.attention("metal-sim", q, kc, vc, bt, qs, sl, pos, 0.25, v)
        np.testing.assert_allclose(got, want, atol=2e-6, rtol=1e-5, err_msg=v)


STAGE1_SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
import numpy as np
from test_metal_attention import make_batch, ref64
import longbow._core as core
r = np.random.default_rng(9)
batch = make_batch(r, [1, 17, 255, 2049, 600], [1, 1, 1, 1, 2], 2, 64, 16, np.float16)
q = r.standard_normal((6, 8, 64)).astype(np.float32)
want = ref64(q, *batch, 0.125)
for v in ["auto", "fused_decode"]:
    got = core.ops.attention("metal-sim", q, *batch, 0.125, v)
    np.testing.assert_allclose(got, want, atol=2e-5, rtol=1e-4, err_msg=v)
one = make_batch(r, [2049], [1], 1, 64, 16, np.float32)  # split across threadgroups
q1 = r.standard_normal((1, 3, 64)).astype(np.float32)
got = core.ops.attention("metal-sim", q1, *one, 0.125, "fused_decode")
np.testing.assert_allclose(got, ref64(q1, *one, 0.125), atol=2e-5, rtol=1e-4)
for window, softcap in [(3, 5.0), (300, 0.0), (0, 50.0)]:  # the _softcap kernels; windowed key ranges
    want = ref64(q, *batch, 0.125, window, softcap)
    for v in ["auto", "fused_decode"]:
        got = core.ops.attention("metal-sim", q, *batch, 0.125, v, sliding_window=window, logit_softcap=softcap)
        np.testing.assert_allclose(got, want, atol=2e-5, rtol=1e-4, err_msg=f"{{v}} {{window}} {{softcap}}")
print("ok")
"""


@pytest.mark.parametrize("stage", ["1", "2"])
def test_decode_stage_env(stage):
    # LONGBOW_ATTN_DECODE_STAGE is read once per process: a subprocess per stage.
    env = {
        **os.environ,
        "LONGBOW_ATTN_DECODE_STAGE": stage,
        "PYTHONPATH": os.pathsep.join(sys.path),
    }
    code = STAGE1_SCRIPT.format(tests=str(Path(__file__).parent))
    res = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.strip().endswith("ok")


def test_decode_stage_env_invalid():
    env = {**os.environ, "LONGBOW_ATTN_DECODE_STAGE": "3", "PYTHONPATH": os.pathsep.join(sys.path)}
    code = STAGE1_SCRIPT.format(tests=str(Path(__file__).parent))
    res = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert res.returncode != 0
    assert "LONGBOW_ATTN_DECODE_STAGE: expected 1 or 2, found '3'" in res.stderr


@pytest.mark.parametrize("tiny_gguf_model", [{"max_position": 256}], indirect=True)
@pytest.mark.parametrize("kv_dtype", ["f16", "f32"])
def test_tiny_llama_auto_matches_split(tiny_gguf_model, kv_dtype):
    # Prefill (flash) then decode (fused) on metal-sim: the same greedy tokens as the baseline.
    prompts = [[5, 17, 42, 99, 7, 3, 250, 11], list(range(40, 73))]
    toks = {}
    for attention in ["split", "auto"]:
        llm = longbow.LLM(
            str(tiny_gguf_model),
            backend="metal-sim",
            max_model_len=256,
            kv_dtype=kv_dtype,
            attention=attention,
        )
        outs = llm.generate(prompts, longbow.SamplingParams(max_tokens=8, ignore_eos=True))
        toks[attention] = [o.token_ids for o in outs]
    assert toks["auto"] == toks["split"]
    assert all(len(t) == 8 for t in toks["auto"])


# ---- slow: long contexts ----


@pytest.mark.slow
@pytest.mark.parametrize("cache_dtype", [np.float16, np.float32])
def test_context_8192(cache_dtype):
    # Decode tokens at 8192 and 8191 (split) and a 16-token chunk ending at 8192.
    r = np.random.default_rng(8192)
    batch = make_batch(r, [8192, 8191, 8192], [1, 1, 16], 1, 64, 16, cache_dtype)
    q = r.standard_normal((18, 3, 64)).astype(np.float32)
    check_variants(q, batch, 0.125, dtype_key(cache_dtype))


@pytest.mark.slow
def test_full_prefill_2049_thread_orders(order):
    r = np.random.default_rng(2049)
    batch = make_batch(r, [2049], [2049], 1, 128, 16, np.float16)
    q = r.standard_normal((2049, 4, 128)).astype(np.float32)
    check_variants(q, batch, 128**-0.5, "f16", ["auto"])
