// FlashAttention-2 (Dao, 2023) on the CPU: the online-softmax tile loop shared by flash prefill
// and fused decode stage 2. Memory is linear in sequence length: per item only the (rows, tile)
// score tile, the (rows, head_dim) accumulator and per-row (m, l) exist; no (N x N) buffer.
//
// One item (threadgroup on Metal):
//   rows = query tokens [t0, t1) x the group of query heads of kv head kvh; Q tile pre-scaled.
//   for key tiles of ATTN_TILE_KEYS keys (whole paged blocks, read through the block table) from
//   k_begin (the window's first tile with a sliding window):
//     S (rows, tile) = Q·Kᵀ            -- simdgroup_matrix tile product on Metal
//     soft-cap (when on): S = cap * tanh(S / cap)
//     causal mask: row r sees keys < min(pos[r] + 1, k_end) (and >= its window start when on);
//     masked scores become p = 0
//     m' = max(m, rowmax S); alpha = exp(m - m'); O *= alpha; l *= alpha   -- simd_max
//     P = exp(S - m'); l += rowsum P; O += P·V                              -- simd_sum
//   out = O / l, or (O, m, l) to a flash-decoding partial when the keys were split.
// Tiles over query tokens let the GQA group and ATTN_PREFILL_TOKENS tokens share each K/V load.
#include <algorithm>
#include <cmath>

#include "longbow/backend/cpu/attention_common.h"

