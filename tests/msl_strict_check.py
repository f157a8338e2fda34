"""Strict address spaces for the Metal kernels: every metal/*.metal file, rewritten by the MSL
simulator's generator, is syntax-checked by clang with `device`, `constant` and `threadgroup` as
distinct address spaces (MSL_SIM_STRICT_ADDRESS_SPACES, msl_sim/shim/keywords.h), so converting a
`device T*` to a `thread T*` (or between any two spaces) fails here as it does in Apple's compiler,
where the simulator's plain C++ would accept it.

The clang is the one of the PyPI package `ziglang` (a native Linux target).

    python tests/msl_strict_check.py [FILE.metal ...] [--jobs 2]

Exit status 0 when every file passes.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GEN = REPO / "src/msl_sim/tools/msl_sim_gen.py"
FLAGS = ["-std=c++20", "-O0", "-Wno-everything"]
STRICT = "-DMSL_SIM_STRICT_ADDRESS_SPACES"


def check_file(metal: Path, work: Path, strict: bool = True) -> tuple[bool, str]:
    """Generates the simulator's C++ for one .metal file and compiles it, with distinct address
    spaces unless strict is False (the simulator's usual mode); (ok, output)."""
    out = work / (metal.name + ".cpp")
    uid = "strict_" + metal.stem
    gen = subprocess.run(
        [sys.executable, str(GEN), "kernel", "--input", str(metal), "--output", str(out)]
        + ["--uid", uid],
        capture_output=True,
        text=True,
        check=False,
    )
    if gen.returncode != 0:
        return False, gen.stdout + gen.stderr
    cmd = [sys.executable, "-m", "ziglang", "c++", *FLAGS] + ([STRICT] if strict else [])
    cmd += [f"-I{REPO / 'src/msl_sim/include'}", f"-I{metal.parent}", f"-I{REPO / 'metal'}"]
    # zig's driver wants an object file even for a syntax check: compile at -O0 into the work dir.
    cmd += ["-c", str(out), "-o", str(work / (metal.name + ".o"))]
    r = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=work)
    return r.returncode == 0, r.stdout + r.stderr


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="*", help="default: metal/*.metal")
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args(argv)
    files = [Path(f).resolve() for f in args.files] or sorted((REPO / "metal").glob("*.metal"))
    with tempfile.TemporaryDirectory() as tmp:
        with ThreadPoolExecutor(args.jobs) as pool:
            results = list(pool.map(lambda f: check_file(f, Path(tmp)), files))
    failed = 0
    for f, (ok, text) in zip(files, results):
        print(
            f"[msl-strict] {'ok  ' if ok else 'FAIL'} {f.relative_to(REPO) if f.is_relative_to(REPO) else f}"
        )
        if not ok:
            failed += 1
            print(text)
    print(
        f"[msl-strict] {len(files) - failed} of {len(files)} files pass with distinct address spaces"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
