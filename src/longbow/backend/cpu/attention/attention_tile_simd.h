// FlashAttention-2 (Dao, 2023) prefill item in a transposed, register-blocked form, written once
// over a SIMD vector type V (AVX2: 8 lanes, AVX-512: 16 lanes) and included by the kernel files
// (attention_kernels_avx2.cpp, attention_kernels_avx512.cpp) under their own target flags; the
// contents sit in an anonymous namespace so each file gets its own copy.
//
// Rows r = (query token, query head of the kv group) lie along the SIMD lanes: Qᵀ (D, Rp),
// Sᵀ (keys, Rp) and Oᵀ (D, Rp) are row-contiguous, so every step is an outer-product FMA
// (a vector of rows x one broadcast key/value element), the online softmax is elementwise over
// rows (no horizontal reductions) and the causal mask is one compare per key. K and V of a tile
// are converted to f32 once and shared by all rows. Scores are in log2 units (Q pre-scaled by
// scale * log2 e) so P = 2^(S - m).
//
// Per key tile (whole paged blocks, at most attn_tile_keys keys, from the item's k_begin):
//   Sᵀ = K·Qᵀ; [SOFTCAP: Sᵀ = cap·tanh(Sᵀ/cap)]; mask keys >= lim[r] [WINDOW: and < lo[r]];
//   m' = max(m, max_j Sᵀ); alpha = 2^(m - m'); P = 2^(Sᵀ - m')
//   l = l·alpha + Σ_j P;  Oᵀ = Oᵀ·alpha + Vᵀ·P   (alpha folded into the Oᵀ loads)
// WINDOW and SOFTCAP are template flags: with both false the loop is the plain causal one.
// The accumulation order depends only on the item (its tokens and key range), never on the
// rest of the batch.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstring>

#include "longbow/backend/cpu/attention/attention_common.h"
#include "longbow/backend/cpu/attention/attention_softcap_simd.h"

