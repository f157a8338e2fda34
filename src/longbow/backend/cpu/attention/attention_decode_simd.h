// Fused decode attention item (one query token, kv heads [kvh, kvh + num_kvh) with the G query
// heads sharing each, keys [k_begin, k_end) of the paged cache): FlashAttention-2's online softmax
// per key tile with the flash-decoding (Dao et al. 2023) partial output when the keys were split.
// Written once over a SIMD vector type V (AVX2: 8 lanes, AVX-512: 16 lanes) and included by the
// kernel files under their own target flags; the contents sit in an anonymous namespace so each
// file gets its own copy.
//
// Per key tile (whole paged blocks, about ATTN_DECODE_TILE_KEYS keys) and per kv head (the heads of
// a slot are contiguous, so one item streams each block's K and V once), rows processed in blocks
// of up to DECODE_ROW_BLOCK so every K/V row is loaded and converted from f16 once per row block:
//   scores: lanes = head dims; each (row, key) dot product is a chain of D/W FMAs, and W such
//     vectors (W keys) are folded into one vector of W scores by a transpose-and-add tree
//     (score_tree over V::fold_keys) held in registers, so there is no horizontal sum per key.
//     SOFTCAP instantiations then soft-cap the tile's scores in place (attention_softcap_simd.h).
//     A sliding window needs nothing here: the item's key range starts at the token's window.
//   softmax: rows interleaved, one horizontal max and sum per row and tile.
//     Scores in log2 units (Q pre-scaled by scale * log2 e); m' = max(m, max_j S),
//     alpha = 2^(m - m'), P = 2^(S - m'), l = l * alpha + sum_j P.
//   values: lanes = head dims; O = O * alpha + sum_j P[j] V_j with O held in registers over the
//   tile.
// The arithmetic order depends only on the item (token, kv heads, key range), never on the rest
// of the batch, so a decode row is bitwise the same alone or batched.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <utility>

#include <immintrin.h>

#include "longbow/backend/cpu/attention/attention_common.h"
#include "longbow/backend/cpu/attention/attention_softcap_simd.h"
#include "longbow/core/dtype.h"

