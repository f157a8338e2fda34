"""`longbow bench` and the packaged benchmarks (longbow.benchmarks): argument handling, the
longbow-only run on a tiny model (rows and their shape, never timings), and the peers table."""

from __future__ import annotations

import io
import json

import pytest

from longbow import cli
from longbow.benchmarks import peers


def _run(argv):
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(argv, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_bench_help_lists_peer_options(capsys):
    with pytest.raises(SystemExit):
        cli.main(["bench", "--help"])
    text = capsys.readouterr().out
    for opt in ("--peers", "--dtypes", "--threads", "--reps", "--out-dir", "--prefill-len"):
        assert opt in text


def test_bench_rejects_bad_counts(tiny_gguf_model):
    code, _, err = _run(["bench", "--model", str(tiny_gguf_model), "--threads", "0"])
    assert code == 1 and err.startswith("error: expected threads >= 1")


def test_bench_runs_three_cases_per_thread_count(tiny_model_factory, tmp_path):
    model = tiny_model_factory("gguf", weight_dtype="q8_0", hidden=64, max_position=2048)
    jsonl = tmp_path / "rows.jsonl"
    code, out, err = _run(
        [
            "bench",
            "--model",
            str(model),
            "--threads",
            "1",
            "2",
            "--reps",
            "1",
            "--prefill-len",
            "40",
            "--decode-len",
            "4",
            "--out",
            str(jsonl),
        ]
    )
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert [(r["case"], r["threads"]) for r in rows] == [
        (c, t) for t in (1, 2) for c in ("prefill_512", "decode_128_short", "decode_128_after_512")
    ]
    assert all(r["engine"] == "longbow" and r["tok_s"] > 0 and len(r["samples"]) == 1 for r in rows)
    assert [json.loads(line) for line in jsonl.read_text().splitlines()] == rows


def test_peers_markdown_ratio_and_roofline_columns():
    rows = [
        {
            "dtype": "q8_0",
            "threads": 2,
            "metric": "prefill_512",
            "longbow": 900.0,
            "llama.cpp_fa_on": 700.0,
            "llama.cpp_fa_off": 600.0,
            "ratio_longbow_over_llama": 900.0 / 700.0,
        },
        {
            "dtype": "q8_0",
            "threads": 2,
            "metric": "decode_128_short",
            "longbow": 200.0,
            "llama.cpp_fa_on": 150.0,
            "llama.cpp_fa_off": 160.0,
            "ratio_longbow_over_llama": 1.25,
            "roofline_tok_s": 400.0,
            "longbow_fraction_of_roofline": 0.5,
            "llama_fraction_of_roofline": 0.4,
        },
    ]
    md = peers.markdown(rows).splitlines()
    assert md[0] == "longbow on cpu."
    assert md[4] == "| q8_0 | 2 | prefill_512 | 900.0 | 700.0 | 600.0 | 1.29x |  |"
    assert (
        md[5] == "| q8_0 | 2 | decode_128_short | 200.0 | 150.0 | 160.0 | 1.25x | 400 (50%, 40%) |"
    )
    # The first-Mac report (--backend metal) adds mlx-lm's column and ratio.
    metal = [dict(rows[0], backend="metal", **{"mlx-lm": 450.0, "ratio_longbow_over_mlx": 2.0})]
    md = peers.markdown(metal).splitlines()
    assert md[0] == "longbow on metal." and "mlx-lm" in md[2]
    assert md[4] == "| q8_0 | 2 | prefill_512 | 900.0 | 700.0 | 600.0 | 1.29x | 450.0 | 2.00x |  |"


def test_first_mac_report_needs_a_metal_device(tiny_gguf_model, capsys):
    from longbow import _core
    from longbow.cli import main

    if "metal" in _core.available_backends():
        pytest.skip("a usable Metal device here")
    with pytest.raises(RuntimeError, match="no usable Metal device"):
        peers.metal_preflight(str(tiny_gguf_model))
    argv = ["bench", "--peers", "--backend", "metal-sim", "--model", str(tiny_gguf_model)]
    assert main(argv) == 1
    assert "--peers runs on --backend cpu or metal" in capsys.readouterr().err


def test_peak_rss_is_the_worker_own_not_the_parent_carried_through_exec():
    """Workers are spawned by a large parent; their peak RSS must not include the parent's."""
    import subprocess
    import sys

    code = (
        "import subprocess, sys\n"
        "big = bytearray(300 * 1024 * 1024)\n"  # the parent touches 300 MB
        "for i in range(0, len(big), 4096): big[i] = 1\n"
        "out = subprocess.run([sys.executable, '-c', 'from longbow.benchmarks import peers; "
        "print(peers._peak_rss_mb())'], capture_output=True, text=True, check=True).stdout\n"
        "print(out.strip())\n"
    )
    child_mb = float(
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        .stdout.strip()
        .splitlines()[-1]
    )
    assert 0 < child_mb < 200, child_mb