namespace longbow::cpu {
namespace {

constexpr float LOG2E = 1.44269504088896341f;

// Copies nk rows of the paged cache (row stride `stride`) to dst (nk, D) f32; block-typed
// caches are dequantized (kv_stage_rows).
template <class V>
void stage_rows(const AttnBatch& b, const KvPlane& p, int seq, int kvh, int j0, int nk,
                float* dst) {
  if (p.staged) return kv_stage_rows(b, p, seq, kvh, j0, nk, dst);
  const int D = b.head_dim, bs = b.block_size;
  const size_t stride = b.row_stride();
  for (int j = j0; j < j0 + nk;) {
    const int je = std::min(j0 + nk, (j / bs + 1) * bs);
    const uint8_t* src = static_cast<const uint8_t*>(b.row(p, seq, kvh, j));
    for (int jj = j; jj < je; ++jj) {
      float* d = dst + static_cast<size_t>(jj - j0) * D;
      if (p.f16) {
        const auto* h = reinterpret_cast<const uint16_t*>(src) + (jj - j) * stride;
        int i = 0;
        for (; i + V::W <= D; i += V::W) V::store(d + i, V::load_f16(h + i));
        for (; i < D; ++i) d[i] = V::f16_to_f32(h[i]);
      } else {
        std::memcpy(d, reinterpret_cast<const float*>(src) + (jj - j) * stride, D * sizeof(float));
      }
    }
    j = je;
  }
}

// Sᵀ[j, rows rv0 .. rv0 + NV*W) = Σ_d Kf[j, d] * Qᵀ[d, rows] for j < nk.
template <class V, int NV>
void scores_t(const float* qt, int rp, int D, const float* kf, int nk, float* st, int rv0) {
  using R = typename V::reg;
  constexpr int KEY_BLOCK = V::SCORE_KEYS;  // keys per register block
  int j = 0;
  for (; j + KEY_BLOCK <= nk; j += KEY_BLOCK) {
    R acc[KEY_BLOCK][NV];
    for (int k = 0; k < KEY_BLOCK; ++k)
      for (int v = 0; v < NV; ++v) acc[k][v] = V::zero();
    const float* k0 = kf + static_cast<size_t>(j) * D;
    for (int d = 0; d < D; ++d) {
      R q[NV];
      for (int v = 0; v < NV; ++v)
        q[v] = V::load(qt + static_cast<size_t>(d) * rp + rv0 + v * V::W);
      for (int k = 0; k < KEY_BLOCK; ++k) {
        const R kb = V::set1(k0[static_cast<size_t>(k) * D + d]);
        for (int v = 0; v < NV; ++v) acc[k][v] = V::fmadd(q[v], kb, acc[k][v]);
      }
    }
    for (int k = 0; k < KEY_BLOCK; ++k)
      for (int v = 0; v < NV; ++v)
        V::store(st + static_cast<size_t>(j + k) * rp + rv0 + v * V::W, acc[k][v]);
  }
  for (; j < nk; ++j) {
    R acc[NV];
    for (int v = 0; v < NV; ++v) acc[v] = V::zero();
    const float* k0 = kf + static_cast<size_t>(j) * D;
    for (int d = 0; d < D; ++d) {
      const R kb = V::set1(k0[d]);
      for (int v = 0; v < NV; ++v)
        acc[v] = V::fmadd(V::load(qt + static_cast<size_t>(d) * rp + rv0 + v * V::W), kb, acc[v]);
    }
    for (int v = 0; v < NV; ++v)
      V::store(st + static_cast<size_t>(j) * rp + rv0 + v * V::W, acc[v]);
  }
}

// Oᵀ[d, rows] = Oᵀ[d, rows] * alpha[rows] + Σ_j Vf[j, d] * P[j, rows] for d < D (D % DB == 0).
template <class V, int NV, int DB>
void values_t(const float* pt, int rp, int D, const float* vf, int nk, const float* alpha,
              float* ot, int rv0) {
  using R = typename V::reg;
  constexpr int KEY_BLOCK = DB;  // head dims per register block
  R a[NV];
  for (int v = 0; v < NV; ++v) a[v] = V::load(alpha + rv0 + v * V::W);
  for (int d = 0; d < D; d += KEY_BLOCK) {
    R o[KEY_BLOCK][NV];
    for (int k = 0; k < KEY_BLOCK; ++k)
      for (int v = 0; v < NV; ++v)
        o[k][v] = V::mul(V::load(ot + static_cast<size_t>(d + k) * rp + rv0 + v * V::W), a[v]);
    for (int j = 0; j < nk; ++j) {
      R p[NV];
      for (int v = 0; v < NV; ++v)
        p[v] = V::load(pt + static_cast<size_t>(j) * rp + rv0 + v * V::W);
      const float* vr = vf + static_cast<size_t>(j) * D + d;
      for (int k = 0; k < KEY_BLOCK; ++k) {
        const R vb = V::set1(vr[k]);
        for (int v = 0; v < NV; ++v) o[k][v] = V::fmadd(p[v], vb, o[k][v]);
      }
    }
    for (int k = 0; k < KEY_BLOCK; ++k)
      for (int v = 0; v < NV; ++v)
        V::store(ot + static_cast<size_t>(d + k) * rp + rv0 + v * V::W, o[k][v]);
  }
}

// Runs f.template operator()<NV>(rv0) over the row vectors [0, nvec) in chunks of at most
// V::MAX_NV.
template <class V, class F>
void for_row_chunks(int nvec, F&& f) {
  for (int rv = 0; rv < nvec;) {
    const int n = std::min(V::MAX_NV, nvec - rv);
    switch (n) {
      case 1: f.template operator()<1>(rv * V::W); break;
      case 2: f.template operator()<2>(rv * V::W); break;
      case 3:
        if constexpr (V::MAX_NV >= 3) f.template operator()<3>(rv * V::W);
        break;
      default:
        if constexpr (V::MAX_NV >= 4) f.template operator()<4>(rv * V::W);
        break;
    }
    rv += n;
  }
}

// The exponentials, sums and rescale of softmax_ext_t for one row vector whose tile maximum (with
// the old m) is mx: the second half of softmax_t, which keeps its own copy (calling this changes
// the AVX-512 plain item's register allocation).
template <class V>
inline void softmax_finish_t(float* st, int rp, int nk, int rv, typename V::reg m_old,
                             typename V::reg mx, float* m, float* l, float* alpha) {
  using R = typename V::reg;
  const R neg_inf = V::set1(-INFINITY);
  // Rows that have seen no key yet keep m = -inf; they subtract 0 instead (their P is 0).
  const R m_use = V::select_lt(neg_inf, mx, mx, V::zero());
  R sum = V::zero();
  for (int j = 0; j < nk; ++j) {
    float* sj = st + static_cast<size_t>(j) * rp + rv;
    const R p = V::exp2(V::sub(V::load(sj), m_use));
    V::store(sj, p);
    sum = V::add(sum, p);
  }
  const R a = V::exp2(V::sub(m_old, m_use));
  V::store(alpha + rv, a);
  V::store(l + rv, V::fmadd(V::load(l + rv), a, sum));
  V::store(m + rv, mx);
}

// softmax_t with a sliding window and / or soft-capping: soft-caps the scores (SOFTCAP, cap in
// natural units), masks keys >= lim (when `mask`) and keys < lo (WINDOW, when `mask_lo`).
template <class V, bool WINDOW, bool SOFTCAP>
void softmax_ext_t(float* st, int rp, int nk, int j0, bool mask, bool mask_lo, const float* limf,
                   const float* lof, float cap, float* m, float* l, float* alpha) {
  using R = typename V::reg;
  const R neg_inf = V::set1(-INFINITY);
  [[maybe_unused]] const SoftcapLog2<V> c(SOFTCAP ? cap : 1.0f);
  for (int rv = 0; rv < rp; rv += V::W) {
    const R lim = V::load(limf + rv);
    [[maybe_unused]] const R lo = WINDOW ? V::load(lof + rv) : V::zero();
    const R m_old = V::load(m + rv);
    R mx = m_old;
    for (int j = 0; j < nk; ++j) {
      float* sj = st + static_cast<size_t>(j) * rp + rv;
      R s = V::load(sj);
      if constexpr (SOFTCAP) s = softcap_log2<V>(s, c);
      const R key = V::set1(static_cast<float>(j0 + j));
      if (mask) s = V::select_lt(key, lim, s, neg_inf);
      if (WINDOW && mask_lo) s = V::select_lt(key, lo, neg_inf, s);
      V::store(sj, s);
      mx = V::max(mx, s);
    }
    softmax_finish_t<V>(st, rp, nk, rv, m_old, mx, m, l, alpha);
  }
}

// Online softmax of one tile over the row vectors: masks keys >= lim, updates m and l, writes
// P over Sᵀ and alpha = 2^(m_old - m_new) per row.
template <class V>
void softmax_t(float* st, int rp, int nk, int j0, bool mask, const float* limf, float* m, float* l,
               float* alpha) {
  using R = typename V::reg;
  const R neg_inf = V::set1(-INFINITY);
  for (int rv = 0; rv < rp; rv += V::W) {
    const R lim = V::load(limf + rv);
    const R m_old = V::load(m + rv);
    R mx = m_old;
    for (int j = 0; j < nk; ++j) {
      float* sj = st + static_cast<size_t>(j) * rp + rv;
      R s = V::load(sj);
      if (mask) {
        s = V::select_lt(V::set1(static_cast<float>(j0 + j)), lim, s, neg_inf);
        V::store(sj, s);
      }
      mx = V::max(mx, s);
    }
    // Rows that have seen no key yet keep m = -inf; they subtract 0 instead (their P is 0).
    const R m_use = V::select_lt(neg_inf, mx, mx, V::zero());
    R sum = V::zero();
    for (int j = 0; j < nk; ++j) {
      float* sj = st + static_cast<size_t>(j) * rp + rv;
      const R p = V::exp2(V::sub(V::load(sj), m_use));
      V::store(sj, p);
      sum = V::add(sum, p);
    }
    const R a = V::exp2(V::sub(m_old, m_use));
    V::store(alpha + rv, a);
    V::store(l + rv, V::fmadd(V::load(l + rv), a, sum));
    V::store(m + rv, mx);
  }
}

// f32 scratch of prefill_item_t for `rows` rows.
inline size_t prefill_item_scratch(int rows, int head_dim, int tile_keys, int lanes) {
  const size_t rp = (static_cast<size_t>(rows) + lanes - 1) / lanes * lanes, D = head_dim,
               TK = tile_keys;
  return 2 * D * rp + TK * rp + 2 * TK * D + 5 * rp;
}

// One flash-prefill item (see the map in attention_common.h); prefill items are never split, so
// the result goes straight to out. Needs head_dim % 4 == 0. WINDOW: b.window > 0 (it.k_begin is
// then the first tile holding a window key); SOFTCAP: b.softcap > 0.
template <class V, bool WINDOW, bool SOFTCAP>
void prefill_item_t(const AttnBatch& b, const AttnItem& it, float* f32) {
  const int G = b.group, D = b.head_dim, H = b.num_heads;
  const int R = (it.t1 - it.t0) * G, TK = attn_tile_keys(b.block_size);
  const int rp = (R + V::W - 1) / V::W * V::W;
  float* qt = f32;                                // (D, rp) queries * scale * log2 e, transposed
  float* ot = qt + static_cast<size_t>(D) * rp;   // (D, rp) unnormalized output, transposed
  float* st = ot + static_cast<size_t>(D) * rp;   // (TK, rp) scores, then probabilities
  float* kf = st + static_cast<size_t>(TK) * rp;  // (TK, D) key tile in f32
  float* vf = kf + static_cast<size_t>(TK) * D;   // (TK, D) value tile in f32
  float* m = vf + static_cast<size_t>(TK) * D;    // (rp,) running max (log2 units)
  float* l = m + rp;                              // (rp,) running sum
  float* alpha = l + rp;                          // (rp,) per-tile rescale
  float* limf = alpha + rp;                       // (rp,) end of the keys each row sees
  float* lof = limf + rp;                         // (rp,) first key each row sees (WINDOW)
  const float qscale = b.scale * LOG2E;
  int max_lim = it.k_begin, min_lim = it.k_end, max_lo = 0;
  for (int r = 0; r < rp; ++r) {
    const int ti = std::min(r, R - 1) / G, g = std::min(r, R - 1) % G, t = it.t0 + ti;
    const float* src = b.q + (static_cast<size_t>(t) * H + static_cast<size_t>(it.kvh) * G + g) * D;
    for (int d = 0; d < D; ++d)
      qt[static_cast<size_t>(d) * rp + r] = r < R ? src[d] * qscale : 0.0f;
    const int row_lim = std::min(b.positions[t] + 1, it.k_end);  // padding rows copy the last row
    limf[r] = static_cast<float>(row_lim);
    max_lim = std::max(max_lim, row_lim), min_lim = std::min(min_lim, row_lim);
    if constexpr (WINDOW) {
      const int row_lo = b.window_begin(b.positions[t]);
      lof[r] = static_cast<float>(row_lo);
      max_lo = std::max(max_lo, row_lo);
    }
  }
  std::fill(ot, ot + static_cast<size_t>(D) * rp, 0.0f);
  std::fill(m, m + rp, -INFINITY);
  std::fill(l, l + rp, 0.0f);
  const int nvec = rp / V::W;
  for (int j0 = it.k_begin; j0 < max_lim;) {
    const int j1 = std::min(max_lim, (j0 / b.block_size) * b.block_size + TK);  // whole blocks
    const int nk = j1 - j0;
    stage_rows<V>(b, b.k, it.seq, it.kvh, j0, nk, kf);
    stage_rows<V>(b, b.v, it.seq, it.kvh, j0, nk, vf);
    for_row_chunks<V>(nvec, [&]<int NV>(int rv0) { scores_t<V, NV>(qt, rp, D, kf, nk, st, rv0); });
    if constexpr (WINDOW || SOFTCAP) {
      softmax_ext_t<V, WINDOW, SOFTCAP>(st, rp, nk, j0, j1 > min_lim, j0 < max_lo, limf, lof,
                                        b.softcap, m, l, alpha);
    } else {
      softmax_t<V>(st, rp, nk, j0, j1 > min_lim, limf, m, l, alpha);
    }
    if (D % V::VALUE_DIMS == 0) {
      for_row_chunks<V>(nvec, [&]<int NV>(int rv0) {
        values_t<V, NV, V::VALUE_DIMS>(st, rp, D, vf, nk, alpha, ot, rv0);
      });
    } else {
      for_row_chunks<V>(
          nvec, [&]<int NV>(int rv0) { values_t<V, NV, 4>(st, rp, D, vf, nk, alpha, ot, rv0); });
    }
    j0 = j1;
  }
  for (int r = 0; r < R; ++r) {
    const int t = it.t0 + r / G, g = r % G;
    float* dst = b.out + (static_cast<size_t>(t) * H + static_cast<size_t>(it.kvh) * G + g) * D;
    const float inv = l[r] > 0.0f ? 1.0f / l[r] : 0.0f;
    for (int d = 0; d < D; ++d) dst[d] = ot[static_cast<size_t>(d) * rp + r] * inv;
  }
}

}  // namespace
}  // namespace longbow::cpu
