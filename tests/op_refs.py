"""Naive numpy references for every backend op (float64 where it matters), used by the op tests."""

from __future__ import annotations

import numpy as np

# ---- weights ----

_QTYPES = {"q8_0": "Q8_0", "q4_0": "Q4_0", "q4_1": "Q4_1"}


def make_weight(w: np.ndarray, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """(raw bytes of w (N, K) in dtype, the f32 values those bytes decode to)."""
    w = np.ascontiguousarray(w, dtype=np.float32)
    if dtype == "f32":
        return w.view(np.uint8).reshape(-1), w.copy()
    if dtype == "f16":
        h = w.astype(np.float16)
        return h.view(np.uint8).reshape(-1), h.astype(np.float32)
    if dtype == "bf16":
        bits = w.view(np.uint32)
        # round to nearest even on the upper 16 bits
        rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)
        deq = (rounded.astype(np.uint32) << 16).view(np.float32)
        return rounded.view(np.uint8).reshape(-1), deq
    from gguf import GGMLQuantizationType
    from gguf.quants import dequantize, quantize

    qt = getattr(GGMLQuantizationType, _QTYPES[dtype])
    raw = quantize(w, qt)
    return np.ascontiguousarray(raw).view(np.uint8).reshape(-1), dequantize(raw, qt).astype(
        np.float32
    )


# ---- dense ops ----


def matmul(x, w_deq, bias=None, acc=None):
    out = x.astype(np.float64) @ w_deq.astype(np.float64).T
    if bias is not None:
        out += bias
    if acc is not None:
        out += acc
    return out


def rms_norm(x, weight, eps):
    x = x.astype(np.float64)
    inv = 1.0 / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps)
    return x * inv * weight


def rope(x, positions, inv_freq, interleaved):
    """x (T, H, D) rotated by angle pos * inv_freq on the first 2 * len(inv_freq) dims."""
    x = x.astype(np.float64).copy()
    half = len(inv_freq)
    ang = positions.astype(np.float64)[:, None] * inv_freq.astype(np.float64)[None, :]  # (T, half)
    c, s = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
    if interleaved:
        i0, i1 = np.arange(half) * 2, np.arange(half) * 2 + 1
    else:
        i0, i1 = np.arange(half), np.arange(half) + half
    x0, x1 = x[..., i0].copy(), x[..., i1].copy()
    x[..., i0] = x0 * c - x1 * s
    x[..., i1] = x0 * s + x1 * c
    return x


def silu_mul(g, u):
    g = g.astype(np.float64)
    return g / (1.0 + np.exp(-g)) * u


def gelu_tanh_mul(g, u):
    g = g.astype(np.float64)
    return 0.5 * g * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (g + 0.044715 * g**3))) * u


def softcap(x, cap):
    return cap * np.tanh(x.astype(np.float64) / cap)


