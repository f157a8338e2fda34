"""The elementwise row kernels (silu_mul, rms_norm, kv_write f16, rope) of the CPU backend under the
scalar set (a child with LONGBOW_CPU_SIMD=scalar) and the default set, on awkward sizes with
tails and extreme values: both against the numpy references, and SIMD against scalar (f16 KV
writes and the rms_norm scale are bit-identical, SiLU's vectorized exp within a few ulp)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import op_refs as ref

ops = pytest.importorskip("longbow._core").ops
pytestmark = pytest.mark.filterwarnings(
    "ignore:overflow encountered in cast"
)  # 65520 -> f16 inf on purpose

CHILD = r"""
import sys, numpy as np
sys.path.insert(0, {tests!r})
import test_elementwise_simd as t
np.savez({path!r}, **t.run_all())
"""


def inputs():
    r = np.random.default_rng(7)
    g = (r.standard_normal((5, 1537)) * 6).astype(np.float32)
    g[0, :6] = [0.0, -0.0, 88.0, -88.0, 200.0, -200.0]  # exp over/underflow edges of SiLU
    u = r.standard_normal((5, 1537)).astype(np.float32)
    x = r.standard_normal((33, 577)).astype(np.float32)
    w = r.standard_normal(577).astype(np.float32)
    k = (r.standard_normal((19, 3, 64)) * 300).astype(np.float32)
    k[0, 0, :4] = [65519.0, 65520.0, 1e-8, -6.1e-5]  # f16 overflow / subnormal rounding edges
    v = r.standard_normal((19, 3, 64)).astype(np.float32)
    kc = np.zeros((3, 16, 3, 64), np.float16)
    slots = r.permutation(48)[:19].astype(np.int32)
    q4 = r.standard_normal((7, 9, 64)).astype(np.float32)
    k4 = r.standard_normal((7, 3, 64)).astype(np.float32)
    pos = r.integers(0, 9000, 7).astype(np.int32)
    inv_freq = (10000.0 ** (-np.arange(0, 64, 2) / 64)).astype(np.float32)
    return g, u, x, w, k, v, kc, slots, q4, k4, pos, inv_freq


def run_all() -> dict:
    g, u, x, w, k, v, kc, slots, q4, k4, pos, inv_freq = inputs()
    out = {
        "silu": ops.glu("cpu", g, u),
        "gelu": ops.glu("cpu", g * 4, u, "gelu_tanh"),
        "norm": ops.rms_norm("cpu", x, w, 1e-5),
    }
    out["kc"], out["vc"] = ops.kv_write("cpu", k, v, kc, kc.copy(), slots)
    out["rq"], out["rk"] = ops.rope("cpu", q4, k4, pos, inv_freq, False)
    return out


@pytest.fixture(scope="module")
def scalar(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("scalar") / "out.npz")
    env = {**os.environ, "LONGBOW_CPU_SIMD": "scalar"}
    res = subprocess.run(
        [sys.executable, "-c", CHILD.format(tests=str(Path(__file__).parent), path=path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    return dict(np.load(path))


@pytest.fixture(scope="module")
def default():
    return run_all()


@pytest.mark.parametrize("which", ["scalar", "default"])
def test_against_numpy(which, request):
    got = request.getfixturevalue(which)
    g, u, x, w, k, v, kc, slots, q4, k4, pos, inv_freq = inputs()
    np.testing.assert_allclose(got["silu"], ref.silu_mul(g, u), atol=1e-6, rtol=1e-5)
    np.testing.assert_allclose(got["gelu"], ref.gelu_tanh_mul(g * 4, u), atol=1e-6, rtol=1e-5)
    np.testing.assert_allclose(got["norm"], ref.rms_norm(x, w, 1e-5), atol=1e-5, rtol=1e-5)
    wk, wv = ref.kv_write(k, v, kc, kc.copy(), slots)
    np.testing.assert_array_equal(got["kc"], wk)
    np.testing.assert_array_equal(got["vc"], wv)
    np.testing.assert_allclose(got["rq"], ref.rope(q4, pos, inv_freq, False), atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(got["rk"], ref.rope(k4, pos, inv_freq, False), atol=1e-5, rtol=1e-5)


def test_simd_matches_scalar(scalar, default):
    for key in ("kc", "vc"):
        np.testing.assert_array_equal(default[key], scalar[key], err_msg=key)
    for key in ("norm", "rq", "rk"):
        np.testing.assert_allclose(default[key], scalar[key], atol=1e-6, rtol=1e-6, err_msg=key)
    np.testing.assert_allclose(default["silu"], scalar["silu"], atol=1e-7, rtol=1e-6)
