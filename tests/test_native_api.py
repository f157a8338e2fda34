"""The C++ core as a plain library: the public header, the installable CMake package and the
example program (examples/greedy_decode.cpp) agree with the Python API."""

from __future__ import annotations

import shutil
import os
import subprocess
from pathlib import Path

import pytest

import longbow
from cpp_programs import REPO, require_program

PROMPT = [5, 17, 42, 99, 7, 3, 250, 11]


def _python_greedy(model: Path, n: int) -> list[int]:
    llm = longbow.LLM(str(model), backend="cpu", kv_dtype="f16", max_model_len=256)
    return llm.generate([PROMPT], longbow.SamplingParams(max_tokens=n, ignore_eos=True))[
        0
    ].token_ids


def _run(program: Path, model: Path, n: int) -> list[int]:
    out = subprocess.run(
        [str(program), str(model), str(n), *map(str, PROMPT)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return [int(t) for t in out.stdout.split()]


@pytest.mark.parametrize("tiny_gguf_model", [{"max_position": 256}], indirect=True)
def test_example_program_matches_python(tiny_gguf_model):
    program = require_program("greedy_decode")
    assert _run(program, tiny_gguf_model, 12) == _python_greedy(tiny_gguf_model, 12)


@pytest.mark.parametrize("speculative", ["", "ngram", "self"])
@pytest.mark.parametrize("tiny_gguf_model", [{"max_position": 256}], indirect=True)
def test_api_top_logprobs_match_python(tiny_gguf_model, speculative):
    # Also with speculative decoding through the C++ API (GeneratorOptions.speculative).
    program = require_program("test_api_top_logprobs")
    out = subprocess.run(
        [str(program), str(tiny_gguf_model), "5", "4", *map(str, PROMPT * 3)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "LONGBOW_TEST_SPECULATIVE": speculative},
    )
    assert out.returncode == 0, out.stderr
    rows = [line.split() for line in out.stdout.splitlines()]
    llm = longbow.LLM(str(tiny_gguf_model), backend="cpu", kv_dtype="f16", max_model_len=256)
    want = llm.generate(
        [PROMPT * 3], longbow.SamplingParams(max_tokens=5, ignore_eos=True, logprobs=4)
    )[0]
    assert [int(r[0]) for r in rows] == want.token_ids
    for row, lp, top in zip(rows, want.logprobs, want.top_logprobs, strict=True):
        assert float(row[1]) == pytest.approx(lp, abs=1e-5)
        assert [int(i) for i in row[2::2]] == list(top)
        assert [float(v) for v in row[3::2]] == pytest.approx(list(top.values()), abs=1e-5)
    bad = subprocess.run(
        [str(program), str(tiny_gguf_model), "5", "21", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 1 and "[sampling] top_logprobs must be in 0..20, got 21" in bad.stderr


def test_example_program_reports_bad_model(tmp_path):
    program = require_program("greedy_decode")
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF\x03\x00\x00\x00" + b"\xff" * 8)
    out = subprocess.run(
        [str(program), str(bad), "4", "1"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 1
    assert "error: [gguf]" in out.stderr and "bad.gguf" in out.stderr


@pytest.mark.parametrize("tiny_gguf_model", [{"max_position": 256}], indirect=True)
def test_installed_cmake_package_builds_the_example(tiny_gguf_model, tmp_path):
    cmake_dir = Path(longbow.cmake_dir())
    if not (cmake_dir / "longbowConfig.cmake").is_file():
        pytest.skip(
            f"longbow is not installed from a wheel here (no {cmake_dir}); run pip install ."
        )
    cmake = shutil.which("cmake")
    assert cmake, "cmake is needed to build against the installed package"
    build = tmp_path / "build"
    gen = ["-G", "Ninja"] if shutil.which("ninja") else []
    subprocess.run(
        [
            cmake,
            "-S",
            str(REPO / "examples"),
            "-B",
            str(build),
            *gen,
            f"-Dlongbow_DIR={cmake_dir}",
            "-DCMAKE_BUILD_TYPE=Release",
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    subprocess.run([cmake, "--build", str(build)], check=True, capture_output=True, timeout=600)
    program = next(p for p in build.rglob("greedy_decode") if p.is_file())
    assert _run(program, tiny_gguf_model, 8) == _python_greedy(tiny_gguf_model, 8)