namespace longbow::cpu {
namespace {

constexpr float DECODE_LOG2E = 1.44269504088896341f;
constexpr float DECODE_LN2 = 0.693147180559945309f;
constexpr int DECODE_ROW_BLOCK = 4;  // query rows sharing each K/V load

// The score tree must inline fully so its partial vectors stay in registers.
#define DECODE_INLINE inline __attribute__((always_inline))

// Keys per tile rounded up to whole vectors (the score rows are padded to this).
inline int decode_tile_pad(int tile_keys, int lanes) {
  return (tile_keys + lanes - 1) / lanes * lanes;
}

// f32 scratch of decode_item_t for up to num_kv_heads kv heads of `group` query heads each:
// q, o (R, D), s (G, TKp), m, l, alpha (R,) with R = num_kv_heads * group.
inline size_t decode_item_scratch(int num_kv_heads, int group, int head_dim, int tile_keys,
                                  int lanes) {
  const size_t G = group, R = static_cast<size_t>(num_kv_heads) * group, D = head_dim;
  const size_t TKp = decode_tile_pad(tile_keys, lanes);
  return 2 * R * D + G * TKp + 3 * R;
}

// W values of one cache row (`row`: its bytes, in type T) from element d, dequantized in
// registers. d is a multiple of W, so for the block types (32 values per block, W = 8 or 16) the
// W values sit in one block: q8_0 d * q; q4_0 d * (q - 8), q4_1 d * q + m, with element i < 16 of
// a block in the low nibble of byte i and element 16 + i in its high nibble.
template <class V, DType T>
DECODE_INLINE typename V::reg load_cache(const uint8_t* row, int d) {
  if constexpr (T == DType::F32) {
    return V::load(reinterpret_cast<const float*>(row) + d);
  } else if constexpr (T == DType::F16) {
    return V::load_f16(reinterpret_cast<const uint16_t*>(row) + d);
  } else if constexpr (T == DType::Q8_0) {
    const auto* blk = reinterpret_cast<const BlockQ8_0*>(row) + d / QK;
    return V::mul(V::load_i8(blk->qs + d % QK), V::set1(V::f16_to_f32(blk->d)));
  } else {
    static_assert(T == DType::Q4_0 || T == DType::Q4_1, "load_cache: a KV cache type");
    using Block = std::conditional_t<T == DType::Q4_0, BlockQ4_0, BlockQ4_1>;
    const auto* blk = reinterpret_cast<const Block*>(row) + d / QK;
    const int i = d % QK;
    const typename V::reg q = i < QK / 2 ? V::template load_u4<false>(blk->qs + i)
                                         : V::template load_u4<true>(blk->qs + i - QK / 2);
    const typename V::reg scale = V::set1(V::f16_to_f32(blk->d));
    if constexpr (T == DType::Q4_0) {
      return V::mul(V::sub(q, V::set1(8.0f)), scale);
    } else {
      return V::add(V::mul(q, scale), V::set1(V::f16_to_f32(blk->m)));
    }
  }
}

// Dot products of RB pre-scaled q rows (stride D) with one key row: acc[r] lanes sum to q_r · k.
// ND > 0: D == ND * W known at compile time (unrolled); 0: any multiple of W.
template <class V, DType T, int RB, int ND>
DECODE_INLINE void key_dots(const float* q, int D, const uint8_t* k, typename V::reg* acc) {
  using R = typename V::reg;
  constexpr int W = V::W;
  const R k0 = load_cache<V, T>(k, 0);
  for (int r = 0; r < RB; ++r) acc[r] = V::mul(V::load(q + static_cast<size_t>(r) * D), k0);
  if constexpr (ND > 0) {
    for (int c = 1; c < ND; ++c) {
      const R kd = load_cache<V, T>(k, c * W);
      for (int r = 0; r < RB; ++r)
        acc[r] = V::fmadd(V::load(q + static_cast<size_t>(r) * D + c * W), kd, acc[r]);
    }
  } else {
    for (int d = W; d < D; d += W) {
      const R kd = load_cache<V, T>(k, d);
      for (int r = 0; r < RB; ++r)
        acc[r] = V::fmadd(V::load(q + static_cast<size_t>(r) * D + d), kd, acc[r]);
    }
  }
}

// Score partials of RB rows against keys [j, j + 2^L) of a W-key chunk, folded by L levels of
// V::fold_keys (a transpose-and-add tree kept in registers: one pending vector per row and level).
// After log2 W levels lane i of out[r] is q_r · K_{j+i}. Keys j >= n give 0.
template <class V, DType T, int RB, int ND, int L>
DECODE_INLINE void score_tree(const float* q, int D, const uint8_t* kc, const int32_t* slots,
                              size_t slot_bytes, int j, int n, typename V::reg* out) {
  if (j >= n) {
    for (int r = 0; r < RB; ++r) out[r] = V::zero();
  } else if constexpr (L == 0) {
    key_dots<V, T, RB, ND>(q, D, kc + static_cast<size_t>(slots[j]) * slot_bytes, out);
  } else {
    typename V::reg hi[RB];
    score_tree<V, T, RB, ND, L - 1>(q, D, kc, slots, slot_bytes, j, n, out);
    score_tree<V, T, RB, ND, L - 1>(q, D, kc, slots, slot_bytes, j + (1 << (L - 1)), n, hi);
    for (int r = 0; r < RB; ++r) out[r] = V::template fold_keys<L - 1>(out[r], hi[r]);
  }
}

// s[r, 0 .. nk rounded up to W) = q[r, :] · K_j for RB rows (q rows pre-scaled, stride D); lanes
// past nk get -inf. K_j = kc + slots[j] * slot_bytes.
template <class V, DType T, int RB, int ND>
void decode_scores(const float* q, int D, const uint8_t* kc, const int32_t* slots,
                   size_t slot_bytes, int nk, float* s, int s_stride) {
  using R = typename V::reg;
  constexpr int W = V::W;
  constexpr int LEVELS = W == 16 ? 4 : 3;  // log2 W
  static_assert(1 << LEVELS == W, "decode_scores: W must be 8 or 16");
  for (int j0 = 0; j0 < nk; j0 += W) {
    R acc[RB];
    score_tree<V, T, RB, ND, LEVELS>(q, D, kc, slots + j0, slot_bytes, 0, nk - j0, acc);
    for (int r = 0; r < RB; ++r) V::store(s + static_cast<size_t>(r) * s_stride + j0, acc[r]);
  }
  const int nkp = (nk + W - 1) / W * W;
  for (int r = 0; r < RB; ++r)
    std::fill(s + static_cast<size_t>(r) * s_stride + nk,
              s + static_cast<size_t>(r) * s_stride + nkp, -INFINITY);
}

// o[r, :] = o[r, :] * alpha[r] + sum_{j < nk} p[r, j] V_j for RB rows; DB vectors of head dims
// per register block (D % (DB * W) == 0).
template <class V, DType T, int RB, int DB>
void decode_values(const float* p, int p_stride, int D, const uint8_t* vc, const int32_t* slots,
                   size_t slot_bytes, int nk, const float* alpha, float* o) {
  using R = typename V::reg;
  constexpr int W = V::W;
  for (int d0 = 0; d0 < D; d0 += DB * W) {
    R acc[RB][DB];
    for (int r = 0; r < RB; ++r) {
      const R a = V::set1(alpha[r]);
      for (int c = 0; c < DB; ++c)
        acc[r][c] = V::mul(V::load(o + static_cast<size_t>(r) * D + d0 + c * W), a);
    }
    for (int j = 0; j < nk; ++j) {
      const uint8_t* v = vc + static_cast<size_t>(slots[j]) * slot_bytes;
      R vv[DB];
      for (int c = 0; c < DB; ++c) vv[c] = load_cache<V, T>(v, d0 + c * W);
      for (int r = 0; r < RB; ++r) {
        const R pr = V::set1(p[static_cast<size_t>(r) * p_stride + j]);
        for (int c = 0; c < DB; ++c) acc[r][c] = V::fmadd(pr, vv[c], acc[r][c]);
      }
    }
    for (int r = 0; r < RB; ++r)
      for (int c = 0; c < DB; ++c) V::store(o + static_cast<size_t>(r) * D + d0 + c * W, acc[r][c]);
  }
}

// Online softmax of RB rows' tile (rows interleaved so their reduction chains overlap): scores
// s[r, 0 .. nkp) (-inf past the tile's keys), state m, l; writes P over s and alpha[r] =
// 2^(m_old - m_new) (exactly 1 when the row max did not move).
template <class V, int RB>
DECODE_INLINE void decode_softmax_rows(float* s, int s_stride, int nkp, float* m, float* l,
                                       float* alpha) {
  using R = typename V::reg;
  constexpr int W = V::W;
  R mx[RB], sum[RB], mv[RB];
  for (int r = 0; r < RB; ++r) mx[r] = V::load(s + static_cast<size_t>(r) * s_stride);
  for (int j = W; j < nkp; j += W)
    for (int r = 0; r < RB; ++r)
      mx[r] = V::max(mx[r], V::load(s + static_cast<size_t>(r) * s_stride + j));
  float m_new[RB];
  for (int r = 0; r < RB; ++r) {
    m_new[r] = std::max(m[r], V::hmax(mx[r]));
    // A row that has seen only -inf scores keeps m = -inf and subtracts 0 instead (its P is 0).
    mv[r] = V::set1(m_new[r] == -INFINITY ? 0.0f : m_new[r]);
    sum[r] = V::zero();
  }
  for (int j = 0; j < nkp; j += W) {
    for (int r = 0; r < RB; ++r) {
      float* sj = s + static_cast<size_t>(r) * s_stride + j;
      const R p = V::exp2(V::sub(V::load(sj), mv[r]));
      V::store(sj, p);
      sum[r] = V::add(sum[r], p);
    }
  }
  for (int r = 0; r < RB; ++r) {
    alpha[r] =
        m_new[r] == m[r] ? 1.0f : std::exp2(m[r] - (m_new[r] == -INFINITY ? 0.0f : m_new[r]));
    l[r] = l[r] * alpha[r] + V::hsum(sum[r]);
    m[r] = m_new[r];
  }
}

// Soft-caps the scores s[r, 0 .. nk) of RB rows (log2 units, cap in natural units) in place; the
// -inf padding up to nkp stays -inf. A pass over the tile's scores (in L1) after decode_scores, so
// the score kernel itself is the same for every instantiation.
template <class V, int RB>
DECODE_INLINE void decode_softcap_rows(float* s, int s_stride, int nk, int nkp, float cap) {
  const SoftcapLog2<V> c(cap);
  for (int r = 0; r < RB; ++r) {
    float* sr = s + static_cast<size_t>(r) * s_stride;
    for (int j = 0; j < nkp; j += V::W) V::store(sr + j, softcap_log2<V>(V::load(sr + j), c));
    std::fill(sr + nk, sr + nkp, -INFINITY);
  }
}

// The cache rows of one tile: K_j = k + slots[j] * k_slot_bytes, V_j likewise (K and V planes may
// have different types, so different slot sizes).
struct DecodeTileRows {
  const uint8_t *k, *v;
  const int32_t* slots;
  size_t k_slot_bytes, v_slot_bytes;
};

// One key tile for RB rows: scores (soft-capped when SOFTCAP), online softmax, P·V; K rows in KT,
// V rows in VT.
template <class V, DType KT, DType VT, int RB, bool SOFTCAP = false>
void decode_tile_rows(const float* q, float* o, float* s, int s_stride, int D,
                      const DecodeTileRows& kv, int nk, float* m, float* l, float* alpha,
                      float cap = 0.0f) {
  const int32_t* slots = kv.slots;
  constexpr int W = V::W;
  const int nkp = (nk + W - 1) / W * W;
  switch (D / W == 4 && D % W == 0 ? 4 : D / W == 8 && D % W == 0 ? 8 : 0) {
    case 4: decode_scores<V, KT, RB, 4>(q, D, kv.k, slots, kv.k_slot_bytes, nk, s, s_stride); break;
    case 8: decode_scores<V, KT, RB, 8>(q, D, kv.k, slots, kv.k_slot_bytes, nk, s, s_stride); break;
    default:
      decode_scores<V, KT, RB, 0>(q, D, kv.k, slots, kv.k_slot_bytes, nk, s, s_stride);
      break;
  }
  if constexpr (SOFTCAP) decode_softcap_rows<V, RB>(s, s_stride, nk, nkp, cap);
  decode_softmax_rows<V, RB>(s, s_stride, nkp, m, l, alpha);
  constexpr int DB = V::DECODE_VALUE_VECS;
  if (D % (DB * W) == 0) {
    decode_values<V, VT, RB, DB>(s, s_stride, D, kv.v, slots, kv.v_slot_bytes, nk, alpha, o);
  } else if (D % (2 * W) == 0) {
    decode_values<V, VT, RB, 2>(s, s_stride, D, kv.v, slots, kv.v_slot_bytes, nk, alpha, o);
  } else {
    decode_values<V, VT, RB, 1>(s, s_stride, D, kv.v, slots, kv.v_slot_bytes, nk, alpha, o);
  }
}

// One tile's G rows of one kv head (query rows q, o (G, D), state m, l, alpha (G,)), in row
// blocks of DECODE_ROW_BLOCK.
// SOFTCAP: scores capped at `cap` (natural units); the plain instantiation takes no cap (its code
// is the same as before soft-capping existed).
template <class V, DType KT, DType VT, bool SOFTCAP = false>
void decode_tile_head(const float* q, float* o, float* s, int TKp, int G, int D,
                      const DecodeTileRows& kv, int nk, float* m, float* l, float* alpha,
                      float cap = 0.0f) {
  for (int r0 = 0; r0 < G; r0 += DECODE_ROW_BLOCK) {
    const size_t qo = static_cast<size_t>(r0) * D;
    float* sr = s + static_cast<size_t>(r0) * TKp;
    switch (std::min(DECODE_ROW_BLOCK, G - r0)) {
      case 1:
        decode_tile_rows<V, KT, VT, 1, SOFTCAP>(q + qo, o + qo, sr, TKp, D, kv, nk, m + r0, l + r0,
                                                alpha + r0, cap);
        break;
      case 2:
        decode_tile_rows<V, KT, VT, 2, SOFTCAP>(q + qo, o + qo, sr, TKp, D, kv, nk, m + r0, l + r0,
                                                alpha + r0, cap);
        break;
      case 3:
        decode_tile_rows<V, KT, VT, 3, SOFTCAP>(q + qo, o + qo, sr, TKp, D, kv, nk, m + r0, l + r0,
                                                alpha + r0, cap);
        break;
      default:
        decode_tile_rows<V, KT, VT, 4, SOFTCAP>(q + qo, o + qo, sr, TKp, D, kv, nk, m + r0, l + r0,
                                                alpha + r0, cap);
        break;
    }
  }
}

// Writes the item's R = num_kvh * G rows: out = O / l, or the flash-decoding partials (O, m, l)
// with m in natural-log units (head h of the item at slot it.partial + h * it.partial_stride).
inline void decode_item_store(const AttnBatch& b, const AttnItem& it, const float* o,
                              const float* m, const float* l, float* partials) {
  const int G = b.group, D = b.head_dim, H = b.num_heads;
  for (int r = 0; r < it.num_kvh * G; ++r) {
    const float* orow = o + static_cast<size_t>(r) * D;  // (D,)
    if (it.partial >= 0) {
      const size_t slot =
          static_cast<size_t>(it.partial) + static_cast<size_t>(r / G) * it.partial_stride;
      float* dst = partials + (slot * G + r % G) * (D + 2);  // (D + 2,)
      std::copy(orow, orow + D, dst);
      dst[D] = m[r] == -INFINITY ? -INFINITY : m[r] * DECODE_LN2;
      dst[D + 1] = l[r];
    } else {
      float* dst = b.out + (static_cast<size_t>(it.t0) * H + static_cast<size_t>(it.kvh) * G + r) *
                               D;  // (D,)
      const float inv = l[r] > 0.0f ? 1.0f / l[r] : 0.0f;
      for (int d = 0; d < D; ++d) dst[d] = orow[d] * inv;
    }
  }
}

// One fused decode item (AttnItem with t1 == t0 + 1, any num_kvh; SOFTCAP: b.softcap > 0) over K
// rows of type KT (= b.k.type) and V rows of type VT (= b.v.type), dequantized in registers by
// load_cache. Needs head_dim % V::W == 0; i32 scratch holds attn_decode_tile_keys slots; partials
// is (num_partials, G, D + 2).
template <class V, DType KT, DType VT, bool SOFTCAP>
void decode_item_t(const AttnBatch& b, const AttnItem& it, float* f32, int32_t* i32,
                   float* partials) {
  constexpr int W = V::W;
  const int G = b.group, D = b.head_dim, H = b.num_heads, bs = b.block_size;
  const int R = it.num_kvh * G;  // query rows: the item's kv heads x their group
  const int TK = attn_decode_tile_keys(bs), TKp = decode_tile_pad(TK, W);
  const int t = it.t0;
  const int ke = std::min(it.k_end, b.positions[t] + 1);
  float* q = f32;                               // (R, D) queries * scale * log2 e
  float* o = q + static_cast<size_t>(R) * D;    // (R, D) unnormalized output
  float* s = o + static_cast<size_t>(R) * D;    // (G, TKp) one head's scores, then probabilities
  float* m = s + static_cast<size_t>(G) * TKp;  // (R,) running max (log2 units)
  float* l = m + R;                             // (R,) running sum
  float* alpha = l + R;                         // (R,) per-tile rescale
  int32_t* slots = i32;                         // (TK,) cache slots of this tile's keys
  const float qscale = b.scale * DECODE_LOG2E;
  const float* qsrc =
      b.q + (static_cast<size_t>(t) * H + static_cast<size_t>(it.kvh) * G) * D;  // (R, D)
  for (size_t i = 0; i < static_cast<size_t>(R) * D; ++i) q[i] = qsrc[i] * qscale;
  std::fill(o, o + static_cast<size_t>(R) * D, 0.0f);
  std::fill(m, m + R, -INFINITY);
  std::fill(l, l + R, 0.0f);
  const size_t k_slot_bytes = b.slot_bytes(b.k), v_slot_bytes = b.slot_bytes(b.v);
  // Rows of the item's first kv head; the rows of one slot's kv heads are row_bytes apart.
  const uint8_t* kc = b.k.cache + static_cast<size_t>(it.kvh) * b.k.row_bytes;
  const uint8_t* vc = b.v.cache + static_cast<size_t>(it.kvh) * b.v.row_bytes;
  const int32_t* table = b.block_tables + static_cast<size_t>(it.seq) * b.max_blocks_per_seq;
  // Paged K/V stream from DRAM in a batched step and demand misses alone leave the core waiting,
  // so the next tile is prefetched while this one runs, a share per kv head
  // (whole slots: an item covers all kv heads); the first tile is prefetched
  // up front (already in L2 when the dispatcher prefetched it during the previous item).
  auto prefetch_tile = [&](int j0, int part, int parts) {
    if (j0 >= ke) return;
    const int j1 = std::min(ke, j0 + TK);
    attn_prefetch_keys<3>(b.k.cache, table, bs, k_slot_bytes, j0, j1, part, parts);
    attn_prefetch_keys<3>(b.v.cache, table, bs, v_slot_bytes, j0, j1, part, parts);
  };
  prefetch_tile(it.k_begin, 0, 1);
  for (int j0 = it.k_begin; j0 < ke;
       j0 += TK) {  // tiles from k_begin (block aligned unless a window starts it)
    const int nk = std::min(ke, j0 + TK) - j0;
    for (int j = j0; j < j0 + nk;) {  // block by block: slots run contiguously within a block
      const int base = table[j / bs] * bs - (j / bs) * bs,
                je = std::min(j0 + nk, (j / bs + 1) * bs);
      for (; j < je; ++j) slots[j - j0] = base + j;
    }
    for (int h = 0; h < it.num_kvh; ++h) {
      prefetch_tile(j0 + TK, h, it.num_kvh);
      const size_t ro = static_cast<size_t>(h) * G;
      const DecodeTileRows kv{kc + static_cast<size_t>(h) * b.k.row_bytes,
                              vc + static_cast<size_t>(h) * b.v.row_bytes, slots, k_slot_bytes,
                              v_slot_bytes};
      decode_tile_head<V, KT, VT, SOFTCAP>(q + ro * D, o + ro * D, s, TKp, G, D, kv, nk, m + ro,
                                           l + ro, alpha + ro, b.softcap);
    }
  }
  decode_item_store(b, it, o, m, l, partials);
}

// decode_item_t for the K type KT and the V type b.v.type (any of f16, q8_0, q4_0, q4_1); false,
// doing nothing, for another V type.
template <class V, DType KT, bool SOFTCAP>
bool decode_item_v(const AttnBatch& b, const AttnItem& it, float* f32, int32_t* i32,
                   float* partials) {
  switch (b.v.type) {
    case DType::F16: decode_item_t<V, KT, DType::F16, SOFTCAP>(b, it, f32, i32, partials); break;
    case DType::Q8_0: decode_item_t<V, KT, DType::Q8_0, SOFTCAP>(b, it, f32, i32, partials); break;
    case DType::Q4_0: decode_item_t<V, KT, DType::Q4_0, SOFTCAP>(b, it, f32, i32, partials); break;
    case DType::Q4_1: decode_item_t<V, KT, DType::Q4_1, SOFTCAP>(b, it, f32, i32, partials); break;
    default: return false;
  }
  return true;
}

// The decode item of a block-typed or mixed cache: K and V each f16, q8_0, q4_0 or q4_1 (an f32
// plane beside another type: false, the generic tile loop takes it).
template <class V, bool SOFTCAP>
bool decode_item_kv(const AttnBatch& b, const AttnItem& it, float* f32, int32_t* i32,
                    float* partials) {
  switch (b.k.type) {
    case DType::F16: return decode_item_v<V, DType::F16, SOFTCAP>(b, it, f32, i32, partials);
    case DType::Q8_0: return decode_item_v<V, DType::Q8_0, SOFTCAP>(b, it, f32, i32, partials);
    case DType::Q4_0: return decode_item_v<V, DType::Q4_0, SOFTCAP>(b, it, f32, i32, partials);
    case DType::Q4_1: return decode_item_v<V, DType::Q4_1, SOFTCAP>(b, it, f32, i32, partials);
    default: return false;
  }
}

}  // namespace
}  // namespace longbow::cpu
