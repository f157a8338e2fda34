"""SIMD matmul micro-kernels vs the scalar ones (tests/cpp/test_matmul_kernels.cpp): natively
(AVX2 on x86-64), and for arm64 NEON by cross-compiling with Debian's aarch64-linux-gnu-g++ and
running under qemu-aarch64 (skipped when those tools are not installed:
`apt-get install g++-aarch64-linux-gnu qemu-user`)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from cpp_programs import REPO, require_program

SOURCES = [
    "tests/cpp/test_matmul_kernels.cpp",
    "src/longbow/backend/cpu/matmul/matmul_scalar.cpp",
    "src/longbow/backend/cpu/matmul/matmul_tile_neon.cpp",
    "src/longbow/backend/cpu/matmul/matmul_pack.cpp",
    "src/longbow/core/dtype.cpp",
]


def test_native_simd_kernels_match_scalar():
    exe = require_program("test_matmul_kernels")
    p = subprocess.run([str(exe)], capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "0 failures" in p.stdout or p.stdout.startswith("SKIP")


def test_arm64_neon_kernels_match_scalar_under_qemu(tmp_path):
    cxx, qemu = shutil.which("aarch64-linux-gnu-g++"), shutil.which("qemu-aarch64")
    if not cxx or not qemu:
        pytest.skip(
            "needs aarch64-linux-gnu-g++ and qemu-aarch64 (apt-get install g++-aarch64-linux-gnu qemu-user)"
        )
    exe = tmp_path / "test_matmul_kernels_arm64"
    subprocess.run(
        [
            cxx,
            "-O2",
            "-std=c++20",
            "-static",
            f"-I{REPO / 'src'}",
            f"-I{REPO / 'metal'}",
            f"-I{REPO / 'include'}",
            *[str(REPO / s) for s in SOURCES],
            "-o",
            str(exe),
        ],
        check=True,
    )
    p = subprocess.run([qemu, str(exe)], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.startswith("neon:") and "0 failures" in p.stdout, p.stdout
