// Fused decode attention on the CPU: one query token, the group of query heads sharing one kv
// head, keys [k_begin, k_end) of the paged cache (the planner starts them at the token's sliding
// window, so no window mask is needed here; scores soft-capped when logit_softcap > 0). Two
// stages, as the roadmap builds them (LONGBOW_ATTN_DECODE_STAGE selects; attention_dispatch.cpp):
//
//  stage 1, scores + softmax fused: one pass over K computes scores block by block, keeps the
//    running max m and sum l (online softmax, Milakov & Gimelshein 2018) and stores
//    p = exp(s - m_at_that_block) plus the block's m; a second pass over V rescales each block's
//    p by exp(m_block - m_final) and accumulates P·V. Scores of one row: (k_end - k_begin,) f32.
//  stage 2, fully fused: one pass over K and V with a rescaled accumulator — the
//    FlashAttention-2 tile loop of attention_flash_prefill.cpp with one query token (rows = group).
//
// Stage 2 runs as the SIMD decode item of attention_decode_simd.h when the kernel set has one.
// Flash-decoding (Dao et al. 2023): a token's keys are split into ranges by its context length
// alone (attn_decode_splits, so results do not depend on the batch), run as separate items
// writing (O, m, l) partials; the split that finishes last runs the merge below:
// m* = max m_i, l* = sum l_i e^(m_i - m*), out = sum O_i e^(m_i - m*) / l*.
// On Metal: one threadgroup per (token, kv head, split), one simdgroup per query head row,
// simd_max / simd_sum for the row reductions, a second tiny kernel for the merge.
#include <algorithm>
#include <cmath>

#include "longbow/backend/cpu/attention/attention_common.h"

namespace longbow::cpu {

namespace {
// SOFTCAP: scores soft-capped block by block before the online max and sum.
template <bool SOFTCAP>
__attribute__((noinline)) void stage1_item_t(const AttnBatch& b, const AttnItem& it, float* f32,
                                             float* partials) {
  const AttnKernels& kern = attn_kernels();
  const int G = b.group, D = b.head_dim, H = b.num_heads, bs = b.block_size;
  const int t = it.t0;  // stage-1 items carry exactly one token
  const int kb = it.k_begin, ke = std::min(it.k_end, b.positions[t] + 1);
  const int N = std::max(ke - kb, 0);
  const int nb = N / bs + 2;                         // blocks touched by [kb, ke)
  float* qt = f32;                                   // (G, D) queries * scale
  float* acc = qt + static_cast<size_t>(G) * D;      // (G, D)
  float* p = acc + static_cast<size_t>(G) * D;       // (G, N) probabilities relative to block_m
  float* block_m = p + static_cast<size_t>(G) * N;   // (G, nb) running max after each block
  float* m = block_m + static_cast<size_t>(G) * nb;  // (G,)
  float* l = m + G;                                  // (G,)
  for (int g = 0; g < G; ++g) {
    const float* src = b.q + (static_cast<size_t>(t) * H + static_cast<size_t>(it.kvh) * G + g) * D;
    for (int d = 0; d < D; ++d) qt[static_cast<size_t>(g) * D + d] = src[d] * b.scale;
    m[g] = -INFINITY;
    l[g] = 0.0f;
  }
  std::fill(acc, acc + static_cast<size_t>(G) * D, 0.0f);

  // Pass 1 over K: scores, running max and sum.
  int bi = 0;
  for (int jb = kb; jb < ke; ++bi) {
    const int je = std::min(ke, (jb / bs + 1) * bs);
    const int nk = je - jb;
    float* pb = p + (jb - kb);
    attn_block_scores(kern, b, qt, G, it.seq, it.kvh, jb, nk, pb, N);
    if constexpr (SOFTCAP) {
      for (int g = 0; g < G; ++g) attn_softcap(pb + static_cast<size_t>(g) * N, nk, b.softcap);
    }
    for (int g = 0; g < G; ++g) {
      float* sr = pb + static_cast<size_t>(g) * N;
      const float m_new = std::max(m[g], kern.row_max(sr, nk));
      if (m_new > m[g]) {
        if (m[g] != -INFINITY) l[g] *= std::exp(m[g] - m_new);
        m[g] = m_new;
      }
      l[g] += kern.exp_sum(sr, nk, m[g]);
      block_m[static_cast<size_t>(g) * nb + bi] = m[g];
    }
    jb = je;
  }
  // Pass 2 over V: bring each block's p to the final max and accumulate.
  bi = 0;
  for (int jb = kb; jb < ke; ++bi) {
    const int je = std::min(ke, (jb / bs + 1) * bs);
    const int nk = je - jb;
    float* pb = p + (jb - kb);
    for (int g = 0; g < G; ++g) {
      const float f = std::exp(block_m[static_cast<size_t>(g) * nb + bi] - m[g]);
      if (f != 1.0f) {
        float* sr = pb + static_cast<size_t>(g) * N;
        for (int j = 0; j < nk; ++j) sr[j] *= f;
      }
    }
    attn_block_values(kern, b, pb, N, G, it.seq, it.kvh, jb, nk, acc);
    jb = je;
  }

  for (int g = 0; g < G; ++g) {
    const float* o = acc + static_cast<size_t>(g) * D;
    if (it.partial >= 0) {
      float* dst = partials + (static_cast<size_t>(it.partial) * G + g) * (D + 2);  // (D + 2,)
      std::copy(o, o + D, dst);
      dst[D] = m[g];
      dst[D + 1] = l[g];
    } else {
      float* dst = b.out + (static_cast<size_t>(t) * H + static_cast<size_t>(it.kvh) * G + g) * D;
      const float inv = l[g] > 0.0f ? 1.0f / l[g] : 0.0f;
      for (int d = 0; d < D; ++d) dst[d] = o[d] * inv;
    }
  }
}

}  // namespace

void run_stage1_item(const AttnBatch& b, const AttnItem& it, float* f32, float* partials) {
  if (b.softcap > 0.0f) {
    stage1_item_t<true>(b, it, f32, partials);
  } else {
    stage1_item_t<false>(b, it, f32, partials);
  }
}

void merge_attention_splits(const AttnBatch& b, int t, int kvh, int p0, int num_splits,
                            const float* partials) {
  const int G = b.group, D = b.head_dim, H = b.num_heads;
  for (int g = 0; g < G; ++g) {
    auto part = [&](int i) {
      return partials + (static_cast<size_t>(p0 + i) * G + g) * (D + 2);
    };  // (D + 2,)
    float m_all = -INFINITY;
    for (int i = 0; i < num_splits; ++i) m_all = std::max(m_all, part(i)[D]);
    float* dst = b.out + (static_cast<size_t>(t) * H + static_cast<size_t>(kvh) * G + g) * D;
    std::fill(dst, dst + D, 0.0f);
    if (m_all == -INFINITY) continue;  // no keys at all
    float l_all = 0.0f;
    for (int i = 0; i < num_splits; ++i) {
      const float* pi = part(i);
      if (pi[D + 1] == 0.0f) continue;
      const float w = std::exp(pi[D] - m_all);
      l_all += pi[D + 1] * w;
      for (int d = 0; d < D; ++d) dst[d] += pi[d] * w;
    }
    const float inv = 1.0f / l_all;
    for (int d = 0; d < D; ++d) dst[d] *= inv;
  }
}

}  // namespace longbow::cpu
