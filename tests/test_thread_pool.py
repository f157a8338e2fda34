"""The CPU thread pool's contracts (tests/cpp/test_thread_pool.cpp): one chunk per thread index,
hand-over between consecutive jobs, exceptions and nested calls."""

from __future__ import annotations

import subprocess

from cpp_programs import require_program


def test_thread_pool_contracts():
    exe = require_program("test_thread_pool")
    p = subprocess.run([str(exe)], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "0 failures" in p.stdout, p.stdout
