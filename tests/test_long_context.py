"""Long context on the CPU backend (slow): a > 2048-token prompt on the real SmolLM2 through the
flash path matches the split path, and the attention step's peak memory stays linear in the
sequence length (no (N x N) buffer) for 2048/4096/8192 tokens, flash vs split."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from real_model import smollm2_gguf

pytestmark = pytest.mark.slow

TESTS = str(Path(__file__).parent)


def long_prompt_ids(llm, min_tokens):
    text = (
        "The history of the longbow spans many centuries, from hunting to warfare, and archers "
        "trained from childhood to draw bows of great weight. "
    )
    ids = llm.tokenizer.encode(text * 4)
    while len(ids) < min_tokens:
        ids = ids + ids
    return ids[:min_tokens]


@pytest.mark.parametrize("chunk", [512, 4096])
def test_flash_matches_split_on_long_prompt(chunk):
    from longbow import LLM

    path = smollm2_gguf()
    logits = {}
    for attention in ["split", "flash", "auto"]:
        llm = LLM(
            path,
            attention=attention,
            max_num_batched_tokens=chunk,
            max_model_len=4096,
            kv_dtype="f32",
        )
        ids = long_prompt_ids(llm, 2300)
        logits[attention] = np.asarray(llm.prompt_logits(ids), np.float64)
        del llm
    ref = logits["split"]
    for name in ["flash", "auto"]:
        err = np.max(np.abs(logits[name] - ref))
        assert err < 2e-3 * max(1.0, np.max(np.abs(ref))), f"{name}: max |logit diff| {err}"
        assert int(np.argmax(logits[name])) == int(np.argmax(ref))


CHILD = r"""
import json, sys, numpy as np
sys.path.insert(0, {tests!r})
from test_attention import make_batch
from longbow._core import ops

def hwm_kib():
    for line in open('/proc/self/status'):
        if line.startswith('VmHWM:'):
            return int(line.split()[1])

n, variant = {n}, {variant!r}
r = np.random.default_rng(0)
batch = make_batch(r, [n], [n], 3, 64, 16, np.float16)
q = r.standard_normal((n, 9, 64)).astype(np.float32)
before = hwm_kib()
out = ops.attention('cpu', q, *batch, 0.125, variant)
after = hwm_kib()
print(json.dumps({{'n': n, 'variant': variant, 'delta_kib': after - before, 'finite': bool(np.isfinite(out).all())}}))
"""


def peak_delta_kib(n, variant):
    res = subprocess.run(
        [sys.executable, "-c", CHILD.format(tests=TESTS, n=n, variant=variant)],
        capture_output=True,
        text=True,
        timeout=1800,
        env=dict(os.environ),
    )
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_attention_peak_memory_linear():
    # The delta of VmHWM across one prefill attention call (SmolLM2 shapes: 9 heads, 3 kv heads,
    # head dim 64) includes the call's device copies of q, out and the cache (linear in N) plus
    # the variant's scratch. An (N x N) f32 score buffer would add 4 N^2 bytes: 256 MiB at 8192.
    rows = {}
    for variant in ["flash_prefill", "split"]:
        for n in [2048, 4096, 8192]:
            row = peak_delta_kib(n, variant)
            assert row["finite"]
            rows[(variant, n)] = row["delta_kib"]
    print("\npeak RSS delta of the attention step (KiB):")
    for (variant, n), kib in sorted(rows.items()):
        print(f"  {variant:14s} N={n:5d}  {kib:8d} KiB")
    growth = rows[("flash_prefill", 8192)] - rows[("flash_prefill", 2048)]
    nxn_kib = 4 * 8192 * 8192 // 1024
    assert (
        growth < nxn_kib // 4
    ), f"flash peak grew by {growth} KiB from N=2048 to 8192 (N x N f32 = {nxn_kib} KiB)"
    # Linear, not quadratic: 4x the tokens costs well under 16x the memory.
    assert rows[("flash_prefill", 8192)] < 8 * max(rows[("flash_prefill", 2048)], 1024)
