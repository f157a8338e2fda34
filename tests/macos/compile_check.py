"""Compile the Apple-only host code for macOS on Linux: the metal-cpp adapter, the
LONGBOW_HAS_METAL branches and the simulator's arm64 path, as arm64 Mach-O objects with warnings as
errors, so a wrong metal-cpp method, enum or signature fails CI before a Mac ever sees it.

The compiler is the clang of the PyPI package `ziglang` (it targets aarch64-macos and ships Apple's
libc, objc and dispatch headers); Apple's metal-cpp headers come from the PyPI source distribution
of pymetal-cpp (thirdparty/metal-cpp, Apache-2.0), downloaded into a cache at run time and never
committed. The two SDK headers ziglang lacks are stubbed in tests/macos/stubs.

    python tests/macos/compile_check.py [--metal-cpp DIR] [--jobs 2]

Exit status 0 when every unit compiles.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tarfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STUBS = Path(__file__).resolve().parent / "stubs"
PYMETAL_CPP = "pymetal-cpp==0.1.5"
DEPLOYMENT_TARGET = "13.0"  # -std=metal3.0 needs macOS 13 (CMAKE_OSX_DEPLOYMENT_TARGET)

# (source, defines): every file with Apple-only code.
METAL_HOST = [
    "src/longbow/backend/metal/metal_backend.cpp",
    "src/longbow/backend/metal/metal_ops.cpp",
    "src/longbow/backend/metal/metal_attention.cpp",
    "src/longbow/backend/metal/metal_sample.cpp",
    "src/longbow/backend/metal/metal_mlp.cpp",
    "src/longbow/backend/metal/kernel_names.cpp",
    "src/longbow/backend/metal/gpu_capabilities.cpp",
    "src/longbow/backend/registry.cpp",
]
UNITS = (
    [
        (
            "src/longbow/backend/metal/metal_cpp_runtime.cpp",
            ["LONGBOW_HAS_METAL", 'LONGBOW_INSTALLED_METALLIB="/usr/local/lib/longbow.metallib"'],
        )
    ]
    + [(src, ["LONGBOW_HAS_METAL", "LONGBOW_HAS_METAL_SIM"]) for src in METAL_HOST]
    + [(str(p.relative_to(REPO)), []) for p in sorted((REPO / "src/msl_sim/src").glob("*.cpp"))]
    # Accelerate's cblas_sgemm for the CPU's vendor MLP path.
    + [("src/longbow/backend/cpu/vendor_blas.cpp", [])]
    # MPSGraph's MLP block: Objective-C++ with ARC, against the declarations in objc_stubs/.
    + [("src/longbow/backend/metal/mpsgraph_mlp.mm", [])]
)
OBJC_STUBS = Path(__file__).resolve().parent / "objc_stubs"
FLAGS = [
    "-target",
    "aarch64-macos",
    f"-mmacosx-version-min={DEPLOYMENT_TARGET}",
    "-std=c++20",
    "-O1",
    "-Wall",
    "-Wextra",
    "-Wno-unused-parameter",
    "-Werror",
    "-fblocks",  # libdispatch's headers declare blocks
]


def cache_dir() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "longbow" / "macos"


def fetch_metal_cpp() -> Path:
    """thirdparty/metal-cpp of the pymetal-cpp sdist, downloaded once into the cache."""
    dest = cache_dir()
    headers = next(dest.glob("pymetal_cpp-*/thirdparty/metal-cpp"), None)
    if headers is not None and (headers / "Metal" / "Metal.hpp").exists():
        return headers
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", "pymetal-cpp"]
        + [PYMETAL_CPP, "-d", str(dest)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    sdist = next(dest.glob("pymetal_cpp-*.tar.gz"))
    with tarfile.open(sdist) as tar:
        members = [m for m in tar.getmembers() if "/thirdparty/metal-cpp/" in m.name]
        tar.extractall(dest, members=members, filter="data")
    headers = next(dest.glob("pymetal_cpp-*/thirdparty/metal-cpp"))
    if not (headers / "Metal" / "Metal.hpp").exists():
        raise SystemExit(f"[macos] no Metal/Metal.hpp under {headers}")
    return headers


def compile_unit(src: Path, defines: list[str], metal_cpp: Path, out_dir: Path) -> tuple[bool, str]:
    """Compiles one file to an arm64 Mach-O object; (ok, compiler output)."""
    obj = out_dir / (src.name + ".o")
    cmd = [sys.executable, "-m", "ziglang", "c++", *FLAGS]
    cmd += [f"-D{d}" for d in defines]
    if src.suffix == ".mm":
        cmd += ["-x", "objective-c++", "-fobjc-arc", "-isystem", str(OBJC_STUBS)]
    cmd += ["-isystem", str(STUBS), "-isystem", str(metal_cpp)]
    cmd += [f"-I{REPO / d}" for d in ("include", "src", "metal", "src/msl_sim/include")]
    cmd += ["-c", str(src), "-o", str(obj)]
    r = subprocess.run(cmd, capture_output=True, text=True, check=False)
    return r.returncode == 0, r.stdout + r.stderr


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--metal-cpp", default=None, help="metal-cpp headers (default: downloaded)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", default=None, help="object folder (default: the cache)")
    args = ap.parse_args(argv)
    metal_cpp = Path(args.metal_cpp) if args.metal_cpp else fetch_metal_cpp()
    out_dir = Path(args.out) if args.out else cache_dir() / "objects"
    out_dir.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(args.jobs) as pool:
        results = list(
            pool.map(lambda u: compile_unit(REPO / u[0], u[1], metal_cpp, out_dir), UNITS)
        )
    failed = 0
    for (src, defines), (ok, text) in zip(UNITS, results):
        print(f"[macos] {'ok  ' if ok else 'FAIL'} {src} {' '.join('-D' + d for d in defines)}")
        if not ok:
            failed += 1
            print(text)
    print(f"[macos] {len(UNITS) - failed} of {len(UNITS)} units compiled for arm64 macOS")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
