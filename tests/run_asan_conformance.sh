#!/usr/bin/env bash
# AddressSanitizer + UBSan pass over the Metal kernel conformance tests: builds the Python module
# with LONGBOW_SANITIZE="address;undefined" (kernels, simulator and host code instrumented) and runs
# tests/test_metal_conformance.py, tests/test_kernel_names.py and tests/test_metal_attention.py
# against it, with the default number of simulator workers (fiber stacks are unpoisoned before
# they are unmapped, so worker threads that come and go are fine). An out-of-bounds
# access inside a kernel is reported at its .metal line.
#   usage: tests/run_asan_conformance.sh [build-dir] [extra pytest args...]
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-$repo/build-asan-metal}"
shift || true

cmake -S "$repo" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Debug \
  -DLONGBOW_SANITIZE="address;undefined" -DLONGBOW_BUILD_PYTHON=ON -DLONGBOW_BUILD_TESTS=OFF \
  -DLONGBOW_DEV_OUTPUT="$build/py" -Dpybind11_DIR="$(python3 -m pybind11 --cmakedir)" >/dev/null
cmake --build "$build" --target _core

# The interpreter is not instrumented: the ASan runtime must be loaded first. Python's own
# allocations look like leaks to LeakSanitizer, so leak checking is off.
cxx="$(grep -m1 '^CMAKE_CXX_COMPILER:' "$build/CMakeCache.txt" | cut -d= -f2)"
libasan="$("${cxx:-c++}" -print-file-name=libasan.so)"
# libstdc++ too: ASan resolves its __cxa_throw interceptor at start-up, and a C++ exception thrown
# before that library is loaded (the bad-input tests) would abort instead of raising ValueError.
libstdcxx="$("${cxx:-c++}" -print-file-name=libstdc++.so)"
export LD_PRELOAD="$libasan $libstdcxx"
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:detect_stack_use_after_return=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export PYTHONPATH="$build/py:$repo/python${PYTHONPATH:+:$PYTHONPATH}"
cd "$repo/tests"
exec python3 -m pytest -q -p no:cacheprovider test_metal_conformance.py test_kernel_names.py test_metal_attention.py "$@"
