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

#include "longbow/backend/cpu/attention/attention_common.h"
#include "longbow/backend/cpu/attention/attention_online_item.h"

namespace longbow::cpu {

size_t attn_item_scratch(const AttnBatch& b, int rows, int stage1_keys) {
  const size_t R = rows, D = b.head_dim, G = b.group;
  const size_t online = 2 * R * D + R * attn_tile_keys(b.block_size) + 2 * R;
  const size_t nb = static_cast<size_t>(stage1_keys) / b.block_size + 2;
  const size_t stage1 = 2 * G * D + G * static_cast<size_t>(stage1_keys) + G * nb + 2 * G;
  const AttnKernels& kern = attn_kernels();
  const size_t simd = kern.prefill_item != nullptr ? kern.prefill_scratch(b, rows) : 0;
  return std::max({online, stage1, simd});
}

void run_online_item(const AttnBatch& b, const AttnItem& it, float* f32, int32_t* i32,
                     float* partials) {
  online_item_t<false, false>(b, it, f32, i32, partials);
}

}  // namespace longbow::cpu
