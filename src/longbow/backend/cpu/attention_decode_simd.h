// Fused decode attention item (one query token, the G query heads sharing one kv head, keys
// [k_begin, k_end) of the paged cache): FlashAttention-2's online softmax per key tile with the
// flash-decoding (Dao et al. 2023) partial output when the keys were split. Written once over a
// SIMD vector type V (AVX2: 8 lanes, AVX-512: 16 lanes) and included by the kernel files under
// their own target flags; the contents sit in an anonymous namespace so each file gets its own copy.
//
// Per key tile (whole paged blocks, about ATTN_DECODE_TILE_KEYS keys), rows processed in blocks of up
// to DECODE_ROW_BLOCK so every K/V row is loaded and converted from f16 once per row block:
//   scores: lanes = head dims; each (row, key) dot product is a chain of D/W FMAs, and W such
//     vectors (W keys) are folded into one vector of W scores by a transpose-and-add tree
//     (V::reduce_keys), so there is no horizontal sum per key.
//   softmax: scores in log2 units (Q pre-scaled by scale * log2 e); m' = max(m, max_j S),
//     alpha = 2^(m - m'), P = 2^(S - m'), l = l * alpha + sum_j P.
//   values: lanes = head dims; O = O * alpha + sum_j P[j] V_j with O held in registers over the tile.
// The arithmetic order depends only on the item (token, kv head, key range), never on the rest
// of the batch, so a decode row is bitwise the same alone or batched.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <utility>

#include <immintrin.h>

#include "longbow/backend/cpu/attention_common.h"

