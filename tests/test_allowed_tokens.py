"""Allowed-token masks (structured output): the sample op's mask_row on every backend against the
numpy rule, and Engine.set_allowed_tokens end to end on tiny models (n samples, batching,
prefill, preemption, speculative decoding, errors)."""

from __future__ import annotations

import numpy as np
import pytest

import longbow
import op_refs as ref

core = pytest.importorskip("longbow._core")
ops = core.ops

SIM = "metal-sim" in core.available_backends()
BACKENDS = ["cpu"] + (["metal-sim"] if SIM else [])
TOL = {"logprob": 1e-5, "logprob_sim": 1e-4}


def rng(seed):
    return np.random.default_rng(seed)


def random_allowed(r, vocab, bans=()):
    """A (V,) bool mask: 1-3 ids, a tenth, or half of the vocabulary; at least one id not banned."""
    kind = r.integers(3)
    size = [int(r.integers(1, 4)), max(1, vocab // 10), max(1, vocab // 2)][kind]
    allowed = np.zeros(vocab, bool)
    allowed[r.choice(vocab, size=min(size, vocab), replace=False)] = True
    free = np.setdiff1d(np.arange(vocab), np.asarray(bans, dtype=np.int64))
    if len(free) and not allowed[free].any():
        allowed[int(r.choice(free))] = True
    return allowed


def masked_batch(r, vocab, rows, temperatures=(0.0, 0.3, 0.8, 1.0, 1.7)):
    """(logits, op params, reference params, masks (M, words)): about half of the rows masked."""
    logits = (r.standard_normal((rows, vocab)) * 3).astype(np.float32)
    params, refs, masks = [], [], []
    for _ in range(rows):
        p = ref.random_sample_params(
            r, vocab, temperatures=list(temperatures), top_ks=[1, 2, 5, 40]
        )
        q = dict(p)
        if r.random() < 0.6:
            allowed = random_allowed(r, vocab, p.get("ban_tokens", []))
            p["mask_row"] = len(masks)
            masks.append(ref.mask_words(allowed))
            q["allowed"] = allowed
        params.append(p)
        refs.append(q)
    words = -(-vocab // 32)
    return logits, params, refs, np.array(masks, np.uint32).reshape(-1, words)


@pytest.mark.parametrize("vocab", [1, 31, 32, 33, 4097])
def test_masked_rows_match_numpy_rule(vocab):
    r = rng(vocab)
    logits, params, refs, masks = masked_batch(r, vocab, rows=32)
    ids, lps = ops.sample("cpu", logits, params, allowed=masks)
    for i, q in enumerate(refs):
        want_id, want_lp = ref.sample(logits[i], q)
        assert ids[i] == want_id, (i, q)
        if "allowed" in q:
            assert q["allowed"][ids[i]], (i, q)
        # The logprob is the raw logits' log-softmax, mask or not.
        assert lps[i] == pytest.approx(want_lp, abs=TOL["logprob"])


@pytest.mark.skipif(not SIM, reason="this build has no metal-sim backend")
@pytest.mark.parametrize("vocab", [1, 31, 33, 4097])
def test_metal_sim_masked_rows_match_cpu(vocab):
    r = rng(50 + vocab)
    logits, params, refs, masks = masked_batch(r, vocab, rows=8)
    ids, lps = ops.sample("metal-sim", logits, params, allowed=masks)
    want_ids, want_lps = ops.sample("cpu", logits, params, allowed=masks)
    np.testing.assert_array_equal(ids, want_ids, err_msg=str(params))
    np.testing.assert_allclose(lps, want_lps, atol=TOL["logprob_sim"], rtol=1e-5)
    for i, q in enumerate(refs):
        assert "allowed" not in q or q["allowed"][ids[i]], (i, q)


@pytest.mark.parametrize("backend", BACKENDS)
def test_greedy_is_argmax_over_allowed_ids(backend):
    vocab = 300
    logits = rng(1).standard_normal((4, vocab)).astype(np.float32)
    logits[:, 10] = 9.0  # the global argmax, never allowed below
    logits[0, [40, 70, 250]] = 5.0  # a tie among allowed ids: the lowest wins
    logits[1, [40, 70]] = [-3.0, -2.0]  # the best allowed id is far from the best id
    allowed = np.zeros((2, vocab), bool)
    allowed[0, [70, 250, 40, 299]] = True
    allowed[1, [40, 70]] = True
    masks = np.stack([ref.mask_words(a) for a in allowed])
    params = [{"mask_row": 0}, {"mask_row": 1}, {}, {"mask_row": 1, "temperature": 0.0}]
    ids, lps = ops.sample(backend, logits, params, allowed=masks)
    assert ids.tolist() == [40, 70, 10, int(np.argmax(np.where(allowed[1], logits[3], -np.inf)))]
    raw = logits.astype(np.float64)
    lse = raw.max(1) + np.log(np.exp(raw - raw.max(1, keepdims=True)).sum(1))
    np.testing.assert_allclose(lps, raw[np.arange(4), ids] - lse, atol=TOL["logprob_sim"])


@pytest.mark.parametrize("backend", BACKENDS)
def test_unmasked_rows_and_top_logprobs_are_unaffected(backend):
    r = rng(2)
    vocab, rows, max_top = 500, 8, 6
    logits, params, _, masks = masked_batch(r, vocab, rows)
    for i, p in enumerate(params):
        p["top_logprobs"] = 1 + i % max_top
    plain = [{k: v for k, v in p.items() if k != "mask_row"} for p in params]
    ids, lps, top_ids, top_lps = ops.sample(backend, logits, params, max_top=max_top, allowed=masks)
    want_ids, want_lps, want_top_ids, want_top_lps = ops.sample(
        backend, logits, plain, max_top=max_top
    )
    # Top logprobs come from the raw logits: the mask changes only the drawn ids.
    np.testing.assert_array_equal(top_ids, want_top_ids)
    np.testing.assert_array_equal(top_lps, want_top_lps)
    unmasked = np.array(["mask_row" not in p for p in params])
    assert unmasked.any() and (~unmasked).any()
    np.testing.assert_array_equal(ids[unmasked], want_ids[unmasked])
    np.testing.assert_array_equal(lps[unmasked], want_lps[unmasked])
    # A masked row whose choice was disallowed draws something else.
    allowed_of = [None if "mask_row" not in p else masks[p["mask_row"]] for p in params]
    for i, m in enumerate(allowed_of):
        if m is not None:
            assert (m[ids[i] // 32] >> (ids[i] % 32)) & 1, i


@pytest.mark.parametrize("backend", BACKENDS)
def test_seeded_masked_draws_equal_on_every_backend_and_follow_the_mask(backend):
    r = rng(3)
    vocab, n = 200, 64
    logits = np.repeat((r.standard_normal((1, vocab)) * 2).astype(np.float32), n, 0)
    allowed = np.zeros(vocab, bool)
    allowed[[3, 77, 150, 199]] = True
    p = {"temperature": 1.0, "seed": 99, "mask_row": 0}
    params = [dict(p, counter=c) for c in range(n)]
    ids, _ = ops.sample(backend, logits, params, allowed=ref.mask_words(allowed)[None])
    assert set(ids.tolist()) <= {3, 77, 150, 199}
    want = [ref.sample(logits[0], dict(p, counter=c, allowed=allowed))[0] for c in range(n)]
    assert ids.tolist() == want
    assert len(set(ids.tolist())) > 1  # the draw moves with the counter


def test_masked_probs_and_draft_rows():
    r = rng(4)
    vocab, rows = 300, 12
    logits = (r.standard_normal((rows, vocab)) * 2).astype(np.float32)
    allowed = np.stack([random_allowed(r, vocab) for _ in range(rows)])
    masks = np.stack([ref.mask_words(a) for a in allowed])
    params = [
        dict(ref.random_sample_params(r, vocab, [0.0, 0.7, 1.3], [2, 40]), mask_row=i, probs_row=i)
        for i in range(rows)
    ]
    params = [{k: v for k, v in p.items() if k != "ban_tokens"} for p in params]
    ids, _, probs = ops.sample(
        "cpu", logits, params, probs=np.zeros((rows, vocab), np.float32), allowed=masks
    )
    for i, p in enumerate(params):
        want = ref.truncated_probs(logits[i], dict(p, allowed=allowed[i]))
        np.testing.assert_allclose(probs[i], want, atol=1e-6)
        assert allowed[i][ids[i]] and (probs[i][~allowed[i]] == 0).all()
    # Rejection rows: drafts drawn from an unmasked q are kept only where allowed.
    q = np.full((rows, vocab), 1.0 / vocab, np.float32)
    drafts = [
        dict(p, draft_row=i, draft_token=int(r.integers(vocab))) for i, p in enumerate(params)
    ]
    drafts = [{k: v for k, v in p.items() if k != "probs_row"} for p in drafts]
    ids, _, _ = ops.sample("cpu", logits, drafts, probs=q, allowed=masks)
    for i, p in enumerate(drafts):
        assert allowed[i][ids[i]], (i, p)
        assert ids[i] == ref.speculative_sample(
            logits[i], dict(p, allowed=allowed[i]), q[i], p["draft_token"]
        )


@pytest.mark.parametrize("backend", BACKENDS)
def test_mask_bad_args(backend):
    logits = np.zeros((2, 40), np.float32)
    masks = np.ones((1, 2), np.uint32)
    if backend == "cpu":  # the device kernel clamps rows; the CPU checks them
        with pytest.raises(ValueError, match="mask_row"):
            ops.sample(backend, logits, [{"mask_row": 1}, {}], allowed=masks)
    with pytest.raises(ValueError, match="mask_words"):
        ops.sample(backend, logits, [{"mask_row": 0}, {}], allowed=np.ones((1, 3), np.uint32))


# ---- engine ----

VOCAB = 100  # not a multiple of 32: the last word has bits beyond the vocabulary


@pytest.fixture(scope="module")
def model(tiny_model_factory):
    return str(tiny_model_factory("gguf", vocab=VOCAB, seed=3))


def _engine(path, **kw):
    kw.setdefault("num_threads", 1)
    kw.setdefault("max_model_len", 128)
    return core.Engine(path, backend=kw.pop("backend", "cpu"), **kw)


def words(ids, vocab=VOCAB):
    allowed = np.zeros(vocab, bool)
    allowed[list(ids)] = True
    return ref.mask_words(allowed)


def _params(**kw):
    kw.setdefault("ignore_eos", True)
    return longbow.SamplingParams(**kw).to_engine()


def run(engine, requests, masks, vocab=VOCAB):
    """requests {id: (prompt, params)}; masks {(id, sample): allowed ids}. Each mask is set once
    before the first step and again only after that sample produced a token, as a grammar host
    does: a mask lost in prefill, before a fork or in a preemption would let a token escape."""
    for rid, (prompt, params) in requests.items():
        engine.add_request(rid, prompt, params)
    for (rid, idx), allowed in masks.items():
        engine.set_allowed_tokens(rid, idx, words(allowed, vocab))
    out: dict = {}
    spec: dict = {}
    while engine.has_unfinished():
        for rid, tok, _lp, done, _reason, idx, _top, counts in engine.step():
            if tok < 0:
                continue
            out.setdefault((rid, idx), []).append(tok)
            spec[(rid, idx)] = counts
            if not done and (rid, idx) in masks:
                engine.set_allowed_tokens(rid, idx, words(masks[(rid, idx)], vocab))
    return out, spec


PROMPT_M = [5, 17, 42, 9, 33, 71, 2, 8]
PROMPT_U = [11, 12, 13, 60, 61, 3, 7, 90, 44]
ALLOWED = {0: (7, 51, 98), 1: (20, 21, 64)}  # per sample of the masked request


@pytest.mark.parametrize("temperature", [0.0, 0.9])
def test_masked_samples_beside_an_unmasked_request(model, temperature):
    alone, _ = run(_engine(model), {"u": (PROMPT_U, _params(max_tokens=10))}, {})
    e = _engine(model)
    reqs = {
        "m": (PROMPT_M, _params(max_tokens=10, n=2, temperature=temperature, seed=7)),
        "u": (PROMPT_U, _params(max_tokens=10)),
    }
    got, _ = run(e, reqs, {("m", i): a for i, a in ALLOWED.items()})
    for i, allowed in ALLOWED.items():
        assert len(got[("m", i)]) == 10
        assert set(got[("m", i)]) <= set(allowed), (i, got[("m", i)])
    assert got[("u", 0)] == alone[("u", 0)]
    # The masks matter: unmasked, the request's tokens leave these small sets.
    free, _ = run(_engine(model), {"m": reqs["m"]}, {})
    for i, allowed in ALLOWED.items():
        assert not set(free[("m", i)]) <= set(allowed)


def test_mask_waits_through_chunked_prefill_and_applies_once(model):
    e = _engine(model, max_num_batched_tokens=4)
    prompt = list(range(3, 20))  # 5 steps of prefill
    e.add_request("m", prompt, _params(max_tokens=3))
    e.set_allowed_tokens("m", 0, words([66]))
    outs = e.step()  # a prefill chunk: nothing sampled, the mask stays
    assert outs == [] and e.clear_allowed_tokens("m", 0)
    assert not e.clear_allowed_tokens("m", 0)
    e.set_allowed_tokens("m", 0, words([66]))
    toks = []
    while not toks:
        toks = [t for _, t, *_ in e.step()]
    assert toks == [66]
    assert not e.clear_allowed_tokens("m", 0)  # consumed by that token


def test_masks_survive_preemption(model):
    e = _engine(model, num_blocks=6, block_size=16, max_num_seqs=4, max_num_batched_tokens=32)
    rng_ = rng(9)
    reqs = {
        f"r{i}": ([int(t) for t in rng_.integers(3, VOCAB, 20)], _params(max_tokens=30))
        for i in range(4)
    }
    masks = {(rid, 0): (i + 3, 40 + i, 77) for i, rid in enumerate(reqs) if i % 2 == 0}
    got, _ = run(e, reqs, masks)
    assert e.stats()["num_preemptions"] > 0
    for key, allowed in masks.items():
        assert len(got[key]) == 30 and set(got[key]) <= set(allowed), key


def test_min_tokens_bans_yield_to_the_mask(model):
    # The grammar allows only end-of-sequence while min_tokens bans it: the mask wins.
    e = _engine(model)
    eos = e.eos_token_ids[0]
    e.add_request("m", PROMPT_M, _params(max_tokens=4, min_tokens=3, ignore_eos=False))
    e.set_allowed_tokens("m", 0, words([eos]))
    toks = []
    while e.has_unfinished():
        toks += [t for _, t, *_ in e.step()]
    assert toks[0] == eos and len(toks) == 4  # not a stop before min_tokens


@pytest.mark.skipif(not SIM, reason="this build has no metal-sim backend")
def test_masked_request_on_metal_sim(model):
    e = _engine(model, backend="metal-sim")
    reqs = {"m": (PROMPT_M, _params(max_tokens=3, n=2, temperature=0.8, seed=1))}
    got, _ = run(e, reqs, {("m", i): a for i, a in ALLOWED.items()})
    for i, allowed in ALLOWED.items():
        assert len(got[("m", i)]) == 3 and set(got[("m", i)]) <= set(allowed)


def test_masked_request_gets_no_drafts_under_ngram_speculation(tiny_model_factory):
    path = str(tiny_model_factory("gguf", vocab=32, seed=1))
    spec = {"speculative": "ngram", "ngram_min": 1, "ngram_max": 3, "speculative_max_batch": 8}
    prompt = [3, 4, 5, 6, 3, 4, 5, 6, 3, 4, 5, 6, 3, 4]
    allowed = (4, 5, 9)
    reqs = {
        "m": (prompt, _params(max_tokens=24)),
        "u": (prompt, _params(max_tokens=24)),
    }
    plain, _ = run(_engine(path), reqs, {("m", 0): allowed}, vocab=32)
    got, counts = run(_engine(path, **spec), reqs, {("m", 0): allowed}, vocab=32)
    assert got == plain
    assert set(got[("m", 0)]) <= set(allowed)
    assert counts[("m", 0)] == (0, 0, 0)  # no verify step, no draft token: one row per step
    assert counts[("u", 0)][1] > 0  # the proposer was drafting for the unmasked twin


def test_set_allowed_tokens_errors(model):
    e = _engine(model)
    e.add_request("r1", PROMPT_M, _params(max_tokens=4, n=2))
    ok = words([1, 2])
    assert len(ok) == 4
    bad = [
        (("nope", 0, ok), r"request 'nope'.*unknown request"),
        (("r1", 2, ok), r"request 'r1'.*sample_index in 0..1 \(n = 2\), found 2"),
        (("r1", -1, ok), r"request 'r1'.*found -1"),
        (("r1", 0, ok[:3]), r"request 'r1'.*expected 4 mask words.*found 3"),
        (("r1", 0, np.zeros(4, np.uint32)), r"request 'r1'.*allows no token"),
        (("r1", 0, np.array([1, 0, 0, 1 << 5], np.uint32)), r"request 'r1'.*allows token 101"),
        (("r1", 0, ok.astype(np.int64)), r"request 'r1'.*uint32.*int64"),
        (("r1", 0, ok.astype(np.float32)), r"request 'r1'.*uint32.*float32"),
        (("r1", 0, np.stack([ok, ok])), r"request 'r1'.*1-D.*2 dimensions"),
        (("r1", 0, [1, 2, 3, 4]), r"request 'r1'.*uint32.*list"),
    ]
    for args, match in bad:
        with pytest.raises(ValueError, match=match):
            e.set_allowed_tokens(*args)
    with pytest.raises(ValueError, match=r"request 'nope'"):
        e.clear_allowed_tokens("nope", 0)
    with pytest.raises(ValueError, match=r"request 'r1'.*found 5"):
        e.clear_allowed_tokens("r1", 5)
    e.set_allowed_tokens("r1", 1, ok)  # not forked yet: held by the request
    assert e.abort("r1", 1)
    with pytest.raises(ValueError, match=r"request 'r1'.*sample 1 is finished"):
        e.set_allowed_tokens("r1", 1, ok)
    assert not e.clear_allowed_tokens("r1", 1)
    # A strided view is read as its elements.
    e.set_allowed_tokens("r1", 0, np.stack([ok, ok], 1).reshape(-1)[::2])
    while e.has_unfinished():
        e.step()
    with pytest.raises(ValueError, match=r"request 'r1'.*unknown request"):
        e.set_allowed_tokens("r1", 0, ok)
