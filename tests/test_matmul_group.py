"""Backend::matmul_group on the CPU (tests/cpp/test_matmul_group.cpp): parts sharing x equal
separate matmuls bit for bit in both thread splits; mismatched parts are clear errors."""

from __future__ import annotations

import subprocess

from cpp_programs import require_program


def test_matmul_group_equals_separate_matmuls():
    exe = require_program("test_matmul_group")
    p = subprocess.run([str(exe)], capture_output=True, text=True, check=False, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "matmul_group: 0 failures" in p.stdout, p.stdout
