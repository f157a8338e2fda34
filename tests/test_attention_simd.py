"""CPU flash-prefill attention under every SIMD set the CPU has (AVX-512 transposed item, AVX2
transposed item, scalar tile loop), each in a child process because LONGBOW_CPU_SIMD is read
once: decode rows at contexts around every tile/split edge, group sizes 1..16 and head dims
64/128/72/36/32 (the SIMD decode item, its 8-lane fallback and the generic loop), bitwise decode
rows alone == batched; prefill-heavy batches (partial query tiles, chunked prefill mid-sequence, GQA 1/3/4/8/16,
head dims 64/128/72/36, block sizes 8/16/32/128, f16/f32 caches) against the float64 reference
and the split baseline; wide GQA decode with flash-decoding splits; and results (bitwise) that
depend neither on the rest of the batch nor on how the sequence was chunked (a prefix-cached
suffix == the same rows of the full prefill); the same with a sliding window and logit soft-capping
(the window / soft-cap instantiations of every item, per SIMD set)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("longbow._core")


def _cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


FLAGS = _cpu_flags()
SIMD_SETS = ["scalar"]
if {"avx2", "fma", "f16c"} <= FLAGS:
    SIMD_SETS.append("avx2")
if {"avx512f", "avx512bw", "avx512vl"} <= FLAGS:
    SIMD_SETS.append("auto")  # the default picks AVX-512 here

CHILD = r"""
import sys, numpy as np
sys.path.insert(0, {tests!r})
import test_attention as ta
from longbow._core import ops

def prefill_cases():
    # (ctx_lens, new_lens, hkv, group, head_dim, block_size, cache dtype)
    yield [512], [512], 3, 3, 64, 16, np.float16          # SmolLM2 prefill
    yield [33, 100, 7], [33, 100, 7], 1, 4, 64, 16, np.float32
    yield [300, 61], [45, 61], 2, 1, 128, 32, np.float16   # chunk mid-sequence + prompt
    yield [70, 200], [70, 17], 2, 3, 72, 8, np.float32     # head dim % 8 != 0, small blocks
    yield [129, 20], [129, 20], 1, 8, 36, 128, np.float16  # block > tile keys
    yield [17, 2049], [17, 19], 2, 16, 64, 16, np.float16

r = np.random.default_rng(5)
for ctx, new, hkv, g, d, bs, dt in prefill_cases():
    batch = ta.make_batch(r, ctx, new, hkv, d, bs, dt)
    q = r.standard_normal((int(batch[3][-1]), hkv * g, d)).astype(np.float32)
    ta.check_all(q, batch, d ** -0.5, "f16" if dt == np.float16 else "f32")

# Decode with flash-decoding splits and wide query groups (8 and 16 heads per kv head).
for g in (8, 16):
    batch = ta.make_batch(r, [4096, 3000], [1, 1], 1, 64, 16, np.float16)
    q = r.standard_normal((2, g, 64)).astype(np.float32)
    ta.check_all(q, batch, 0.125, "f16", variants=["auto", "fused_decode"])

# Batch independence: a prefill alone == the same prefill inside a mixed batch, bitwise (decode
# rows: test_decode_attention_per_simd_set).
kc, vc, bt, qs, sl, pos = ta.make_batch(r, [40, 300, 2049, 90], [1, 300, 1, 37], 3, 64, 16, np.float16)
q = r.standard_normal((int(qs[-1]), 9, 64)).astype(np.float32)
full = ops.attention("cpu", q, kc, vc, bt, qs, sl, pos, 0.125, "auto")
for s in (1, 3):
    a, b = int(qs[s]), int(qs[s + 1])
    alone = ops.attention("cpu", q[a:b], kc, vc, bt[s:s + 1], np.array([0, b - a], np.int32), sl[s:s + 1],
                          pos[a:b], 0.125, "auto")
    assert np.array_equal(alone, full[a:b]), f"sequence {{s}} differs alone vs in the batch"

# Chunking independence: the last k tokens as a suffix chunk (prefix cache hit, chunked prefill)
# == the same rows of the full prefill, bitwise; each prefill tile is computed per row.
kc, vc, bt, qs, sl, pos = ta.make_batch(r, [230], [230], 3, 64, 16, np.float16)
q = r.standard_normal((230, 9, 64)).astype(np.float32)
full = ops.attention("cpu", q, kc, vc, bt, qs, sl, pos, 0.125, "flash_prefill")
for k in (1, 3, 5, 17, 40, 229):
    part = ops.attention("cpu", q[-k:], kc, vc, bt, np.array([0, k], np.int32), sl, pos[-k:], 0.125, "flash_prefill")
    assert np.array_equal(part, full[-k:]), f"suffix of {{k}} tokens differs from the full prefill"

