"""The sample op against the exact rule (op_refs.sample) and Philox against a Python Philox."""

from __future__ import annotations

import numpy as np
import pytest

import op_refs as ref

ops = pytest.importorskip("longbow._core").ops

BACKENDS = ["cpu"]
TOL = {"logprob": 1e-5, "chi2_per_dof": 3.0}


def rng(seed):
    return np.random.default_rng(seed)


# ---- Philox ----

# Known-answer vectors of Philox 4x32-10 (Random123 kat_vectors).
KAT = [
    ([0, 0, 0, 0], [0, 0], [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]),
    ([0xFFFFFFFF] * 4, [0xFFFFFFFF] * 2, [0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD]),
    (
        [0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344],
        [0xA4093822, 0x299F31D0],
        [0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1],
    ),
]


@pytest.mark.parametrize("counter,key,want", KAT)
def test_philox_known_answers(counter, key, want):
    assert ops.philox4x32_10(counter, key) == want
    assert ref.philox4x32_10(counter, key) == want


def test_philox_uniform_matches_python():
    r = rng(0)
    for _ in range(200):
        seed, counter = int(r.integers(0, 2**64, dtype=np.uint64)), int(r.integers(0, 2**32))
        u = ops.philox_uniform(seed, counter)
        assert u == ref.philox_uniform(seed, counter)
        assert 0.0 <= u < 1.0
    us = np.array([ops.philox_uniform(42, c) for c in range(4000)])
    assert abs(us.mean() - 0.5) < 0.02 and len(np.unique(us)) > 3990


# ---- greedy ----


@pytest.mark.parametrize("backend", BACKENDS)
def test_greedy_argmax_ties_and_logprob(backend):
    r = rng(1)
    logits = r.standard_normal((4, 1000)).astype(np.float32)
    logits[1, [7, 500, 999]] = 10.0  # tie: lowest index wins
    logits[2, :] = 0.0  # all tied
    ids, lps = ops.sample(backend, logits, [{}] * 4)
    assert ids.tolist() == [int(np.argmax(logits[0])), 7, 0, int(np.argmax(logits[3]))]
    for i in range(4):
        raw = logits[i].astype(np.float64)
        lse = raw.max() + np.log(np.exp(raw - raw.max()).sum())
        assert lps[i] == pytest.approx(raw[ids[i]] - lse, abs=TOL["logprob"])


def test_greedy_special_rows_plain_and_penalized_agree():
    # The plain greedy path (no penalties, no bans) and the general one pick the same id, also on
    # rows of -inf and rows holding NaN (the rule: the first index whose value beats all before it).
    logits = np.zeros((4, 300), np.float32)
    logits[0, :] = -np.inf
    logits[1, 5] = np.nan
    logits[1, 9] = 3.0
    logits[2, 0] = np.nan
    logits[2, 50] = 3.0
    logits[3, [40, 41]] = np.inf
    want = [0, 9, 0, 40]
    plain, _ = ops.sample("cpu", logits, [{}] * 4)
    general, _ = ops.sample(
        "cpu", logits, [{"repetition_penalty": 1.0, "penalty_tokens": [299]}] * 4
    )
    assert plain.tolist() == want and general.tolist() == want


def test_top_k_one_is_greedy():
    r = rng(2)
    logits = r.standard_normal((16, 5000)).astype(np.float32)
    params = [{"temperature": 0.7, "top_k": 1, "seed": s, "counter": s} for s in range(16)]
    ids, _ = ops.sample("cpu", logits, params)
    np.testing.assert_array_equal(ids, np.argmax(logits, axis=1))


# ---- exact agreement with the numpy rule ----


def random_params(r, vocab):
    return ref.random_sample_params(
        r, vocab, temperatures=[0.3, 0.8, 1.0, 1.7], top_ks=[1, 2, 5, 40, 300]
    )


@pytest.mark.parametrize("vocab", [1, 31, 33, 4097, 49152])
def test_sample_matches_numpy_rule(vocab):
    r = rng(vocab)
    rows = 24 if vocab < 49152 else 8
    logits = (r.standard_normal((rows, vocab)) * 3).astype(np.float32)
    params = [random_params(r, vocab) for _ in range(rows)]
    ids, lps = ops.sample("cpu", logits, params)
    for i in range(rows):
        want_id, want_lp = ref.sample(logits[i], params[i])
        assert ids[i] == want_id, (i, params[i])
        assert lps[i] == pytest.approx(want_lp, abs=TOL["logprob"])


