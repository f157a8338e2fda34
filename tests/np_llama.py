"""A float64 numpy Llama forward (HF layout, rotate-half RoPE): the whole-model reference for
the tiny random models of tiny_models.py."""

from __future__ import annotations

import numpy as np


def _rms_norm(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def _rope_half(x, pos, theta, dh):
    # x: (T, H, dh); rotate halves (x[i], x[i + dh/2]).
    half = dh // 2
    inv = 1.0 / theta ** (np.arange(half) * 2.0 / dh)
    ang = pos[:, None] * inv[None, :]  # (T, half)
    cos, sin = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
    a, b = x[..., :half], x[..., half:]
    return np.concatenate([a * cos - b * sin, a * sin + b * cos], axis=-1)


def forward_logits(
    w: dict,
    tokens: list[int],
    *,
    heads: int,
    kv_heads: int,
    layers: int,
    eps: float = 1e-5,
    theta: float = 10000.0,
) -> np.ndarray:
    """Logits (T, vocab) for one sequence, computed in float64."""
    w = {k: v.astype(np.float64) for k, v in w.items()}
    x = w["token_embd.weight"][tokens]  # (T, D)
    T, D = x.shape
    dh = w["blk.0.attn_q.weight"].shape[0] // heads
    pos = np.arange(T, dtype=np.float64)
    mask = np.triu(np.full((T, T), -np.inf), k=1)
    for i in range(layers):
        b = f"blk.{i}."
        h = _rms_norm(x, w[b + "attn_norm.weight"], eps)
        q = (h @ w[b + "attn_q.weight"].T).reshape(T, heads, dh)
        k = (h @ w[b + "attn_k.weight"].T).reshape(T, kv_heads, dh)
        v = (h @ w[b + "attn_v.weight"].T).reshape(T, kv_heads, dh)
        q, k = _rope_half(q, pos, theta, dh), _rope_half(k, pos, theta, dh)
        rep = heads // kv_heads
        k, v = np.repeat(k, rep, axis=1), np.repeat(v, rep, axis=1)
        s = np.einsum("thd,shd->hts", q, k) / np.sqrt(dh) + mask
        p = np.exp(s - s.max(-1, keepdims=True))
        p /= p.sum(-1, keepdims=True)
        o = np.einsum("hts,shd->thd", p, v).reshape(T, heads * dh)
        x = x + o @ w[b + "attn_output.weight"].T
        h = _rms_norm(x, w[b + "ffn_norm.weight"], eps)
        g, u = h @ w[b + "ffn_gate.weight"].T, h @ w[b + "ffn_up.weight"].T
        x = x + (g / (1 + np.exp(-g)) * u) @ w[b + "ffn_down.weight"].T
    x = _rms_norm(x, w["output_norm.weight"], eps)
    out = w.get("output.weight", w["token_embd.weight"])
    return x @ out.T
