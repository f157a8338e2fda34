"""Perplexity (longbow.perplexity, `longbow perplexity`): llama.cpp's chunking and scoring checked
against per-position logits computed one prefix at a time, the reference run's KL divergence and
top-1 agreement, the multi-row prompt_logits it rests on, the CLI, and (slow) agreement with
llama.cpp's own logits on the default model."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import longbow
from longbow.cli import main
from longbow.perplexity import chunk_tokens, default_corpus, perplexity

TEXT = (
    "The quick brown fox jumps over the lazy dog. A stitch in time saves nine. "
    "All that glitters is not gold. Where there is smoke there is fire. "
) * 12


@pytest.fixture(scope="module")
def model(tiny_model_factory):
    return str(tiny_model_factory("gguf", seed=3))


def _llm(path, **kw):
    kw.setdefault("num_threads", 1)
    kw.setdefault("max_model_len", 128)
    return longbow.LLM(path, **kw)


def test_prompt_logits_rows_equal_one_prefix_at_a_time(model):
    # Small batch and row budgets force several forwards per call.
    llm = _llm(model, max_num_batched_tokens=16, max_num_seqs=4)
    ids = llm.tokenizer.encode(TEXT)[:40]
    rows = llm.prompt_logits(ids, first=10)
    assert rows.shape == (30, llm.config.vocab_size)
    for j in (10, 11, 25, 39):
        want = _llm(model).prompt_logits(ids[: j + 1])
        np.testing.assert_allclose(rows[j - 10], want, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(llm.prompt_logits(ids, first=39)[0], llm.prompt_logits(ids))
    with pytest.raises(ValueError, match="first in 0..39, found 40"):
        llm.prompt_logits(ids, first=40)
    assert llm.stats()["num_blocks_used"] == 0


def test_chunks_follow_llama_cpp(model):
    llm = _llm(model)
    ids = llm.tokenizer.encode(TEXT, add_special_tokens=True)
    chunks = chunk_tokens(llm, TEXT, 32)
    assert len(chunks) == len(ids) // 32
    bos = llm.tokenizer.bos_token_id
    adds_bos = bos is not None and ids[0] == bos
    for i, c in enumerate(chunks):
        assert len(c) == 32
        assert c[1:] == ids[i * 32 + 1 : (i + 1) * 32]
        assert c[0] == (bos if adds_bos else ids[i * 32])


def test_perplexity_matches_an_independent_computation(model):
    llm = _llm(model)
    ctx = 32
    got = perplexity(llm, TEXT, ctx, max_chunks=3)
    nll = []
    for chunk in chunk_tokens(llm, TEXT, ctx)[:3]:
        for j in range(ctx // 2, ctx - 1):
            logits = llm.prompt_logits(chunk[: j + 1]).astype(np.float64)
            lse = logits.max() + math.log(np.exp(logits - logits.max()).sum())
            nll.append(lse - logits[chunk[j + 1]])
    assert got["tokens_scored"] == len(nll) == 3 * (ctx // 2 - 1)
    assert got["chunks"] == 3 and got["ctx"] == ctx
    assert got["nll"] == pytest.approx(np.mean(nll), rel=1e-6)
    assert got["ppl"] == pytest.approx(math.exp(np.mean(nll)), rel=1e-6)
    assert got["ppl_stderr"] > 0
    assert len(got["running_ppl"]) == 3 and got["running_ppl"][-1] == pytest.approx(got["ppl"])


def test_reference_run_kld_and_top1(model):
    f16 = _llm(model)
    same = perplexity(f16, TEXT, 32, max_chunks=2, reference=_llm(model))
    assert same["kld"] == 0.0 and same["top1_agreement"] == 1.0
    assert same["ppl_delta_pct"] == 0.0
    f32 = perplexity(_llm(model, kv_dtype="f32"), TEXT, 32, max_chunks=2, reference=f16)
    assert 0.0 <= f32["kld"] < 1e-4 and f32["kld_max"] >= f32["kld"]
    assert f32["top1_agreement"] > 0.9
    assert abs(f32["ppl_delta_pct"]) < 0.5


def test_bad_arguments(model, tiny_model_factory):
    llm = _llm(model)
    with pytest.raises(ValueError, match="ctx >= 4"):
        perplexity(llm, TEXT, 2)
    with pytest.raises(ValueError, match="exceeds the engine's max_model_len 128"):
        perplexity(llm, TEXT, 256)
    with pytest.raises(ValueError, match="fewer than one chunk"):
        perplexity(llm, "short", 64)
    with pytest.raises(ValueError, match="max_chunks >= 1"):
        perplexity(llm, TEXT, 32, max_chunks=0)
    other = _llm(str(tiny_model_factory("gguf", seed=3, vocab=300)))
    with pytest.raises(ValueError, match="another vocabulary"):
        perplexity(llm, TEXT, 32, reference=other)


def test_default_corpus_is_offline_text():
    name, text = default_corpus()
    assert name.startswith("pydoc_data.topics") and len(text) > 100_000


def test_cli_json_and_table(model, tmp_path, capsys):
    text = tmp_path / "text.txt"
    text.write_text(TEXT, encoding="utf-8")
    args = ["perplexity", model, "--text", str(text), "--ctx", "32", "--chunks", "2"]
    assert main([*args, "--threads", "1", "--backend", "cpu", "--kv-dtype", "f32", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["kv_dtype"] == "f32" and row["reference_kv_dtype"] == "f16"
    assert row["chunks"] == 2 and row["tokens_scored"] == 30 and row["ppl"] > 1
    assert row["corpus"] == str(text)
    assert main([*args, "--threads", "1", "--backend", "cpu", "--no-progress"]) == 0
    table = capsys.readouterr().out
    assert "perplexity" in table and "KLD" not in table  # f16 against f16: no reference run
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\xff\xfe\x00bad")
    assert main(["perplexity", model, "--text", str(bad), "--ctx", "32"]) == 1
    assert "not UTF-8" in capsys.readouterr().err


@pytest.mark.slow
def test_default_model_agrees_with_llama_cpp():
    # The same tokens, chunks and scored positions through llama.cpp's own logits: perplexity
    # within 1 % (the bound; both read the same Q4_1 weights, and their activation
    # quantization and kernels differ).
    llama_cpp = pytest.importorskip("llama_cpp")
    from real_model import smollm2_gguf

    path = str(smollm2_gguf())
    _, text = default_corpus()
    ctx, n = 256, 6
    llm = longbow.LLM(path, num_threads=2, max_model_len=ctx)
    ours = perplexity(llm, text, ctx, max_chunks=n)
    peer = llama_cpp.Llama(
        model_path=path, n_ctx=ctx, n_batch=ctx, logits_all=True, n_threads=2, verbose=False
    )
    nll = []
    for chunk in chunk_tokens(llm, text, ctx)[:n]:
        peer.reset()
        peer.eval(chunk)
        scores = np.asarray(peer.scores[:ctx], np.float64)
        for j in range(ctx // 2, ctx - 1):
            row = scores[j]
            lse = row.max() + math.log(np.exp(row - row.max()).sum())
            nll.append(lse - row[chunk[j + 1]])
    theirs = math.exp(np.mean(nll))
    assert ours["ppl"] == pytest.approx(theirs, rel=0.01), (ours["ppl"], theirs)