# Sliding window and soft-capping: each combination through the window / soft-cap instantiations
# (prefill rows with different window starts in one tile, head dims of the SIMD and generic paths).
for ctx, new, hkv, g, d, bs, dt in prefill_cases():
    batch = ta.make_batch(r, ctx, new, hkv, d, bs, dt)
    q = (r.standard_normal((int(batch[3][-1]), hkv * g, d)) * 2.0).astype(np.float32)
    for window, softcap in [(1, 0.0), (bs - 1 or 1, 5.0), (bs, 0.0), (70, 50.0), (0, 5.0), (4096, 0.0)]:
        ta.check_all(q, batch, d ** -0.5, "f16" if dt == np.float16 else "f32", window=window, softcap=softcap)

# Chunking and batch independence (bitwise) with a window and a cap: prefill key tiles start at
# tile-aligned window starts, so a row's tiles do not depend on its query tile.
for window, softcap in [(50, 0.0), (50, 30.0), (0, 30.0), (130, 5.0)]:
    opts = dict(sliding_window=window, logit_softcap=softcap)
    kc, vc, bt, qs, sl, pos = ta.make_batch(r, [230], [230], 3, 64, 16, np.float16)
    q = r.standard_normal((230, 9, 64)).astype(np.float32)
    full = ops.attention("cpu", q, kc, vc, bt, qs, sl, pos, 0.125, "flash_prefill", **opts)
    for k in (1, 3, 17, 40, 229):
        part = ops.attention("cpu", q[-k:], kc, vc, bt, np.array([0, k], np.int32), sl, pos[-k:], 0.125,
                             "flash_prefill", **opts)
        assert np.array_equal(part, full[-k:]), f"suffix of {{k}} tokens differs from the full prefill ({{opts}})"
    kc, vc, bt, qs, sl, pos = ta.make_batch(r, [40, 300, 2049, 90], [1, 300, 1, 37], 3, 64, 16, np.float16)
    q = r.standard_normal((int(qs[-1]), 9, 64)).astype(np.float32)
    full = ops.attention("cpu", q, kc, vc, bt, qs, sl, pos, 0.125, "auto", **opts)
    for s in range(4):
        a, b = int(qs[s]), int(qs[s + 1])
        alone = ops.attention("cpu", q[a:b], kc, vc, bt[s:s + 1], np.array([0, b - a], np.int32), sl[s:s + 1],
                              pos[a:b], 0.125, "auto", **opts)
        assert np.array_equal(alone, full[a:b]), f"sequence {{s}} differs alone vs in the batch ({{opts}})"
print("ok")
"""


@pytest.mark.parametrize("simd", SIMD_SETS)
def test_prefill_attention_per_simd_set(simd):
    env = dict(os.environ)
    env.pop("LONGBOW_CPU_SIMD", None)
    if simd != "auto":
        env["LONGBOW_CPU_SIMD"] = simd
    tests = str(Path(__file__).parent)
    res = subprocess.run(
        [sys.executable, "-c", CHILD.format(tests=tests)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    assert res.stdout.strip().endswith("ok")


DECODE_CHILD = r"""
import sys, numpy as np
sys.path.insert(0, {tests!r})
import test_attention as ta
from longbow._core import ops

r = np.random.default_rng(11)
# Decode tokens at every context around tile (32, 64), split (128, 256) and vector (8, 16) edges.
CTX = [1, 2, 7, 15, 16, 17, 31, 33, 63, 64, 65, 127, 128, 129, 255, 256, 257, 513, 1000, 4097]
for hkv, g, d, bs, dt in [(3, 3, 64, 16, np.float16),    # SmolLM2-135M
                          (3, 3, 64, 16, np.float32),
                          (2, 1, 128, 32, np.float16),
                          (1, 5, 64, 8, np.float16),     # rows past one 4-row block, 8-key blocks
                          (1, 16, 32, 16, np.float32),
                          (2, 4, 72, 16, np.float16),    # head dim % 16 != 0: the 8-lane item
                          (1, 3, 36, 128, np.float32)]:  # head dim % 8 != 0: generic loop; block > tile
    batch = ta.make_batch(r, CTX, [1] * len(CTX), hkv, d, bs, dt)
    q = r.standard_normal((len(CTX), hkv * g, d)).astype(np.float32)
    ta.check_all(q, batch, d ** -0.5, "f16" if dt == np.float16 else "f32", variants=["auto", "fused_decode"])

