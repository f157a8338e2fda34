"""The strict address-space pass (tests/msl_strict_check.py): every kernel of metal/ passes it, and
planted conversions Apple's compiler refuses (device -> thread, threadgroup -> device, a write
through constant) fail it although the simulator's usual mode accepts them. Needs the PyPI package
ziglang; skipped without it unless LONGBOW_REQUIRE_MACOS_CHECK=1 (CI)."""

from __future__ import annotations

import importlib.util
import os

import pytest

import msl_strict_check as strict

HEADER = "#include <metal_stdlib>\nusing namespace metal;\n"
PLANTED = {
    "device_to_thread": """
kernel void bad(device float* x [[buffer(0)]], uint i [[thread_position_in_grid]]) {
  thread float* y = x;
  y[i] = 1.0f;
}""",
    "threadgroup_to_device": """
kernel void bad(device float* x [[buffer(0)]], uint i [[thread_position_in_grid]]) {
  threadgroup float t[32];
  t[i % 32] = 1.0f;
  threadgroup_barrier(mem_flags::mem_threadgroup);
  device float* y = t;
  x[i] = y[0];
}""",
    "constant_to_device": """
kernel void bad(constant float* c [[buffer(0)]], uint i [[thread_position_in_grid]]) {
  device float* y = c;
  y[i] = 1.0f;
}""",
}


@pytest.fixture(scope="module", autouse=True)
def ziglang():
    if importlib.util.find_spec("ziglang") is None:
        if os.environ.get("LONGBOW_REQUIRE_MACOS_CHECK") == "1":
            pytest.fail("LONGBOW_REQUIRE_MACOS_CHECK=1 but ziglang is not installed")
        pytest.skip("needs the PyPI package ziglang (pip install ziglang)")


def test_every_kernel_passes():
    assert strict.main([]) == 0


@pytest.mark.parametrize("name", list(PLANTED))
def test_planted_address_space_violations_fail(tmp_path, name):
    src = tmp_path / f"{name}.metal"
    src.write_text(HEADER + PLANTED[name], encoding="utf-8")
    ok, out = strict.check_file(src, tmp_path, strict=False)
    assert ok, out  # the simulator's usual mode cannot see it
    ok, out = strict.check_file(src, tmp_path)
    assert not ok and f"{name}.metal:" in out and "error:" in out, out  # at the planted line
