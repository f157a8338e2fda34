"""Locate C++ test programs built by CMake (dev build folder or the scikit-build folder).

Search order: $LONGBOW_CPP_BUILD_DIR (recursively), then every build/*/ folder under the repo
(scikit-build-core's build-dir), newest first. Tests call find_program(name) and skip with a
clear reason when the program has not been built (or fail, when LONGBOW_REQUIRE_CPP=1, as in CI).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _search_roots() -> list[Path]:
    roots = []
    env = os.environ.get("LONGBOW_CPP_BUILD_DIR")
    if env:
        roots.append(Path(env))
    build = REPO / "build"
    if build.is_dir():
        subs = [p for p in build.iterdir() if p.is_dir()]
        roots += sorted(subs, key=lambda p: p.stat().st_mtime, reverse=True)
    return roots


def find_program(name: str) -> Path | None:
    """Path of the newest executable called `name` under the search roots, or None."""
    for root in _search_roots():
        if not root.is_dir():
            continue
        hits = [p for p in root.rglob(name) if p.is_file() and os.access(p, os.X_OK)]
        if hits:
            return max(hits, key=lambda p: p.stat().st_mtime)
    return None


def require_program(name: str) -> Path:
    """Like find_program, but skips the calling test when the program is missing."""
    path = find_program(name)
    if path is None:
        where = os.environ.get("LONGBOW_CPP_BUILD_DIR") or str(REPO / "build" / "*")
        message = (
            f"C++ program '{name}' not built (searched $LONGBOW_CPP_BUILD_DIR and "
            f"{where}); build with cmake or pip install first"
        )
        if os.environ.get("LONGBOW_REQUIRE_CPP") == "1":  # CI: a missing program is a failure
            pytest.fail(message)
        pytest.skip(message)
    return path
