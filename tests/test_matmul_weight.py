"""CpuBackend::matmul_weight (tests/cpp/test_matmul_weight.cpp): packed quantized weights give
exact products; a plain buffer, a wrong (N, K) or dtype, or K not a multiple of 32 is a clear error."""

from __future__ import annotations

import subprocess

from cpp_programs import require_program


def test_matmul_weight_contracts():
    exe = require_program("test_matmul_weight")
    p = subprocess.run([str(exe)], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "matmul_weight: 0 failures" in p.stdout, p.stdout
