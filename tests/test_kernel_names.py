"""The kernel table (src/longbow/backend/metal/kernel_names.cpp), through which the Metal host code
requests every kernel, against the kernels metal/*.metal defines, both ways: every requested name
is compiled, and every compiled kernel is requested (the MSL simulator's registry holds exactly
the kernels of metal/*.metal)."""

from __future__ import annotations

import re
from pathlib import Path

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


METAL_DIR = Path(__file__).resolve().parent.parent / "metal"


def strip_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def kernels_in_sources() -> set[str]:
    """Host names of metal/*.metal: each `[[host_name("...")]]` and each plain (non-template)
    `kernel void name(`."""
    names = set()
    for path in sorted(METAL_DIR.glob("*.metal")):
        text = strip_comments(path.read_text())
        names.update(re.findall(r'\[\[\s*host_name\(\s*"([^"]+)"\s*\)\s*\]\]', text))
        for m in re.finditer(r"\bkernel\s+void\s+(\w+)\s*\(", text):
            if not re.search(r"template\s*<[^<>]*>\s*$", text[: m.start()]):
                names.add(m.group(1))
    return names


def test_sources_define_the_compiled_kernels():
    # The source scan below sees what the simulator compiled (checks the scan itself).
    assert kernels_in_sources() == set(core.sim_kernel_names())


def test_every_compiled_kernel_is_requested():
    unrequested = sorted(kernels_in_sources() - set(core.metal_kernel_names()))
    assert (
        not unrequested
    ), f"metal/*.metal defines kernels no encoder requests (kernel table): {unrequested}"


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
