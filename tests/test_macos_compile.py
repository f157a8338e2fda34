"""The macOS compile check (tests/macos/compile_check.py) catches what a Mac's compiler would: the
metal-cpp adapter compiles for arm64 macOS, and a planted wrong metal-cpp method or enum fails it.
Needs the PyPI package ziglang and pymetal-cpp's sdist (downloaded once); skipped without them
unless LONGBOW_REQUIRE_MACOS_CHECK=1 (CI), where a missing tool is a failure."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "macos"))
import compile_check as cc  # noqa: E402

ADAPTER = cc.REPO / "src/longbow/backend/metal/metal_cpp_runtime.cpp"


@pytest.fixture(scope="module")
def metal_cpp():
    required = os.environ.get("LONGBOW_REQUIRE_MACOS_CHECK") == "1"
    if importlib.util.find_spec("ziglang") is None:
        if required:
            pytest.fail("LONGBOW_REQUIRE_MACOS_CHECK=1 but ziglang is not installed")
        pytest.skip("needs the PyPI package ziglang (pip install ziglang)")
    try:
        return cc.fetch_metal_cpp()
    except Exception as exc:  # no network / no PyPI
        if required:
            raise
        pytest.skip(f"metal-cpp headers unavailable: {exc}")


def _compile(src: Path, metal_cpp, tmp_path):
    return cc.compile_unit(src, ["LONGBOW_HAS_METAL"], metal_cpp, tmp_path)


def test_adapter_compiles_for_arm64_macos(metal_cpp, tmp_path):
    ok, out = _compile(ADAPTER, metal_cpp, tmp_path)
    assert ok, out
    assert (tmp_path / (ADAPTER.name + ".o")).read_bytes()[:4] == b"\xcf\xfa\xed\xfe"  # Mach-O 64


@pytest.mark.parametrize(
    "right, wrong",
    [
        (
            "device_->newCommandQueue()",
            "device_->newCommandQueues()",
        ),  # a method that does not exist
        ("MTL::ResourceStorageModeShared)", "MTL::ResourceStorageModeSharedMemory)"),  # an enum
        ("->setBytes(data, bytes, index)", "->setBytes(data, index)"),  # a wrong signature
    ],
)
def test_planted_metal_cpp_errors_fail(metal_cpp, tmp_path, right, wrong):
    text = ADAPTER.read_text(encoding="utf-8")
    assert right in text
    planted = tmp_path / ADAPTER.name
    planted.write_text(text.replace(right, wrong), encoding="utf-8")
    ok, out = _compile(planted, metal_cpp, tmp_path)
    assert not ok and "error" in out, out