def test_flat_logits_need_a_long_sorted_head():
    """top_p near 1 on near-uniform logits keeps thousands of candidates (lazy sort must grow)."""
    r = rng(3)
    vocab = 49152
    logits = (r.standard_normal((6, vocab)) * 0.01).astype(np.float32)
    params = [{"temperature": 1.0, "top_p": 0.97, "seed": 9, "counter": c} for c in range(3)]
    params += [{"temperature": 1.0, "seed": 9, "counter": c} for c in range(3)]
    ids, _ = ops.sample("cpu", logits, params)
    assert ids.tolist() == [ref.sample(logits[i], params[i])[0] for i in range(6)]


def test_seeded_reproducibility():
    r = rng(4)
    logits = r.standard_normal((1, 2000)).astype(np.float32)
    p = {"temperature": 1.0, "seed": 1234, "counter": 17}
    first = ops.sample("cpu", logits, [p])[0][0]
    assert all(ops.sample("cpu", logits, [p])[0][0] == first for _ in range(5))
    draws = ops.sample("cpu", np.repeat(logits, 64, 0), [dict(p, counter=c) for c in range(64)])[0]
    assert len(set(draws.tolist())) > 10  # the counter moves the draw


# ---- distribution ----


@pytest.mark.parametrize(
    "trunc",
    [{"top_k": 8}, {"top_p": 0.8}, {"min_p": 0.1}, {"top_k": 20, "top_p": 0.9, "min_p": 0.02}],
)
def test_distribution_matches_truncated_softmax(trunc):
    r = rng(5)
    vocab, n = 300, 6000
    logits = (r.standard_normal(vocab) * 2).astype(np.float32)
    p = dict(temperature=0.9, seed=77, **trunc)
    support, probs = ref.truncated_distribution(logits, p)
    rows = np.repeat(logits[None], n, 0)
    ids, _ = ops.sample("cpu", rows, [dict(p, counter=c) for c in range(n)])
    assert set(ids.tolist()) <= set(support.tolist())  # truncation exact
    counts = np.array([(ids == t).sum() for t in support])
    expected = probs * n
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 / max(len(support) - 1, 1) < TOL["chi2_per_dof"]


def _sim_available() -> bool:
    return "metal-sim" in pytest.importorskip("longbow._core").available_backends()


@pytest.mark.slow  # 20,000 threadgroups per case through the simulator: ~45 s each
@pytest.mark.parametrize(
    "trunc",
    [{}, {"top_k": 8}, {"top_p": 0.8}, {"min_p": 0.1}, {"top_k": 20, "top_p": 0.9, "min_p": 0.02}],
)
def test_device_sampler_distribution_matches_numpy_and_cpu(trunc):
    # The device sampler (metal-sim) draws from the exact truncated softmax, checked by counts
    # alone (independent of Philox identity): 20,000 draws against numpy's probabilities, and a
    # two-sample test against the CPU's draws at other seeds.
    if not _sim_available():
        pytest.skip("this build has no metal-sim backend")
    r = rng(6)
    vocab, n = 64, 20000
    logits = (r.standard_normal(vocab) * 1.5).astype(np.float32)
    p = dict(temperature=0.8, **trunc)
    support, probs = ref.truncated_distribution(logits, p)
    rows = np.repeat(logits[None], n, 0)
    ids, _ = ops.sample("metal-sim", rows, [dict(p, seed=91, counter=c) for c in range(n)])
    cpu, _ = ops.sample("cpu", rows, [dict(p, seed=4242, counter=c) for c in range(n)])
    assert set(ids.tolist()) <= set(support.tolist())  # truncation exact
    counts = np.array([(ids == t).sum() for t in support])
    cpu_counts = np.array([(cpu == t).sum() for t in support])
    dof = max(len(support) - 1, 1)
    chi2 = float(((counts - probs * n) ** 2 / (probs * n)).sum())
    assert chi2 / dof < TOL["chi2_per_dof"], (chi2, dof)
    both = counts + cpu_counts  # two samples of equal size: sum (a - b)^2 / (a + b)
    chi2_two = float(((counts - cpu_counts) ** 2 / np.maximum(both, 1)).sum())
    assert chi2_two / dof < TOL["chi2_per_dof"], (chi2_two, dof)


