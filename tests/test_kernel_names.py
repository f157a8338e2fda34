"""Every kernel name the Metal host code can request exists among the compiled kernels (the
MSL simulator's registry holds exactly the kernels of metal/*.metal)."""

from __future__ import annotations

import re

import pytest

core = pytest.importorskip("longbow._core")
if not hasattr(core, "sim_kernel_names"):
    pytest.skip("this build has no metal-sim backend", allow_module_level=True)


def test_every_requested_kernel_is_compiled():
    requested = core.metal_kernel_names()
    compiled = set(core.sim_kernel_names())
    assert len(requested) >= 30
    missing = [n for n in requested if n not in compiled]
    assert not missing, f"host asks for kernels that metal/*.metal does not define: {missing}"


def test_names_follow_the_house_pattern():
    # <op>[_<variant>]_<type> (STYLE.md)
    pattern = re.compile(r"^[a-z]+(_[a-z0-9]+)*_(f32|f16|bf16|q8_0|q4_0|q4_1|u32|u8)$")
    for name in core.metal_kernel_names():
        assert pattern.match(name), name


def test_names_are_unique_and_cover_every_weight_dtype():
    names = core.metal_kernel_names()
    assert len(names) == len(set(names))
    for dtype in ["f32", "f16", "bf16", "q8_0", "q4_0", "q4_1"]:
        for kind in ["embed", "matmul_mv", "matmul_tiled"]:
            assert f"{kind}_{dtype}" in names
