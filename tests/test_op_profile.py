"""LONGBOW_PROFILE_OPS=1: the CPU backend times every op and prints a table at exit."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

SCRIPT = """
import sys, longbow
llm = longbow.LLM(sys.argv[1], backend="cpu", num_threads=2, max_model_len=64)
out = llm.generate([[1, 2, 3, 4, 5]], longbow.SamplingParams(max_tokens=3, ignore_eos=True))
print("tokens", len(out[0].token_ids))
"""


def _run(model, profile):
    env = {**os.environ, "PYTHONPATH": ":".join(sys.path)}
    env.pop("LONGBOW_PROFILE_OPS", None)
    if profile is not None:
        env["LONGBOW_PROFILE_OPS"] = profile
    return subprocess.run(
        [sys.executable, "-c", SCRIPT, str(model)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=120,
    )


@pytest.mark.parametrize("tiny_gguf_model", [{"weight_dtype": "q4_1"}], indirect=True)
def test_profile_table_counts_every_forward(tiny_gguf_model):
    proc = _run(tiny_gguf_model, "1")
    assert proc.returncode == 0, proc.stderr
    assert "tokens 3" in proc.stdout
    assert "cpu op profile (LONGBOW_PROFILE_OPS)" in proc.stderr
    rows = {
        m.group(1).strip(): int(m.group(2))
        for m in re.finditer(
            r"^(\S.*?)\s+(\d+)\s+[\d.]+\s+[\d.]+\s+[\d.]+%$", proc.stderr, re.MULTILINE
        )
    }
    # One prefill of 5 tokens, then two decode steps of one token; 2 layers, the LM head once a step.
    assert rows["embed T<=16"] == 1 and rows["embed T=1"] == 2
    assert rows["attention T<=16"] == 2 and rows["attention T=1"] == 4
    assert rows["sample T=1"] == 3
    lm_head = [
        k for k in rows if k.startswith("matmul") and k.endswith(" 384x64 T=1")
    ]  # vocab 384, hidden 64
    assert len(lm_head) == 1 and rows[lm_head[0]] == 3, rows


@pytest.mark.parametrize("profile", [None, "0"])
def test_profile_off_prints_nothing(tiny_gguf_model, profile):
    proc = _run(tiny_gguf_model, profile)
    assert proc.returncode == 0, proc.stderr
    assert "op profile" not in proc.stderr