# ---- speculative decoding: draft distributions and rejection sampling ----


def random_distribution(r, vocab, zeros=0.3):
    """A random distribution over vocab ids with some exact zeros (f32, sums to ~1)."""
    q = r.dirichlet(np.full(vocab, 0.5)) * (r.random(vocab) >= zeros)
    q[int(r.integers(vocab))] += 1e-3  # never all zero
    return (q / q.sum()).astype(np.float32)


@pytest.mark.parametrize("vocab", [7, 300, 4097])
def test_probs_rows_hold_the_distribution_drawn_from(vocab):
    r = rng(20 + vocab)
    rows = 16
    logits = (r.standard_normal((rows, vocab)) * 3).astype(np.float32)
    params = [dict(random_params(r, vocab), probs_row=rows - 1 - i) for i in range(rows)]
    params[0]["temperature"] = 0.0  # one-hot
    params[1] = {"probs_row": rows - 2}  # plain greedy path
    for p in params[2:6]:
        p["stream"] = ref.STREAM_DRAFT
    ids, _, probs = ops.sample("cpu", logits, params, probs=np.full((rows, vocab), 7.0, np.float32))
    for i, p in enumerate(params):
        want = ref.truncated_probs(logits[i], p)
        np.testing.assert_allclose(probs[rows - 1 - i], want, atol=1e-6, err_msg=str(p))
        assert ids[i] == ref.sample(logits[i], p)[0], (i, p)
        assert probs[rows - 1 - i][ids[i]] > 0


def test_streams_draw_independently():
    logits = np.zeros((2, 1000), np.float32)
    p = {"temperature": 1.0, "seed": 5, "counter": 3}
    ids, _ = ops.sample("cpu", logits, [p, dict(p, stream=ref.STREAM_DRAFT)])
    assert ids.tolist() == [
        ref.sample(logits[0], p)[0],
        ref.sample(logits[1], dict(p, stream=1))[0],
    ]
    assert ids[0] != ids[1]


@pytest.mark.parametrize("vocab", [5, 300, 4097])
def test_rejection_rows_match_numpy_rule(vocab):
    r = rng(30 + vocab)
    rows = 40
    logits = (r.standard_normal((rows, vocab)) * 2).astype(np.float32)
    q = np.stack([random_distribution(r, vocab) for _ in range(rows)])
    params = []
    for i in range(rows):
        p = random_params(r, vocab)
        x = int(r.choice(vocab, p=q[i] / q[i].sum())) if i % 4 else int(r.integers(vocab))
        params.append(dict(p, draft_row=i, draft_token=x))
    params[0]["temperature"] = 0.0  # greedy: the argmax, q unread
    ids, _, after = ops.sample("cpu", logits, params, probs=q)
    np.testing.assert_array_equal(after, q)  # read only
    for i, p in enumerate(params):
        assert ids[i] == ref.speculative_sample(logits[i], p, q[i], p["draft_token"]), (i, p)


@pytest.mark.parametrize("trunc", [{}, {"top_k": 6, "top_p": 0.9}])
def test_rejection_sampling_has_the_target_distribution(trunc):
    """Drafts drawn from q (an unrelated distribution), verified against p: the output is
    distributed as p, and the acceptance rate is sum(min(p, q))."""
    r = rng(40)
    vocab, n = 24, 20000
    logits = (r.standard_normal(vocab) * 1.5).astype(np.float32)
    p = dict(temperature=1.0, seed=11, **trunc)
    target = ref.truncated_probs(logits, p)
    q = random_distribution(r, vocab, zeros=0.2)
    drafts = r.choice(vocab, size=n, p=q / q.sum())
    params = [dict(p, counter=c, draft_row=0, draft_token=int(x)) for c, x in enumerate(drafts)]
    ids, _, _ = ops.sample("cpu", np.repeat(logits[None], n, 0), params, probs=q[None])
    support = np.nonzero(target)[0]
    assert set(ids.tolist()) <= set(support.tolist())
    counts = np.bincount(ids, minlength=vocab)[support]
    expected = target[support] * n
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 / max(len(support) - 1, 1) < TOL["chi2_per_dof"]
    accept = float(np.minimum(target, q).sum())
    rate = float((ids == drafts).mean())
    assert abs(rate - accept) < 4 * np.sqrt(accept * (1 - accept) / n) + 1e-3


