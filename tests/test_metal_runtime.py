"""The Metal runtime's decisions that run on Linux (tests/cpp/test_gpu_capabilities.cpp): which GPUs
the kernels accept (Apple7 family, Metal 3, 32-lane SIMD groups) and the message of a refusal, and
that "auto" never picks a backend that is not usable."""

from __future__ import annotations

import subprocess

import pytest

from cpp_programs import require_program


def test_gpu_capability_decisions():
    exe = require_program("test_gpu_capabilities")
    p = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "0 failures" in p.stdout, p.stdout


def test_auto_is_cpu_without_a_usable_metal_device(tiny_gguf_model):
    core = pytest.importorskip("longbow._core")
    if "metal" in core.available_backends():
        pytest.skip("a usable Metal device: auto picks it")
    assert core.Engine(str(tiny_gguf_model), backend="auto").backend_name == "cpu"
