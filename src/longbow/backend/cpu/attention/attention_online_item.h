// The FlashAttention-2 online-softmax tile loop of the CPU attention (see
// attention_flash_prefill.cpp for the algorithm), as a template over the sliding-window and
// soft-cap flags. The plain instantiation is compiled in attention_flash_prefill.cpp, the others in
// attention_flash_prefill_ext.cpp, so the plain loop's code does not change with them (GCC's
// inlining budget is per file). The contents sit in an anonymous namespace: one copy per file.
#pragma once

#include <algorithm>
#include <cmath>

#include "longbow/backend/cpu/attention/attention_common.h"

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

// run_online_item as a template: SIMD prefill items go to the kernel set; else the tile loop with
// WINDOW: rows also mask keys before their window start (prefill rows of one item start at
// different keys), SOFTCAP: scores are soft-capped. Both false: the plain causal loop.
template <bool WINDOW, bool SOFTCAP>
__attribute__((noinline)) void online_item_t(const AttnBatch& b, const AttnItem& it, float* f32,
                                             int32_t* i32, float* partials) {
  const AttnKernels& kern = attn_kernels();
  const int G = b.group, D = b.head_dim, H = b.num_heads, bs = b.block_size;
  const int R = (it.t1 - it.t0) * G, TK = attn_tile_keys(bs);
  if (kern.prefill_item != nullptr && it.decode_stage == 0 && D % 4 == 0) {
    kern.prefill_item(b, it, f32);  // prefill tiles: the transposed SIMD form
    return;
  }
  float* qt = f32;                             // (R, D) queries * scale
  float* o = qt + static_cast<size_t>(R) * D;  // (R, D) unnormalized output
  float* s = o + static_cast<size_t>(R) * D;   // (R, TK) scores, then probabilities
  float* m = s + static_cast<size_t>(R) * TK;  // (R,) running max
  float* l = m + R;                            // (R,) running sum
  int32_t* lim = i32;                          // (R,) end of the keys each row sees
  int32_t* lo = lim + R;                       // (R,) window start of each row (WINDOW)
  int max_lim = it.k_begin;
  for (int ti = 0; ti < it.t1 - it.t0; ++ti) {
    const int t = it.t0 + ti;
    const int row_lim = std::min(b.positions[t] + 1, it.k_end);
    max_lim = std::max(max_lim, row_lim);
    for (int g = 0; g < G; ++g) {
      const int r = ti * G + g;
      const float* src =
          b.q + (static_cast<size_t>(t) * H + static_cast<size_t>(it.kvh) * G + g) * D;
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
      attn_block_scores(kern, b, qt, R, it.seq, it.kvh, jb, je - jb, s + (jb - j0), TK);
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
      rescale_row(m[r], l[r], o + static_cast<size_t>(r) * D, D,
                  kern.row_max(sr + first, valid - first));
      l[r] += kern.exp_sum(sr + first, valid - first, m[r]);
      std::fill(sr + valid, sr + nk, 0.0f);
    }
    for (int jb = j0; jb < j1;) {
      const int je = std::min(j1, (jb / bs + 1) * bs);
      attn_block_values(kern, b, s + (jb - j0), TK, R, it.seq, it.kvh, jb, je - jb, o);
      jb = je;
    }
    j0 = j1;
  }

  if (it.partial >= 0) {  // flash-decoding split: (O, m, l) per head, merged later
    float* p = partials + static_cast<size_t>(it.partial) * G * (D + 2);  // (G, D + 2)
    for (int r = 0; r < G; ++r) {
      std::copy(o + static_cast<size_t>(r) * D, o + static_cast<size_t>(r + 1) * D,
                p + static_cast<size_t>(r) * (D + 2));
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
}  // namespace longbow::cpu
