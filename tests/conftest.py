"""Shared fixtures: tiny random Llama models written on demand (see tiny_models.py).

`tiny_hf_model` / `tiny_gguf_model` give the default model (vocab 384, hidden 64, 2 layers,
4 heads, 2 kv heads, ffn 128, seed 0). Parametrize them indirectly with a dict of knobs:

    @pytest.mark.parametrize("tiny_gguf_model", [{"weight_dtype": "q4_1"}], indirect=True)

Files are cached per knob set for the whole session.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import tiny_models  # noqa: E402


@pytest.fixture(scope="session")
def tiny_model_factory(tmp_path_factory):
    """Returns make(fmt, **knobs) -> Path, fmt "hf" or "gguf"; cached by (fmt, knobs)."""
    cache: dict[str, Path] = {}

    def make(fmt: str, **knobs) -> Path:
        key = fmt + json.dumps(knobs, sort_keys=True)
        if key not in cache:
            base = tmp_path_factory.mktemp(f"tiny_{fmt}")
            if fmt == "hf":
                cache[key] = tiny_models.write_hf_model(base / "model", **knobs)
            elif fmt == "gguf":
                cache[key] = tiny_models.write_gguf_model(base / "model.gguf", **knobs)
            else:
                raise ValueError(f"unknown tiny model format {fmt!r} (expected 'hf' or 'gguf')")
        return cache[key]

    return make


@pytest.fixture(scope="session")
def tiny_hf_model(request, tiny_model_factory) -> Path:
    """Folder of a tiny HF Llama model (knobs from an indirect param dict)."""
    return tiny_model_factory("hf", **getattr(request, "param", {}))


@pytest.fixture(scope="session")
def tiny_gguf_model(request, tiny_model_factory) -> Path:
    """Path of a tiny llama GGUF file (knobs from an indirect param dict)."""
    return tiny_model_factory("gguf", **getattr(request, "param", {}))
