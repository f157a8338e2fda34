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
