"""bench/bench_kv_cache.py on a tiny model: one row per (context, format) with the bound and the
engine's bytes per token (never timings)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import bench_kv_cache

core = pytest.importorskip("longbow._core")


def test_rows_bounds_and_table(tiny_model_factory, tmp_path, capsys):
    model = str(tiny_model_factory("gguf", head_dim=32))
    out = tmp_path / "kv.jsonl"
    argv = ["--model", model, "--contexts", "16", "40", "--formats", "f16", "q8_0", "q4_1"]
    assert bench_kv_cache.main([*argv, "--reps", "1", "--decode", "3", "--out", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["context"], r["kv_dtype"]) for r in rows] == [
        (c, f) for c in (16, 40) for f in ("f16", "q8_0", "q4_1")
    ]
    per_token = {r["kv_dtype"]: r["kv_bytes_per_token"] for r in rows}
    # 2 planes x 2 layers x 2 kv heads x row bytes (head_dim 32: f16 64, q8_0 34, q4_1 20).
    assert per_token == {"f16": 8 * 64, "q8_0": 8 * 34, "q4_1": 8 * 20}
    for r in rows:
        assert r["decode_tok_s"] > 0
        assert (r["bandwidth_bound"] == 1.0) == (r["kv_dtype"] == "f16")
        assert r["bandwidth_bound"] >= 1.0
    assert capsys.readouterr().out.count("\n") == 2 + len(rows)


def test_kv_row_bytes_is_the_engines():
    assert core.kv_row_bytes("f16", 64) == 128 and core.kv_row_bytes("q8_0", 64) == 68
    with pytest.raises(ValueError, match="head_dim a multiple of 32"):
        core.kv_row_bytes("q4_0", 48)
