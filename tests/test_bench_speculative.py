"""bench/bench_speculative.py on a tiny model: plain and speculative runs compared (outputs checked,
acceptance counted from the engine), single stream and concurrent, and the table (never
timings)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import longbow

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import bench_speculative


@pytest.fixture(scope="module")
def tiny_float_model(tiny_model_factory):
    return str(tiny_model_factory("gguf", vocab=384, seed=5))


@pytest.mark.parametrize("concurrent", [False, True])
@pytest.mark.parametrize(
    "spec, temperature",
    # A random tiny model repeats itself greedily (matches for prompt lookup) but rarely when
    # sampling; its q4_1 self-draft is often right at any temperature.
    [({"speculative": "ngram", "ngram_min": 1}, 0.0), ({"speculative": "self"}, 0.7)],
)
def test_compare_counts_acceptance_and_checks_outputs(
    tiny_float_model, spec, temperature, concurrent
):
    kw = {"num_threads": 1, "max_model_len": 128}
    plain = longbow.LLM(tiny_float_model, **kw)
    fast = longbow.LLM(tiny_float_model, speculative_max_batch=64, **kw, **spec)
    prompts = [[5, 6, 7, 8] * 4, [9, 10, 11] * 5, [40, 41, 42, 43, 44]]
    params = longbow.SamplingParams(max_tokens=20, ignore_eos=True, temperature=temperature, seed=3)
    row = bench_speculative.compare(plain, fast, prompts, params, reps=2, concurrent=concurrent)
    # Sampled self-drafts are rejection-sampled: the target's distribution, other tokens.
    assert row["outputs_equal"] is (temperature == 0.0)
    assert row["generated_tokens"] == 60
    assert row["e2e_tok_s_ratio"] > 0
    assert ("decode_tok_s_ratio" in row) != concurrent
    assert 0 <= row["acceptance_rate"] <= 1 and row["mean_accepted_length"] >= 1
    table = bench_speculative.markdown([{"case": "x", **row}])
    assert table.count("\n") == 2 and "| x |" in table


def test_code_edit_prompts_hold_the_code_to_copy():
    chats = bench_speculative.code_edit_messages()
    assert len(chats) == len(bench_speculative.CODE_SNIPPETS)
    for chat, code in zip(chats, bench_speculative.CODE_SNIPPETS):
        assert code in chat[0]["content"] and "Rename" in chat[0]["content"]
