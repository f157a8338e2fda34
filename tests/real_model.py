"""Locating the real default model for slow tests: $LONGBOW_TEST_GGUF, else `longbow.pull`."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def smollm2_gguf() -> Path:
    env = os.environ.get("LONGBOW_TEST_GGUF")
    if env:
        path = Path(env)
        if not path.is_file():
            pytest.fail(f"LONGBOW_TEST_GGUF={env} does not exist")
        return path
    from longbow.pull import pull

    try:
        return pull(progress=False)
    except RuntimeError as exc:  # no network: the slow tests cannot run here
        pytest.skip(f"default model unavailable: {exc}")