def test_speculative_bad_params():
    logits = np.zeros((2, 8), np.float32)
    probs = np.full((1, 8), 0.125, np.float32)
    with pytest.raises(ValueError, match=r"row 0: expected probs_row and draft_row in -1..0"):
        ops.sample("cpu", logits, [{"draft_row": 1, "draft_token": 0}, {}], probs=probs)
    with pytest.raises(ValueError, match=r"row 1: expected 0 <= draft_token < 8, found 8"):
        ops.sample("cpu", logits, [{}, {"draft_row": 0, "draft_token": 8}], probs=probs)
    with pytest.raises(ValueError, match=r"num_probs_rows 0"):
        ops.sample("cpu", logits, [{"probs_row": 0}, {}])
    with pytest.raises(ValueError, match=r"not both in one call"):
        ops.sample(
            "cpu", logits, [{"probs_row": 0}, {"draft_row": 0, "draft_token": 1}], probs=probs
        )


# ---- penalties ----


def test_penalties_change_the_greedy_choice():
    logits = np.array([[3.0, 2.9, -1.0, 0.5]], np.float32)
    ids, lps = ops.sample("cpu", logits, [{"repetition_penalty": 1.2, "penalty_tokens": [0]}])
    assert ids[0] == 1  # 3.0 / 1.2 = 2.5 < 2.9
    raw = logits[0].astype(np.float64)
    assert lps[0] == pytest.approx(
        raw[1] - np.log(np.exp(raw).sum()), abs=1e-5
    )  # logprob of the raw logits
    ids, _ = ops.sample("cpu", logits, [{"presence_penalty": 0.2, "penalty_tokens": [0, 0, 0]}])
    assert ids[0] == 1  # 3.0 - 0.2 < 2.9, presence counted once
    ids, _ = ops.sample("cpu", logits, [{"presence_penalty": 0.05, "penalty_tokens": [0, 0, 0]}])
    assert ids[0] == 0  # 2.95 > 2.9
    ids, _ = ops.sample("cpu", logits, [{"frequency_penalty": 0.05, "penalty_tokens": [0, 0, 0]}])
    assert ids[0] == 1  # 3.0 - 0.15 < 2.9: frequency counts every occurrence
    ids, _ = ops.sample(
        "cpu", logits, [{"repetition_penalty": 3.0, "penalty_tokens": [2, 3, 0, 1]}]
    )
    assert ids[0] == 0  # 3.0/3 = 1.0 vs 2.9/3; negative logit -1 * 3 stays lowest


def test_banned_ids_are_never_drawn():
    logits = np.array([[3.0, 2.9, -1.0, 0.5]], np.float32)
    ids, lps = ops.sample("cpu", logits, [{"ban_tokens": [0]}])
    assert ids[0] == 1  # greedy skips the banned argmax
    raw = logits[0].astype(np.float64)
    assert lps[0] == pytest.approx(
        raw[1] - np.log(np.exp(raw).sum()), abs=1e-5
    )  # logprob of the raw logits
    ids, _ = ops.sample("cpu", logits, [{"ban_tokens": [0, 1, 1]}])
    assert ids[0] == 3
    r = rng(6)
    row = (r.standard_normal(50) * 0.1).astype(np.float32)
    row[7] = 8.0  # nearly all the mass, banned
    n = 500
    draws, _ = ops.sample(
        "cpu",
        np.repeat(row[None], n, 0),
        [{"temperature": 1.0, "seed": 3, "counter": c, "ban_tokens": [7, 9]} for c in range(n)],
    )
    assert not {7, 9} & set(draws.tolist()) and len(set(draws.tolist())) > 20


def test_sample_bad_params():
    logits = np.zeros((1, 10), np.float32)
    with pytest.raises(ValueError, match="temperature"):
        ops.sample("cpu", logits, [{"temperature": -1.0}])
    with pytest.raises(ValueError, match="top_p"):
        ops.sample("cpu", logits, [{"temperature": 1.0, "top_p": 0.0}])
    with pytest.raises(ValueError, match="penalty token 0: expected 0 <= id < 10, found 10"):
        ops.sample("cpu", logits, [{"penalty_tokens": [10]}])
    with pytest.raises(ValueError, match="banned id 0: expected 0 <= id < 10, found -1"):
        ops.sample("cpu", logits, [{"ban_tokens": [-1]}])
    with pytest.raises(ValueError, match="unknown key 'topk'"):
        ops.sample("cpu", logits, [{"topk": 3}])
    with pytest.raises(ValueError, match="one dict per logits row"):
        ops.sample("cpu", logits, [{}, {}])