namespace longbow::cpu {
namespace {

constexpr float DECODE_LOG2E = 1.44269504088896341f;
constexpr float DECODE_LN2 = 0.693147180559945309f;
constexpr int DECODE_ROW_BLOCK = 4;  // query rows sharing each K/V load

// Keys per tile rounded up to whole vectors (the score rows are padded to this).
inline int decode_tile_pad(int tile_keys, int lanes) { return (tile_keys + lanes - 1) / lanes * lanes; }

// f32 scratch of decode_item_t: q, o (G, D), s (G, TKp), m, l, alpha (G,), reduce tmp (RB, W, W).
inline size_t decode_item_scratch(int group, int head_dim, int tile_keys, int lanes) {
  const size_t G = group, D = head_dim, TKp = decode_tile_pad(tile_keys, lanes), W = lanes;
  return 2 * G * D + G * TKp + 3 * G + DECODE_ROW_BLOCK * W * W;
}

template <bool F16>
using cache_elem_t = std::conditional_t<F16, uint16_t, float>;

template <class V, bool F16>
inline typename V::reg load_cache(const cache_elem_t<F16>* p) {
  if constexpr (F16) {
    return V::load_f16(p);
  } else {
    return V::load(p);
  }
}

// Prefetches the cache row at `row` (row_bytes bytes) into L1.
template <class E>
inline void prefetch_row(const E* row, size_t row_bytes) {
  for (size_t by = 0; by < row_bytes; by += 64) _mm_prefetch(reinterpret_cast<const char*>(row) + by, _MM_HINT_T0);
}

// Dot products of RB pre-scaled q rows (stride D) with one key row: acc[r] lanes sum to q_r · k.
// ND > 0: D == ND * W known at compile time (unrolled); 0: any multiple of W.
template <class V, bool F16, int RB, int ND>
inline void key_dots(const float* q, int D, const cache_elem_t<F16>* k, typename V::reg* acc) {
  using R = typename V::reg;
  constexpr int W = V::W;
  const R k0 = load_cache<V, F16>(k);
  for (int r = 0; r < RB; ++r) acc[r] = V::mul(V::load(q + static_cast<size_t>(r) * D), k0);
  if constexpr (ND > 0) {
    for (int c = 1; c < ND; ++c) {
      const R kd = load_cache<V, F16>(k + c * W);
      for (int r = 0; r < RB; ++r) acc[r] = V::fmadd(V::load(q + static_cast<size_t>(r) * D + c * W), kd, acc[r]);
    }
  } else {
    for (int d = W; d < D; d += W) {
      const R kd = load_cache<V, F16>(k + d);
      for (int r = 0; r < RB; ++r) acc[r] = V::fmadd(V::load(q + static_cast<size_t>(r) * D + d), kd, acc[r]);
    }
  }
}

// s[r, 0 .. nk rounded up to W) = q[r, :] · K_j for RB rows (q rows pre-scaled, stride D); lanes
// past nk get 0. K_j = kc + slots[j] * slot_elems; tmp holds (RB, W, W) per-key partial vectors.
// While key j runs, the K row of the next tile's key j (next[j], j < n_next) is prefetched.
template <class V, bool F16, int RB, int ND>
void decode_scores(const float* q, int D, const cache_elem_t<F16>* kc, const int32_t* slots, size_t slot_elems,
                   int nk, const int32_t* next, int n_next, float* s, int s_stride, float* tmp) {
  using R = typename V::reg;
  constexpr int W = V::W;
  const size_t row_bytes = static_cast<size_t>(D) * sizeof(cache_elem_t<F16>);
  for (int j0 = 0; j0 < nk; j0 += W) {
    const int n = std::min(W, nk - j0);
    for (int jj = 0; jj < W; ++jj) {
      R acc[RB];
      if (jj < n) {
        if (j0 + jj < n_next) prefetch_row(kc + static_cast<size_t>(next[j0 + jj]) * slot_elems, row_bytes);
        key_dots<V, F16, RB, ND>(q, D, kc + static_cast<size_t>(slots[j0 + jj]) * slot_elems, acc);
      } else {
        for (int r = 0; r < RB; ++r) acc[r] = V::zero();
      }
      for (int r = 0; r < RB; ++r) V::store(tmp + (static_cast<size_t>(r) * W + jj) * W, acc[r]);
    }
    for (int r = 0; r < RB; ++r) {
      V::store(s + static_cast<size_t>(r) * s_stride + j0, V::reduce_keys(tmp + static_cast<size_t>(r) * W * W));
    }
  }
  for (int j = nk; j < n_next; ++j) prefetch_row(kc + static_cast<size_t>(next[j]) * slot_elems, row_bytes);
}

// o[r, :] = o[r, :] * alpha[r] + sum_{j < nk} p[r, j] V_j for RB rows; DB vectors of head dims
// per register block (D % (DB * W) == 0). Prefetches the next tile's V rows like decode_scores.
template <class V, bool F16, int RB, int DB>
void decode_values(const float* p, int p_stride, int D, const cache_elem_t<F16>* vc, const int32_t* slots,
                   size_t slot_elems, int nk, const int32_t* next, int n_next, const float* alpha, float* o) {
  using R = typename V::reg;
  constexpr int W = V::W;
  const size_t row_bytes = static_cast<size_t>(D) * sizeof(cache_elem_t<F16>);
  for (int d0 = 0; d0 < D; d0 += DB * W) {
    R acc[RB][DB];
    for (int r = 0; r < RB; ++r) {
      const R a = V::set1(alpha[r]);
      for (int c = 0; c < DB; ++c) acc[r][c] = V::mul(V::load(o + static_cast<size_t>(r) * D + d0 + c * W), a);
    }
    for (int j = 0; j < nk; ++j) {
      if (d0 == 0 && j < n_next) prefetch_row(vc + static_cast<size_t>(next[j]) * slot_elems, row_bytes);
      const cache_elem_t<F16>* v = vc + static_cast<size_t>(slots[j]) * slot_elems + d0;
      R vv[DB];
      for (int c = 0; c < DB; ++c) vv[c] = load_cache<V, F16>(v + c * W);
      for (int r = 0; r < RB; ++r) {
        const R pr = V::set1(p[static_cast<size_t>(r) * p_stride + j]);
        for (int c = 0; c < DB; ++c) acc[r][c] = V::fmadd(pr, vv[c], acc[r][c]);
      }
    }
    for (int r = 0; r < RB; ++r)
      for (int c = 0; c < DB; ++c) V::store(o + static_cast<size_t>(r) * D + d0 + c * W, acc[r][c]);
  }
  for (int j = nk; j < n_next; ++j) prefetch_row(vc + static_cast<size_t>(next[j]) * slot_elems, row_bytes);
}

// Online softmax of one row's tile: scores s[0, nkp) (lanes >= nk are ignored), state m, l;
// writes P over s (0 past nk) and returns alpha = 2^(m_old - m_new).
template <class V>
float decode_softmax_row(float* s, int nk, int nkp, float& m, float& l) {
  using R = typename V::reg;
  constexpr int W = V::W;
  for (int j = nk; j < nkp; ++j) s[j] = -INFINITY;
  R mx = V::load(s);
  for (int j = W; j < nkp; j += W) mx = V::max(mx, V::load(s + j));
  alignas(64) float lanes[W];
  V::store(lanes, mx);
  float m_new = m;
  for (int i = 0; i < W; ++i) m_new = std::max(m_new, lanes[i]);
  // A row that has seen only -inf scores keeps m = -inf and subtracts 0 instead (its P is 0).
  const float m_use = m_new == -INFINITY ? 0.0f : m_new;
  const R mv = V::set1(m_use);
  R sum = V::zero();
  for (int j = 0; j < nkp; j += W) {
    const R p = V::exp2(V::sub(V::load(s + j), mv));
    V::store(s + j, p);
    sum = V::add(sum, p);
  }
  V::store(lanes, sum);
  float tile_sum = 0.0f;
  for (int i = 0; i < W; ++i) tile_sum += lanes[i];
  V::store(lanes, V::exp2(V::set1(m - m_use)));
  const float alpha = lanes[0];
  l = l * alpha + tile_sum;
  m = m_new;
  return alpha;
}

// One key tile for RB rows: scores, online softmax, P·V. next/n_next: the next tile's slots (its
// K/V rows are prefetched on the way; only the first row block passes them).
template <class V, bool F16, int RB>
void decode_tile_rows(const float* q, float* o, float* s, int s_stride, int D, const cache_elem_t<F16>* kc,
                      const cache_elem_t<F16>* vc, const int32_t* slots, size_t slot_elems, int nk,
                      const int32_t* next, int n_next, float* m, float* l, float* alpha, float* tmp) {
  constexpr int W = V::W;
  const int nkp = (nk + W - 1) / W * W;
  switch (D / W == 4 && D % W == 0 ? 4 : D / W == 8 && D % W == 0 ? 8 : 0) {
    case 4: decode_scores<V, F16, RB, 4>(q, D, kc, slots, slot_elems, nk, next, n_next, s, s_stride, tmp); break;
    case 8: decode_scores<V, F16, RB, 8>(q, D, kc, slots, slot_elems, nk, next, n_next, s, s_stride, tmp); break;
    default: decode_scores<V, F16, RB, 0>(q, D, kc, slots, slot_elems, nk, next, n_next, s, s_stride, tmp); break;
  }
  for (int r = 0; r < RB; ++r) alpha[r] = decode_softmax_row<V>(s + static_cast<size_t>(r) * s_stride, nk, nkp, m[r], l[r]);
  constexpr int DB = V::DECODE_VALUE_VECS;
  if (D % (DB * W) == 0) {
    decode_values<V, F16, RB, DB>(s, s_stride, D, vc, slots, slot_elems, nk, next, n_next, alpha, o);
  } else if (D % (2 * W) == 0) {
    decode_values<V, F16, RB, 2>(s, s_stride, D, vc, slots, slot_elems, nk, next, n_next, alpha, o);
  } else {
    decode_values<V, F16, RB, 1>(s, s_stride, D, vc, slots, slot_elems, nk, next, n_next, alpha, o);
  }
}

// One fused decode item (AttnItem with t1 == t0 + 1). Needs head_dim % V::W == 0; i32 scratch
// holds 2 x attn_decode_tile_keys slots; partials is (num_partials, G, D + 2).
template <class V, bool F16>
void decode_item_t(const AttnBatch& b, const AttnItem& it, float* f32, int32_t* i32, float* partials) {
  constexpr int W = V::W;
  const int G = b.group, D = b.head_dim, H = b.num_heads, bs = b.block_size;
  const int TK = attn_decode_tile_keys(bs), TKp = decode_tile_pad(TK, W);
  const int t = it.t0;
  const int ke = std::min(it.k_end, b.positions[t] + 1);
  float* q = f32;                                   // (G, D) queries * scale * log2 e
  float* o = q + static_cast<size_t>(G) * D;        // (G, D) unnormalized output
  float* s = o + static_cast<size_t>(G) * D;        // (G, TKp) scores, then probabilities
  float* m = s + static_cast<size_t>(G) * TKp;      // (G,) running max (log2 units)
  float* l = m + G;                                 // (G,) running sum
  float* alpha = l + G;                             // (G,) per-tile rescale
  float* tmp = alpha + G;                           // (DECODE_ROW_BLOCK, W, W) per-key score partials
  int32_t* slots = i32;                             // (2, TK) cache slots of this tile's keys, then the next tile's
  const float qscale = b.scale * DECODE_LOG2E;
  const float* qsrc = b.q + (static_cast<size_t>(t) * H + static_cast<size_t>(it.kvh) * G) * D;  // (G, D)
  for (size_t i = 0; i < static_cast<size_t>(G) * D; ++i) q[i] = qsrc[i] * qscale;
  std::fill(o, o + static_cast<size_t>(G) * D, 0.0f);
  std::fill(m, m + G, -INFINITY);
  std::fill(l, l + G, 0.0f);
  const size_t slot_elems = static_cast<size_t>(b.num_kv_heads) * D;
  const auto* kc = reinterpret_cast<const cache_elem_t<F16>*>(b.k_cache) + static_cast<size_t>(it.kvh) * D;
  const auto* vc = reinterpret_cast<const cache_elem_t<F16>*>(b.v_cache) + static_cast<size_t>(it.kvh) * D;
  const int32_t* table = b.block_tables + static_cast<size_t>(it.seq) * b.max_blocks_per_seq;
  // Tile slots are double-buffered: the next tile's K/V rows are prefetched while this one runs,
  // spread over its keys (paged rows stream from DRAM in a batched step; demand misses alone
  // leave the core waiting). The first tile is prefetched up front.
  auto tile_end = [&](int j0) { return std::min(ke, (j0 / bs) * bs + TK); };  // whole blocks, <= TK keys
  auto fill_slots = [&](int j0, int32_t* dst) {
    const int j1 = tile_end(j0);
    for (int j = j0; j < j1; ++j) dst[j - j0] = table[j / bs] * bs + j % bs;
    return j1 - j0;
  };
  int32_t* cur = slots;       // (TK,)
  int32_t* nxt = slots + TK;  // (TK,)
  if (it.k_begin < ke) {
    const int n = fill_slots(it.k_begin, cur);
    const size_t row_bytes = static_cast<size_t>(D) * sizeof(cache_elem_t<F16>);
    for (int j = 0; j < n; ++j) prefetch_row(kc + static_cast<size_t>(cur[j]) * slot_elems, row_bytes);
    for (int j = 0; j < n; ++j) prefetch_row(vc + static_cast<size_t>(cur[j]) * slot_elems, row_bytes);
  }
  for (int j0 = it.k_begin; j0 < ke;) {
    const int j1 = tile_end(j0);
    const int nk = j1 - j0;
    const int n_next = j1 < ke ? fill_slots(j1, nxt) : 0;
    for (int r0 = 0; r0 < G; r0 += DECODE_ROW_BLOCK) {
      const size_t qo = static_cast<size_t>(r0) * D;
      float* sr = s + static_cast<size_t>(r0) * TKp;
      const int nn = r0 == 0 ? n_next : 0;
      switch (std::min(DECODE_ROW_BLOCK, G - r0)) {
        case 1: decode_tile_rows<V, F16, 1>(q + qo, o + qo, sr, TKp, D, kc, vc, cur, slot_elems, nk, nxt, nn, m + r0, l + r0, alpha + r0, tmp); break;
        case 2: decode_tile_rows<V, F16, 2>(q + qo, o + qo, sr, TKp, D, kc, vc, cur, slot_elems, nk, nxt, nn, m + r0, l + r0, alpha + r0, tmp); break;
        case 3: decode_tile_rows<V, F16, 3>(q + qo, o + qo, sr, TKp, D, kc, vc, cur, slot_elems, nk, nxt, nn, m + r0, l + r0, alpha + r0, tmp); break;
        default: decode_tile_rows<V, F16, 4>(q + qo, o + qo, sr, TKp, D, kc, vc, cur, slot_elems, nk, nxt, nn, m + r0, l + r0, alpha + r0, tmp); break;
      }
    }
    std::swap(cur, nxt);
    j0 = j1;
  }
  for (int g = 0; g < G; ++g) {
    const float* og = o + static_cast<size_t>(g) * D;  // (D,)
    if (it.partial >= 0) {  // flash-decoding split: (O, m, l) per head with m in natural-log units
      float* dst = partials + (static_cast<size_t>(it.partial) * G + g) * (D + 2);  // (D + 2,)
      std::copy(og, og + D, dst);
      dst[D] = m[g] == -INFINITY ? -INFINITY : m[g] * DECODE_LN2;
      dst[D + 1] = l[g];
    } else {
      float* dst = b.out + (static_cast<size_t>(t) * H + static_cast<size_t>(it.kvh) * G + g) * D;  // (D,)
      const float inv = l[g] > 0.0f ? 1.0f / l[g] : 0.0f;
      for (int d = 0; d < D; ++d) dst[d] = og[d] * inv;
    }
  }
}

}  // namespace
}  // namespace longbow::cpu