def kv_write(k, v, k_cache, v_cache, slots):
    kc, vc = k_cache.copy(), v_cache.copy()
    nb, bs = kc.shape[:2]
    for t, slot in enumerate(slots):
        if slot < 0:
            continue
        kc[slot // bs, slot % bs] = k[t].astype(kc.dtype)
        vc[slot // bs, slot % bs] = v[t].astype(vc.dtype)
    return kc, vc


def attention(
    q,
    k_cache,
    v_cache,
    block_tables,
    query_start,
    seq_lens,
    positions,
    scale,
    sliding_window=0,
    logit_softcap=0.0,
):
    """Paged causal attention, one (token, head) at a time in float64. sliding_window W > 0: the
    token at p sees keys p - W < j <= p; logit_softcap c > 0: scores become c * tanh(s / c)."""
    T, H, D = q.shape
    bs, hkv = k_cache.shape[1], k_cache.shape[2]
    group = H // hkv
    out = np.zeros((T, H, D))
    for s in range(len(seq_lens)):
        n = seq_lens[s]
        slots = [(block_tables[s, j // bs], j % bs) for j in range(n)]
        keys = np.stack([k_cache[b, o] for b, o in slots]).astype(np.float64)  # (n, hkv, D)
        vals = np.stack([v_cache[b, o] for b, o in slots]).astype(np.float64)
        for t in range(query_start[s], query_start[s + 1]):
            p = positions[t]
            lo = max(0, p - sliding_window + 1) if sliding_window > 0 else 0
            for h in range(H):
                sc = keys[lo : p + 1, h // group] @ q[t, h].astype(np.float64) * scale
                if logit_softcap > 0:
                    sc = logit_softcap * np.tanh(sc / logit_softcap)
                w = np.exp(sc - sc.max())
                out[t, h] = (w / w.sum()) @ vals[lo : p + 1, h // group]
    return out


# ---- sampling (the exact rule of backend.h / sample.cpp) ----

M0, M1, W0, W1 = 0xD2511F53, 0xCD9E8D57, 0x9E3779B9, 0xBB67AE85
MASK = 0xFFFFFFFF


def philox4x32_10(counter, key):
    c0, c1, c2, c3 = counter
    k0, k1 = key
    for r in range(10):
        if r:
            k0, k1 = (k0 + W0) & MASK, (k1 + W1) & MASK
        p0, p1 = M0 * c0, M1 * c2
        c0, c1, c2, c3 = (p1 >> 32) ^ c1 ^ k0, p1 & MASK, (p0 >> 32) ^ c3 ^ k1, p0 & MASK
    return [c0, c1, c2, c3]


# Philox counter word 1 (metal/philox.h LONGBOW_PHILOX_STREAM_*).
STREAM_TOKEN, STREAM_DRAFT, STREAM_ACCEPT = 0, 1, 2


def philox_uniform(seed, counter, stream=STREAM_TOKEN):
    x0 = philox4x32_10([counter & MASK, stream, 0, 0], [seed & MASK, (seed >> 32) & MASK])[0]
    return (x0 >> 8) * 2.0**-24


def mask_words(allowed):
    """(ceil(V / 32),) uint32 words of a (V,) bool array: bit t % 32 of word t // 32 = allowed[t]."""
    bits = np.zeros(-(-len(allowed) // 32) * 32, np.uint64)
    bits[: len(allowed)] = np.asarray(allowed, bool)
    return (bits.reshape(-1, 32) << np.arange(32, dtype=np.uint64)).sum(1).astype(np.uint32)


def penalize(logits, p):
    """The working logits: disallowed ids (p["allowed"], a (V,) bool array, the op's mask_row)
    at -inf, then penalties, then banned ids at -inf."""
    lg = logits.astype(np.float32).copy()
    if "allowed" in p:
        lg[~np.asarray(p["allowed"], bool)] = -np.inf
    toks = p.get("penalty_tokens", [])
    ids, counts = np.unique(np.asarray(toks, dtype=np.int64), return_counts=True)
    rp = np.float32(p.get("repetition_penalty", 1.0))
    for t, c in zip(ids, counts):
        v = lg[t]
        if rp != 1.0:
            v = v / rp if v > 0 else v * rp
        v = np.float32(v - np.float32(p.get("presence_penalty", 0.0)))
        v = np.float32(v - np.float32(p.get("frequency_penalty", 0.0)) * np.float32(c))
        lg[t] = v
    bans = p.get("ban_tokens", [])
    if len(bans):
        lg[np.asarray(bans, dtype=np.int64)] = -np.inf  # banned ids cannot be drawn
    return lg


def truncated_distribution(logits, p):
    """(candidate ids in draw order, their probabilities) after penalties, T, top_k/top_p/min_p."""
    lg = penalize(logits, p) * np.float32(1.0 / np.float32(p["temperature"]))
    lg = lg.astype(np.float32)
    order = np.lexsort((np.arange(len(lg)), -lg.astype(np.float64)))  # logit desc, index asc
    k = p.get("top_k", 0)
    if 0 < k < len(lg):
        order = order[:k]
    w = np.exp(lg[order].astype(np.float64) - float(lg.max()))
    z = w.sum()
    kept = len(order)
    top_p, min_p = p.get("top_p", 1.0), p.get("min_p", 0.0)
    if top_p < 1.0:
        cum = np.cumsum(w)
        kept = min(kept, int(np.argmax(cum >= np.float64(np.float32(top_p)) * z)) + 1)
    if min_p > 0.0:
        below = np.nonzero(w < np.float64(np.float32(min_p)))[0]
        if len(below):
            kept = min(kept, max(int(below[0]), 1))
    w = w[:kept]
    return order[:kept], w / w.sum()


def random_sample_params(r, vocab, temperatures, top_ks):
    """Random sample-op parameters for one row (numpy Generator r): a temperature from
    `temperatures`, sometimes top_k (from `top_ks` or vocab + 5), top_p, min_p, penalties over
    random seen tokens, and banned ids."""
    p = {
        "temperature": float(r.choice(temperatures)),
        "seed": int(r.integers(0, 2**63)),
        "counter": int(r.integers(0, 2**32)),
    }
    if r.random() < 0.5:
        p["top_k"] = int(r.choice([*top_ks, vocab + 5]))
    if r.random() < 0.5:
        p["top_p"] = float(r.choice([0.1, 0.5, 0.9, 0.999]))
    if r.random() < 0.4:
        p["min_p"] = float(r.choice([0.01, 0.05, 0.3]))
    if r.random() < 0.4:
        p["penalty_tokens"] = r.integers(0, vocab, int(r.integers(1, 30))).tolist()
        p["repetition_penalty"] = float(r.choice([1.0, 1.3, 0.8]))
        p["presence_penalty"] = float(r.choice([0.0, 0.5]))
        p["frequency_penalty"] = float(r.choice([0.0, 0.25]))
    if vocab > 1 and r.random() < 0.3:  # e.g. end-of-sequence ids before min_tokens
        p["ban_tokens"] = r.integers(0, vocab, int(r.integers(1, min(vocab, 4) + 1))).tolist()
    return p


def sample(logits, p):
    """(id, logprob) for one row."""
    raw = logits.astype(np.float64)
    lse = raw.max() + np.log(np.exp(raw - raw.max()).sum())
    if p.get("temperature", 0.0) == 0.0:
        tid = int(np.argmax(penalize(logits, p)))
    else:
        ids, probs = truncated_distribution(logits, p)
        u = philox_uniform(p.get("seed", 0), p.get("counter", 0), p.get("stream", 0))
        cum = np.cumsum(probs)
        hit = np.nonzero(cum > u)[0]
        # Rounding left none: the last candidate of nonzero probability.
        tid = int(ids[hit[0]] if len(hit) else ids[np.nonzero(probs > 0)[0][-1]])
    return tid, raw[tid] - lse


def truncated_probs(logits, p):
    """The full (V,) distribution a sample row draws from: truncated_distribution() scattered, or
    one-hot at the greedy id when the temperature is 0."""
    out = np.zeros(len(logits))
    if p.get("temperature", 0.0) == 0.0:
        out[int(np.argmax(penalize(logits, p)))] = 1.0
    else:
        ids, probs = truncated_distribution(logits, p)
        out[ids] = probs
    return out


def speculative_sample(logits, p, q, x):
    """The id a row with a draft token x drawn from q (V,) outputs: x kept iff u_accept * q(x) <
    p(x), else a draw from max(0, p - q) in index order with the row's own uniform."""
    if p.get("temperature", 0.0) == 0.0:
        return sample(logits, p)[0]
    probs = truncated_probs(logits, p)
    seed, counter = p.get("seed", 0), p.get("counter", 0)
    if philox_uniform(seed, counter, STREAM_ACCEPT) * np.float64(np.float32(q[x])) < probs[x]:
        return x
    residual = np.maximum(0.0, probs - q.astype(np.float32).astype(np.float64))
    cum = np.cumsum(residual)  # sequential, as the op
    if not cum[-1] > 0.0:
        return sample(logits, p)[0]
    hit = np.nonzero(cum > philox_uniform(seed, counter, p.get("stream", 0)) * cum[-1])[0]
    return int(hit[0] if len(hit) else np.nonzero(residual)[0][-1])


def top_logprobs(logits, k):
    """(ids, logprobs) of the min(k, V) most likely tokens of one row, padded to k with -1 / -inf:
    raw logit descending, lower id first on ties, NaN after every number; logprobs are the
    log-softmax of the raw logits (as sample())."""
    raw = logits.astype(np.float64)
    with np.errstate(invalid="ignore"):  # NaN, +inf or only -inf: every logprob is NaN
        lse = np.nan if np.isnan(raw).any() else raw.max() + np.log(np.exp(raw - raw.max()).sum())
    nan = np.isnan(raw)
    order = np.lexsort((np.arange(len(raw)), -np.where(nan, 0.0, raw), nan))[:k]
    ids = np.full(k, -1, np.int64)
    lps = np.full(k, -np.inf)
    ids[: len(order)] = order
    lps[: len(order)] = raw[order] - lse
    return ids, lps


def paged_batch(r, ctx_lens, new_lens, hkv, d, bs, cache_dtype, num_blocks=None):
    """A varlen batch over a paged cache: sequence s has ctx_lens[s] keys and its last new_lens[s]
    tokens are queries. Block tables are a random permutation of the physical blocks (block 0 is
    the null block, never used). Returns (k_cache, v_cache, block_tables, query_start, seq_lens,
    positions)."""
    need = [(n + bs - 1) // bs for n in ctx_lens]
    num_blocks = num_blocks or sum(need) + 3
    perm = r.permutation(np.arange(1, num_blocks))
    tables = np.zeros((len(ctx_lens), max(need)), np.int32)
    at = 0
    for s, nb in enumerate(need):
        tables[s, :nb] = perm[at : at + nb]
        at += nb
    kc = r.standard_normal((num_blocks, bs, hkv, d)).astype(cache_dtype)  # (blocks, bs, hkv, d)
    vc = r.standard_normal((num_blocks, bs, hkv, d)).astype(cache_dtype)
    qs = np.concatenate([[0], np.cumsum(new_lens)]).astype(np.int32)
    pos = np.concatenate([np.arange(c - n, c) for c, n in zip(ctx_lens, new_lens)]).astype(np.int32)
    return kc, vc, tables, qs, np.array(ctx_lens, np.int32), pos


def attention64(q, kc, vc, bt, qs, sl, pos, scale, sliding_window=0, logit_softcap=0.0):
    """Causal paged attention in float64 (keys 0..pos of each token's sequence; with
    sliding_window W > 0 only keys pos - W < j <= pos; with logit_softcap c > 0 each score s
    becomes c * tanh(s / c)), vectorized per sequence over query tiles: fast enough for
    contexts of 8192."""
    T, H, D = q.shape
    bs, hkv = kc.shape[1], kc.shape[2]
    g = H // hkv
    out = np.zeros((T, H, D))
    for s in range(len(sl)):
        n = int(sl[s])
        j = np.arange(n)
        slots = bt[s, j // bs] * bs + j % bs
        keys = np.repeat(kc.reshape(-1, hkv, D)[slots].astype(np.float64), g, axis=1)  # (n, H, D)
        vals = np.repeat(vc.reshape(-1, hkv, D)[slots].astype(np.float64), g, axis=1)  # (n, H, D)
        for t0 in range(qs[s], qs[s + 1], 128):
            t1 = min(t0 + 128, qs[s + 1])
            sc = np.einsum("thd,nhd->thn", q[t0:t1].astype(np.float64), keys, optimize=True) * scale
            if logit_softcap > 0:
                sc = logit_softcap * np.tanh(sc / logit_softcap)
            p = pos[t0:t1, None, None]
            hidden = j[None, None, :] > p
            if sliding_window > 0:
                hidden |= j[None, None, :] <= p - sliding_window
            sc = np.where(hidden, -np.inf, sc)
            w = np.exp(sc - sc.max(axis=2, keepdims=True))
            out[t0:t1] = np.einsum(
                "thn,nhd->thd", w / w.sum(axis=2, keepdims=True), vals, optimize=True
            )
    return out