# ---- top logprobs ----


def special_rows(vocab):
    """Rows of -inf, NaN, +inf, ties and signed zeros (vocab >= 8)."""
    rows = np.zeros((6, vocab), np.float32)
    rows[0, :] = -np.inf
    rows[1, 3] = np.nan
    rows[1, 5] = 2.0
    rows[2, [1, 4]] = np.inf
    rows[3, [2, 6, 7]] = 1.5  # ties: lower id first
    rows[4, ::2] = -0.0
    rows[4, 1] = -1.0
    rows[5, :] = np.nan
    rows[5, 6] = -np.inf
    return rows


def check_top(lps, top_ids, top_lps, logits, params, max_top):
    for i, p in enumerate(params):
        k = p.get("top_logprobs", 0)
        want_ids, want_lps = ref.top_logprobs(logits[i], k)
        np.testing.assert_array_equal(top_ids[i, :k], want_ids, err_msg=f"row {i}")
        np.testing.assert_allclose(
            top_lps[i, :k], want_lps, atol=TOL["logprob"], equal_nan=True, err_msg=f"row {i}"
        )
        assert (top_ids[i, k:] == -1).all() and (top_lps[i, k:] == -np.inf).all()  # padding


@pytest.mark.parametrize("vocab", [1, 31, 33, 4097])
def test_top_logprobs_match_numpy(vocab):
    r = rng(100 + vocab)
    rows, max_top = 16, 20
    logits = (r.standard_normal((rows, vocab)) * 3).astype(np.float32)
    logits[1] = np.round(logits[1])  # many ties
    params = [
        dict(random_params(r, vocab), top_logprobs=int(r.integers(0, max_top + 1)))
        for _ in range(rows)
    ]
    params[0]["top_logprobs"] = max_top  # k > vocab for the small vocabularies
    ids, lps, top_ids, top_lps = ops.sample("cpu", logits, params, max_top=max_top)
    check_top(lps, top_ids, top_lps, logits, params, max_top)
    # The top entries are reported, never drawn from: ids and logprobs are those without them.
    plain = [{k: v for k, v in p.items() if k != "top_logprobs"} for p in params]
    want_ids, want_lps = ops.sample("cpu", logits, plain)
    np.testing.assert_array_equal(ids, want_ids)
    np.testing.assert_array_equal(lps, want_lps)
    for i in range(rows):  # the chosen logprob and a top entry of the same id agree
        hit = top_ids[i] == ids[i]
        assert np.allclose(top_lps[i][hit], lps[i])


def test_top_logprobs_special_rows():
    logits = special_rows(12)
    params = [
        {"top_logprobs": 5},
        {"top_logprobs": 12},
        {"top_logprobs": 3, "temperature": 0.5, "seed": 1},
        {"top_logprobs": 4},
        {"top_logprobs": 8},
        {"top_logprobs": 2},
    ]
    _, lps, top_ids, top_lps = ops.sample("cpu", logits, params, max_top=12)
    check_top(lps, top_ids, top_lps, logits, params, 12)
    assert top_ids[1, :2].tolist() == [5, 0] and top_ids[1, -1] == 3  # NaN ranks last
    assert top_ids[3].tolist()[:4] == [2, 6, 7, 0]
    assert top_ids[4].tolist()[:3] == [0, 2, 3]  # -0 ties +0, lower id first


def test_top_logprobs_bad_args():
    logits = np.zeros((2, 10), np.float32)
    with pytest.raises(ValueError, match=r"\[cpu.sample\] expected max_top in 0..20, found 21"):
        ops.sample("cpu", logits, [{}, {}], max_top=21)
    with pytest.raises(
        ValueError, match=r"row 1: expected num_top_logprobs in 0..max_top \(4\), found 5"
    ):
        ops.sample("cpu", logits, [{}, {"top_logprobs": 5}], max_top=4)
    with pytest.raises(
        ValueError, match=r"row 0: expected num_top_logprobs in 0..max_top \(0\), found 1"
    ):
        ops.sample("cpu", logits, [{"top_logprobs": 1}, {}])
    with pytest.raises(ValueError, match="found -1"):
        ops.sample("cpu", logits, [{"top_logprobs": -1}, {}], max_top=3)