namespace longbow::cpu {

namespace {
// Rescales the running state of one row to the new max m_new (m may be -inf: O and l are 0).
inline void rescale_row(float& m, float& l, float* o, int head_dim, float m_new) {
  if (m_new <= m) return;
  if (m != -INFINITY) {
    const float alpha = std::exp(m - m_new);
    l *= alpha;
    for (int d = 0; d < head_dim; ++d) o[d] *= alpha;
  }
  m = m_new;
}
}  // namespace

size_t attn_item_scratch(const AttnBatch& b, int rows, int stage1_keys) {
  const size_t R = rows, D = b.head_dim, G = b.group;
  const size_t online = 2 * R * D + R * attn_tile_keys(b.block_size) + 2 * R;
  const size_t nb = static_cast<size_t>(stage1_keys) / b.block_size + 2;
  const size_t stage1 = 2 * G * D + G * static_cast<size_t>(stage1_keys) + G * nb + 2 * G;
  const AttnKernels& kern = attn_kernels();
  const size_t simd = kern.prefill_item != nullptr ? kern.prefill_scratch(b, rows) : 0;
  return std::max({online, stage1, simd});
}

namespace {
// The tile loop; WINDOW: rows also mask keys before their window start (prefill rows of one item
// start at different keys), SOFTCAP: scores are soft-capped. Both false: the plain causal loop.
template <bool WINDOW, bool SOFTCAP>
void online_item_t(const AttnBatch& b, const AttnItem& it, float* f32, int32_t* i32, float* partials) {
  const AttnKernels& kern = attn_kernels();
  const int G = b.group, D = b.head_dim, H = b.num_heads, bs = b.block_size;
  const int R = (it.t1 - it.t0) * G, TK = attn_tile_keys(bs);
  const size_t stride = b.row_stride();
  float* qt = f32;                                // (R, D) queries * scale
  float* o = qt + static_cast<size_t>(R) * D;     // (R, D) unnormalized output
  float* s = o + static_cast<size_t>(R) * D;      // (R, TK) scores, then probabilities
  float* m = s + static_cast<size_t>(R) * TK;     // (R,) running max
  float* l = m + R;                               // (R,) running sum
  int32_t* lim = i32;                             // (R,) end of the keys each row sees
  int32_t* lo = lim + R;                          // (R,) window start of each row (WINDOW)
  int max_lim = it.k_begin;
  for (int ti = 0; ti < it.t1 - it.t0; ++ti) {
    const int t = it.t0 + ti;
    const int row_lim = std::min(b.positions[t] + 1, it.k_end);
    max_lim = std::max(max_lim, row_lim);
    for (int g = 0; g < G; ++g) {
      const int r = ti * G + g;
      const float* src = b.q + (static_cast<size_t>(t) * H + static_cast<size_t>(it.kvh) * G + g) * D;
      for (int d = 0; d < D; ++d) qt[static_cast<size_t>(r) * D + d] = src[d] * b.scale;
      lim[r] = row_lim;
      if constexpr (WINDOW) lo[r] = b.window_begin(b.positions[t]);
    }
  }
  std::fill(o, o + static_cast<size_t>(R) * D, 0.0f);
  std::fill(m, m + R, -INFINITY);
  std::fill(l, l + R, 0.0f);

  for (int j0 = it.k_begin; j0 < max_lim;) {
    const int j1 = std::min(max_lim, (j0 / bs) * bs + TK);  // whole blocks, at most TK keys
    const int nk = j1 - j0;
    for (int jb = j0; jb < j1;) {
      const int je = std::min(j1, (jb / bs + 1) * bs);
      kern.scores(qt, R, D, b.row(b.k_cache, it.seq, it.kvh, jb), stride, je - jb, b.f16, s + (jb - j0), TK);
      jb = je;
    }
    for (int r = 0; r < R; ++r) {
      float* sr = s + static_cast<size_t>(r) * TK;
      const int valid = std::min(nk, lim[r] - j0);
      int first = 0;  // keys [first, valid) of the tile are this row's
      if constexpr (WINDOW) first = std::clamp(lo[r] - j0, 0, nk);
      if (valid <= first) {
        std::fill(sr, sr + nk, 0.0f);
        continue;
      }
      if constexpr (SOFTCAP) attn_softcap(sr + first, valid - first, b.softcap);
      if constexpr (WINDOW) std::fill(sr, sr + first, 0.0f);
      rescale_row(m[r], l[r], o + static_cast<size_t>(r) * D, D, kern.row_max(sr + first, valid - first));
      l[r] += kern.exp_sum(sr + first, valid - first, m[r]);
      std::fill(sr + valid, sr + nk, 0.0f);
    }
    for (int jb = j0; jb < j1;) {
      const int je = std::min(j1, (jb / bs + 1) * bs);
      kern.values(s + (jb - j0), TK, R, D, b.row(b.v_cache, it.seq, it.kvh, jb), stride, je - jb, b.f16, o);
      jb = je;
    }
    j0 = j1;
  }

  if (it.partial >= 0) {  // flash-decoding split: (O, m, l) per head, merged later
    float* p = partials + static_cast<size_t>(it.partial) * G * (D + 2);  // (G, D + 2)
    for (int r = 0; r < G; ++r) {
      std::copy(o + static_cast<size_t>(r) * D, o + static_cast<size_t>(r + 1) * D, p + static_cast<size_t>(r) * (D + 2));
      p[static_cast<size_t>(r) * (D + 2) + D] = m[r];
      p[static_cast<size_t>(r) * (D + 2) + D + 1] = l[r];
    }
    return;
  }
  for (int ti = 0; ti < it.t1 - it.t0; ++ti) {
    const int t = it.t0 + ti;
    for (int g = 0; g < G; ++g) {
      const int r = ti * G + g;
      float* dst = b.out + (static_cast<size_t>(t) * H + static_cast<size_t>(it.kvh) * G + g) * D;
      const float inv = l[r] > 0.0f ? 1.0f / l[r] : 0.0f;
      for (int d = 0; d < D; ++d) dst[d] = o[static_cast<size_t>(r) * D + d] * inv;
    }
  }
}
}  // namespace

void run_online_item(const AttnBatch& b, const AttnItem& it, float* f32, int32_t* i32, float* partials) {
  const AttnKernels& kern = attn_kernels();
  if (kern.prefill_item != nullptr && it.decode_stage == 0 && b.head_dim % 4 == 0) {
    kern.prefill_item(b, it, f32);  // prefill tiles: the transposed SIMD form
    return;
  }
  // Decode items hold one token whose key range already starts at its window: no window mask.
  const bool window = b.window > 0 && it.decode_stage == 0, softcap = b.softcap > 0.0f;
  if (!window && !softcap) {
    online_item_t<false, false>(b, it, f32, i32, partials);
  } else if (!window) {
    online_item_t<false, true>(b, it, f32, i32, partials);
  } else if (!softcap) {
    online_item_t<true, false>(b, it, f32, i32, partials);
  } else {
    online_item_t<true, true>(b, it, f32, i32, partials);
  }
}

}  // namespace longbow::cpu
