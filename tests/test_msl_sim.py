"""MSL simulator self-tests: runs the C++ test programs of tests/msl_sim under the simulator's
three thread orders (in-order, reverse, seeded random)."""

import subprocess

import pytest

from cpp_programs import require_program

PROGRAMS = ["test_msl_sim_basic", "test_msl_sim_kernels", "test_msl_sim_diagnostics"]
ORDERS = [("in_order", 0), ("reverse", 0), ("random", 1), ("random", 12345)]


def run(program, *args):
    path = require_program(program)
    proc = subprocess.run([str(path), *args], capture_output=True, text=True, timeout=300)
    return proc


@pytest.mark.parametrize("order,seed", ORDERS, ids=[f"{o}-{s}" for o, s in ORDERS])
@pytest.mark.parametrize("program", PROGRAMS)
def test_program(program, order, seed):
    proc = run(program, "--order", order, "--seed", str(seed))
    assert proc.returncode == 0, f"{program} --order {order}:\n{proc.stdout}\n{proc.stderr}"
    assert "FAIL" not in proc.stdout
    assert "passed" in proc.stdout


def test_two_workers():
    proc = run("test_msl_sim_kernels", "--workers", "2", "--order", "random", "--seed", "7")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_filter_runs_nothing_fails():
    # A filter that matches no test makes the program fail: "0 tests ran" is not a pass.
    proc = run("test_msl_sim_basic", "--filter", "no-such-test")
    assert proc.returncode != 0


ASAN_TARGETS = ["test_msl_sim_asan_oob", "test_msl_sim_kernels", "test_msl_sim_diagnostics"]


@pytest.fixture(scope="module")
def asan_build(tmp_path_factory):
    """A separate AddressSanitizer + UBSan build of the simulator tests (configure + build)."""
    import os
    import shutil
    from pathlib import Path

    if shutil.which("cmake") is None or shutil.which("ninja") is None:
        pytest.skip("cmake and ninja are needed for the sanitizer build")
    repo = Path(__file__).resolve().parent.parent
    build = Path(
        os.environ.get("LONGBOW_SIM_ASAN_BUILD_DIR") or tmp_path_factory.mktemp("msl_sim_asan")
    )
    cfg = subprocess.run(
        [
            "cmake",
            "-S",
            str(repo),
            "-B",
            str(build),
            "-G",
            "Ninja",
            "-DLONGBOW_BUILD_PYTHON=OFF",
            "-DLONGBOW_SANITIZE=address;undefined",
            "-DCMAKE_BUILD_TYPE=Debug",
        ],
        capture_output=True,
        text=True,
    )
    assert cfg.returncode == 0, cfg.stdout + cfg.stderr
    b = subprocess.run(
        ["cmake", "--build", str(build), "--target", *ASAN_TARGETS], capture_output=True, text=True
    )
    assert b.returncode == 0, b.stdout[-4000:] + b.stderr[-4000:]
    return build


def _asan_program(build, name):
    hits = [p for p in build.rglob(name) if p.is_file()]
    assert hits, f"{name} not found under {build}"
    return hits[0]


@pytest.mark.slow
@pytest.mark.parametrize(
    "which,line,kind",
    [("device", 9, "heap-buffer-overflow"), ("threadgroup", 16, "use-after-poison")],
)
def test_asan_reports_out_of_bounds(asan_build, which, line, kind):
    prog = _asan_program(asan_build, "test_msl_sim_asan_oob")
    proc = subprocess.run([str(prog), which], capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0, proc.stdout
    assert "no error reported" not in proc.stdout
    assert f"AddressSanitizer: {kind}" in proc.stderr, proc.stderr[-3000:]
    assert f"oob.metal:{line}" in proc.stderr, proc.stderr[-3000:]


@pytest.mark.slow
@pytest.mark.parametrize("program", ["test_msl_sim_kernels", "test_msl_sim_diagnostics"])
def test_asan_self_tests_clean(asan_build, program):
    prog = _asan_program(asan_build, program)
    for order in ("in_order", "reverse", "random"):
        proc = subprocess.run(
            [str(prog), "--order", order, "--seed", "3"],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
        assert "ERROR: AddressSanitizer" not in proc.stderr