# Decode rows with a sliding window (keys and splits start at the window) and soft-capping, at
# the same context edges; windows 1, block_size - 1, block_size, a split edge and past the context.
for hkv, g, d, bs, dt in [(3, 3, 64, 16, np.float16), (1, 5, 64, 8, np.float32), (2, 4, 72, 16, np.float16),
                          (1, 3, 36, 128, np.float32)]:
    batch = ta.make_batch(r, CTX, [1] * len(CTX), hkv, d, bs, dt)
    q = (r.standard_normal((len(CTX), hkv * g, d)) * 2.0).astype(np.float32)
    for window, softcap in [(1, 5.0), (bs - 1, 0.0), (bs, 50.0), (257, 0.0), (0, 5.0), (5000, 50.0)]:
        ta.check_all(q, batch, d ** -0.5, "f16" if dt == np.float16 else "f32", variants=["auto", "fused_decode"],
                     window=window, softcap=softcap)

# Two-token rows (verify-like) also take the decode path; large logits stress the online max.
batch = ta.make_batch(r, [300, 70, 2], [2, 2, 2], 3, 64, 16, np.float16)
q = r.standard_normal((6, 9, 64)).astype(np.float32)
ta.check_all(q, batch, 0.125, "f16", variants=["auto", "fused_decode"])
ta.check_all(q * 40.0, batch, 0.125, "large_logits", variants=["auto", "fused_decode"])

# Batch independence, bitwise: each decode row alone == the same row in a batch of 16 decodes
# plus a prefill (split counts follow the row's context only, never the batch; a lone short row
# runs one item per kv head, a batch one item per token over all kv heads).
ctx = [100, 129, 250, 2049, 16, 700, 300, 1, 64, 65, 128, 256, 257, 1024, 90, 3000, 200]
new = [1] * 16 + [200]
for heads, kv_heads, dim, block, dtype in [(9, 3, 64, 16, np.float16), (8, 2, 128, 8, np.float32),
                                           (12, 4, 72, 32, np.float16)]:
    kc, vc, bt, qs, sl, pos = ta.make_batch(r, ctx, new, kv_heads, dim, block, dtype)
    q = r.standard_normal((int(qs[-1]), heads, dim)).astype(np.float32)
    full = ops.attention("cpu", q, kc, vc, bt, qs, sl, pos, dim ** -0.5, "auto")
    for s in range(16):
        a, b = int(qs[s]), int(qs[s + 1])
        alone = ops.attention("cpu", q[a:b], kc, vc, bt[s:s + 1], np.array([0, 1], np.int32), sl[s:s + 1],
                              pos[a:b], dim ** -0.5, "auto")
        assert np.array_equal(alone, full[a:b]), (
            f"decode row {{s}} (context {{ctx[s]}}, {{heads}}/{{kv_heads}} heads, dim {{dim}}) differs alone vs batched")

# The same with a window and a cap (a window of 300 splits the 2049 and 3000 rows' keys).
kc, vc, bt, qs, sl, pos = ta.make_batch(r, ctx, new, 3, 64, 16, np.float16)
q = r.standard_normal((int(qs[-1]), 9, 64)).astype(np.float32)
opts = dict(sliding_window=300, logit_softcap=20.0)
full = ops.attention("cpu", q, kc, vc, bt, qs, sl, pos, 0.125, "auto", **opts)
for s in range(16):
    a, b = int(qs[s]), int(qs[s + 1])
    alone = ops.attention("cpu", q[a:b], kc, vc, bt[s:s + 1], np.array([0, 1], np.int32), sl[s:s + 1], pos[a:b],
                          0.125, "auto", **opts)
    assert np.array_equal(alone, full[a:b]), f"decode row {{s}} differs alone vs batched with a window and a cap"
print("ok")
"""


@pytest.mark.parametrize("simd", SIMD_SETS)
def test_decode_attention_per_simd_set(simd):
    """Fused decode (SIMD decode item, flash-decoding splits, merge) vs float64 and split."""
    env = dict(os.environ)
    env.pop("LONGBOW_CPU_SIMD", None)
    if simd != "auto":
        env["LONGBOW_CPU_SIMD"] = simd
    tests = str(Path(__file__).parent)
    res = subprocess.run(
        [sys.executable, "-c", DECODE_CHILD.format(tests=tests)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    assert res.stdout.strip().endswith("ok")
