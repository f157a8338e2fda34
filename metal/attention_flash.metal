// FlashAttention-2 (Dao, 2023) prefill over the paged KV cache: causal, grouped-query, queries
// that start mid-sequence (chunked prefill: each row sees keys [0, position + 1)). Memory is linear
// in the sequence length: no (N x N) buffer, only per-threadgroup tiles.
//
// One threadgroup per (query tile of one sequence, kv head x head chunk). Its
// LONGBOW_ATTN_FLASH_ROWS = 32 rows are (tile_tokens tokens) x (head_chunk query heads of that kv
// head), so each K/V tile is loaded once for every head of the group. 4 SIMD groups, SIMD group sg
// owns rows [8 sg, 8 sg + 8):
//   Q (8 x dim_pad) and the accumulator O (8 x dim_pad) live in simdgroup_float8x8 registers;
//   for each key tile of key_tile keys (<= 64; key_tile x dim_pad <= 4096 f32 = 16 KiB), read row
//   by row through the block table into threadgroup memory:
//     S = Q·Kᵀ                   8x8 simdgroup products -> s_s (rows, key_tile)
//     causal / validity mask     masked scores = -inf
//     m' = max(m, rowmax S)      4 lanes per row, simd_shuffle_xor reductions
//     P = exp(S - m'), l = l e^(m - m') + rowsum P, O = diag(e^(m - m')) O + P·V   (V tile reuses
//     K's memory)
//   Tiles stop at the largest key any row sees (tiles above the causal diagonal are skipped);
//   out = O / l. Head dims up to 256; not multiples of 8 are zero-padded in the tiles.
// Instantiations `_window` (WINDOW: sliding window) and `_softcap` (SOFTCAP: logit soft-capping):
//   WINDOW starts the tile loop at the key tile holding the rows' first window key (tiles wholly
//   before every row's window are skipped) and masks keys before each row's own window start;
//   SOFTCAP caps each score before the mask. The plain instantiation has neither.
// Threadgroup memory: 16 KiB K/V tile (also Q / O staging) + 8 KiB scores + ~1.5 KiB.
#include <metal_stdlib>
#include "attention_paged.h"
#include "kv_elems.h"
using namespace metal;

#define FL_ROWS LONGBOW_ATTN_FLASH_ROWS
#define FL_THREADS LONGBOW_ATTN_FLASH_THREADS
#define FL_SIMDS (LONGBOW_ATTN_FLASH_THREADS / 32)
#define FL_KV LONGBOW_ATTN_FLASH_KV_FLOATS
#define FL_KEYS LONGBOW_ATTN_FLASH_MAX_KEYS
#define FL_MATS (LONGBOW_ATTN_MAX_HEAD_DIM / 8)  // 8x8 blocks along head_dim
#define FL_STAGE_DIMS (FL_KV / FL_ROWS)          // head_dim columns staged at a time (128)

// What one flash threadgroup computes.
struct FlashTile {
  int s, t0, t1;  // sequence and its query tokens [t0, t1)
  int kvh, h0;    // kv head and first query head (global)
  int nh;         // query heads of this chunk
};

inline bool flash_tile(constant AttentionFlashKArgs& args, device const int* query_start,
                       device const int* generated_seqs, uint2 tg, thread FlashTile& ft) {
  if (!attn_find_prefill_tile(args.base, query_start, generated_seqs, args.select, args.tile_tokens,
                              int(tg.x), ft.s, ft.t0, ft.t1)) {
    return false;
  }
  const int group = args.base.num_heads / args.base.num_kv_heads;
  ft.kvh = int(tg.y) / args.num_head_chunks;
  const int first = (int(tg.y) % args.num_head_chunks) * args.head_chunk;
  ft.h0 = ft.kvh * group + first;
  ft.nh = min(args.head_chunk, group - first);
  return true;
}

// Row r of the tile -> token and query head; false for padding rows.
inline bool flash_row(constant AttentionFlashKArgs& args, thread const FlashTile& ft, int r,
                      thread int& t, thread int& h) {
  const int ti = r / args.head_chunk, g = r % args.head_chunk;
  t = ft.t0 + ti;
  h = ft.h0 + g;
  return g < ft.nh && t < ft.t1;
}

// kv_s (key_tile, dim_pad) = cache rows of the tile's keys (zero for masked keys and padding dims).
template <typename C>
inline void flash_load_tile(constant AttentionFlashKArgs& args, device const C* cache,
                            threadgroup const int* krow_s, threadgroup float* kv_s, uint tid) {
  const int D = args.base.head_dim, DP = args.dim_pad;
  for (int i = int(tid); i < args.key_tile * DP; i += FL_THREADS) {
    const int key = i / DP, d = i % DP;
    const int row = krow_s[key];
    kv_s[i] = row >= 0 && d < D ? kv_elem(cache, long(row), D, d) : 0.0f;
  }
}

template <typename C, bool WINDOW, bool SOFTCAP>
kernel void attention_flash_prefill(
    constant AttentionFlashKArgs& args [[buffer(0)]],
    device float* out [[buffer(1)]],        // (num_tokens, num_heads, head_dim)
    device const float* q [[buffer(2)]],    // (num_tokens, num_heads, head_dim)
    device const C* k_cache [[buffer(3)]],  // (num_blocks, block_size, num_kv_heads, head_dim)
    device const C* v_cache [[buffer(4)]],  // (num_blocks, block_size, num_kv_heads, head_dim)
    device const int* block_tables [[buffer(5)]],    // (num_seqs, max_blocks_per_seq)
    device const int* query_start [[buffer(6)]],     // (num_seqs + 1,)
    device const int* seq_lens [[buffer(7)]],        // (num_seqs,)
    device const int* positions [[buffer(8)]],       // (num_tokens,)
    device const int* generated_seqs [[buffer(9)]],  // (num_seqs,) 1 = generated tokens
    uint2 tg [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]],
    uint sg [[simdgroup_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]]) {
  threadgroup float kv_s[FL_KV];  // (key_tile, dim_pad) K then V tile; Q / O staging (rows, 128)
  threadgroup float s_s[FL_ROWS * FL_KEYS];  // (rows, key_tile) scores, then probabilities
  threadgroup float
      alpha_s[FL_SIMDS * 64];       // per SIMD group: 8x8 diagonal of the row rescale factors
  threadgroup float l_s[FL_ROWS];   // (rows,) final row sums
  threadgroup int lim_s[FL_ROWS];   // (rows,) keys each row sees (0 for padding rows)
  threadgroup int lo_s[FL_ROWS];    // (rows,) first key each row sees (WINDOW; else 0)
  threadgroup int krow_s[FL_KEYS];  // (key_tile,) cache row of each key, -1 masked
  FlashTile ft;
  if (!flash_tile(args, query_start, generated_seqs, tg, ft))
    return;  // whole threadgroup, no barrier yet
  const int D = args.base.head_dim, DP = args.dim_pad, BC = args.key_tile;
  const int num_dmats = DP / 8, num_kmats = BC / 8;

  if (int(tid) < FL_ROWS) {
    int t, h;
    const bool ok = flash_row(args, ft, int(tid), t, h);
    const int keys = ok ? attn_keys_of(args.base, seq_lens, positions, ft.s, t) : 0;
    lim_s[tid] = keys;
    if (WINDOW) lo_s[tid] = ok ? attn_first_key(args.base, positions, t, keys) : 0;
  }
  for (int i = int(tid); i < FL_SIMDS * 64; i += FL_THREADS) alpha_s[i] = 0.0f;

  // Q (scaled, zero padded) into registers, FL_STAGE_DIMS columns at a time through kv_s.
  simdgroup_float8x8 qm[FL_MATS];
  simdgroup_float8x8 om[FL_MATS];
  for (int c0 = 0; c0 < DP; c0 += FL_STAGE_DIMS) {
    const int cw = min(FL_STAGE_DIMS, DP - c0);
    for (int i = int(tid); i < FL_ROWS * cw; i += FL_THREADS) {
      const int r = i / cw, d = c0 + i % cw;
      int t, h;
      const bool ok = flash_row(args, ft, r, t, h) && d < D;
      kv_s[i] = ok ? q[(long(t) * args.base.num_heads + h) * D + d] * args.base.scale : 0.0f;
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);
    for (int k = 0; k < cw / 8; ++k) {
      simdgroup_load(qm[c0 / 8 + k], kv_s, ulong(cw), ulong2(ulong(k * 8), ulong(sg * 8)));
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);
  }
  for (int n = 0; n < num_dmats; ++n) om[n] = make_filled_simdgroup_matrix<float, 8, 8>(0.0f);
  int max_keys = 0, min_first = 0;
  for (int r = 0; r < FL_ROWS; ++r) max_keys = max(max_keys, lim_s[r]);
  if (WINDOW) {  // first key tile holding a window key of some row (padding rows see no keys)
    min_first = max_keys;
    for (int r = 0; r < FL_ROWS; ++r) {
      if (lim_s[r] > 0) min_first = min(min_first, lo_s[r]);
    }
    min_first = min_first / BC * BC;
  }

  // Softmax lanes: 4 per row, columns seg, seg + 4, ...; (m, l) of the row in registers.
  const int my_row = int(sg) * 8 + int(lane) / 4, seg = int(lane) % 4;
  const int my_lim = lim_s[my_row], my_lo = WINDOW ? lo_s[my_row] : 0;
  float m = -INFINITY, l = 0.0f;
  for (int j0 = min_first; j0 < max_keys;
       j0 += BC) {  // uniform: every thread computed the same bounds
    if (int(tid) < BC) {
      const int j = j0 + int(tid);
      krow_s[tid] = j < max_keys ? attn_cache_row(args.base, block_tables, ft.s, ft.kvh, j) : -1;
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);
    flash_load_tile(args, k_cache, krow_s, kv_s, tid);
    threadgroup_barrier(mem_flags::mem_threadgroup);

    // S (8 rows of this SIMD group, BC) = Q·Kᵀ
    for (int c = 0; c < num_kmats; ++c) {
      simdgroup_float8x8 acc = make_filled_simdgroup_matrix<float, 8, 8>(0.0f);
      for (int k = 0; k < num_dmats; ++k) {
        simdgroup_float8x8 kt;
        simdgroup_load(kt, kv_s, ulong(DP), ulong2(ulong(k * 8), ulong(c * 8)), true);  // Kᵀ block
        simdgroup_multiply_accumulate(acc, qm[k], kt, acc);
      }
      simdgroup_store(acc, s_s, ulong(BC), ulong2(ulong(c * 8), ulong(sg * 8)));
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);  // K tile no longer needed; S visible
    flash_load_tile(args, v_cache, krow_s, kv_s, tid);

    // Online softmax of this lane's row segment.
    threadgroup float* srow = s_s + my_row * BC;
    float mx = -INFINITY;
    for (int c = seg; c < BC; c += 4) {
      const bool masked = j0 + c >= my_lim || krow_s[c] < 0 || (WINDOW && j0 + c < my_lo);
      const float v =
          masked ? -INFINITY : (SOFTCAP ? attn_softcap(srow[c], args.base.logit_softcap) : srow[c]);
      srow[c] = v;
      mx = max(mx, v);
    }
    mx = max(mx, simd_shuffle_xor(mx, ushort(1)));
    mx = max(mx, simd_shuffle_xor(mx, ushort(2)));
    const float m_new = max(m, mx);
    const float alpha = m == -INFINITY ? 0.0f : exp(m - m_new);
    float sum = 0.0f;
    for (int c = seg; c < BC; c += 4) {
      const float p = srow[c] == -INFINITY ? 0.0f : exp(srow[c] - m_new);
      srow[c] = p;
      sum += p;
    }
    sum += simd_shuffle_xor(sum, ushort(1));
    sum += simd_shuffle_xor(sum, ushort(2));
    l = l * alpha + sum;
    m = m_new;
    if (seg == 0) alpha_s[sg * 64 + (lane / 4) * 9] = alpha;  // diagonal entry (row, row)
    threadgroup_barrier(mem_flags::mem_threadgroup);          // V tile, P and alpha visible

    // O = diag(alpha) O + P·V
    simdgroup_float8x8 dm;
    simdgroup_load(dm, alpha_s + sg * 64, ulong(8));
    simdgroup_float8x8 pm[FL_KEYS / 8];
    for (int c = 0; c < num_kmats; ++c)
      simdgroup_load(pm[c], s_s, ulong(BC), ulong2(ulong(c * 8), ulong(sg * 8)));
    for (int n = 0; n < num_dmats; ++n) {
      simdgroup_multiply(om[n], dm, om[n]);
      for (int c = 0; c < num_kmats; ++c) {
        simdgroup_float8x8 vm;
        simdgroup_load(vm, kv_s, ulong(DP), ulong2(ulong(n * 8), ulong(c * 8)));
        simdgroup_multiply_accumulate(om[n], pm[c], vm, om[n]);
      }
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);  // before the next tile overwrites the buffers
  }

  // out = O / l, FL_STAGE_DIMS columns at a time through kv_s.
  if (seg == 0) l_s[my_row] = l;
  for (int c0 = 0; c0 < DP; c0 += FL_STAGE_DIMS) {
    const int cw = min(FL_STAGE_DIMS, DP - c0);
    for (int k = 0; k < cw / 8; ++k) {
      simdgroup_store(om[c0 / 8 + k], kv_s, ulong(cw), ulong2(ulong(k * 8), ulong(sg * 8)));
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);
    for (int i = int(tid); i < FL_ROWS * cw; i += FL_THREADS) {
      const int r = i / cw, d = c0 + i % cw;
      int t, h;
      if (!flash_row(args, ft, r, t, h) || d >= D) continue;
      out[(long(t) * args.base.num_heads + h) * D + d] = l_s[r] > 0.0f ? kv_s[i] / l_s[r] : 0.0f;
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);
  }
}

template [[host_name("attention_flash_prefill_f32")]] kernel void
attention_flash_prefill<float, false, false>(
    constant AttentionFlashKArgs& args [[buffer(0)]], device float* out [[buffer(1)]],
    device const float* q [[buffer(2)]], device const float* k_cache [[buffer(3)]],
    device const float* v_cache [[buffer(4)]], device const int* block_tables [[buffer(5)]],
    device const int* query_start [[buffer(6)]], device const int* seq_lens [[buffer(7)]],
    device const int* positions [[buffer(8)]], device const int* generated_seqs [[buffer(9)]],
    uint2 tg [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]],
    uint sg [[simdgroup_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]]);
template [[host_name("attention_flash_prefill_softcap_f32")]] kernel void
attention_flash_prefill<float, false, true>(
    constant AttentionFlashKArgs& args [[buffer(0)]], device float* out [[buffer(1)]],
    device const float* q [[buffer(2)]], device const float* k_cache [[buffer(3)]],
    device const float* v_cache [[buffer(4)]], device const int* block_tables [[buffer(5)]],
    device const int* query_start [[buffer(6)]], device const int* seq_lens [[buffer(7)]],
    device const int* positions [[buffer(8)]], device const int* generated_seqs [[buffer(9)]],
    uint2 tg [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]],
    uint sg [[simdgroup_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]]);
template [[host_name("attention_flash_prefill_window_f32")]] kernel void
attention_flash_prefill<float, true, false>(
    constant AttentionFlashKArgs& args [[buffer(0)]], device float* out [[buffer(1)]],
    device const float* q [[buffer(2)]], device const float* k_cache [[buffer(3)]],
    device const float* v_cache [[buffer(4)]], device const int* block_tables [[buffer(5)]],
    device const int* query_start [[buffer(6)]], device const int* seq_lens [[buffer(7)]],
    device const int* positions [[buffer(8)]], device const int* generated_seqs [[buffer(9)]],
    uint2 tg [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]],
    uint sg [[simdgroup_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]]);
template [[host_name("attention_flash_prefill_window_softcap_f32")]] kernel void
attention_flash_prefill<float, true, true>(
    constant AttentionFlashKArgs& args [[buffer(0)]], device float* out [[buffer(1)]],
    device const float* q [[buffer(2)]], device const float* k_cache [[buffer(3)]],
    device const float* v_cache [[buffer(4)]], device const int* block_tables [[buffer(5)]],
    device const int* query_start [[buffer(6)]], device const int* seq_lens [[buffer(7)]],
    device const int* positions [[buffer(8)]], device const int* generated_seqs [[buffer(9)]],
    uint2 tg [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]],
    uint sg [[simdgroup_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]]);
template [[host_name("attention_flash_prefill_f16")]] kernel void
attention_flash_prefill<half, false, false>(
    constant AttentionFlashKArgs& args [[buffer(0)]], device float* out [[buffer(1)]],
    device const float* q [[buffer(2)]], device const half* k_cache [[buffer(3)]],
    device const half* v_cache [[buffer(4)]], device const int* block_tables [[buffer(5)]],
    device const int* query_start [[buffer(6)]], device const int* seq_lens [[buffer(7)]],
    device const int* positions [[buffer(8)]], device const int* generated_seqs [[buffer(9)]],
    uint2 tg [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]],
    uint sg [[simdgroup_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]]);
template [[host_name("attention_flash_prefill_softcap_f16")]] kernel void
attention_flash_prefill<half, false, true>(
    constant AttentionFlashKArgs& args [[buffer(0)]], device float* out [[buffer(1)]],
    device const float* q [[buffer(2)]], device const half* k_cache [[buffer(3)]],
    device const half* v_cache [[buffer(4)]], device const int* block_tables [[buffer(5)]],
    device const int* query_start [[buffer(6)]], device const int* seq_lens [[buffer(7)]],
    device const int* positions [[buffer(8)]], device const int* generated_seqs [[buffer(9)]],
    uint2 tg [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]],
    uint sg [[simdgroup_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]]);
template [[host_name("attention_flash_prefill_window_f16")]] kernel void
attention_flash_prefill<half, true, false>(
    constant AttentionFlashKArgs& args [[buffer(0)]], device float* out [[buffer(1)]],
    device const float* q [[buffer(2)]], device const half* k_cache [[buffer(3)]],
    device const half* v_cache [[buffer(4)]], device const int* block_tables [[buffer(5)]],
    device const int* query_start [[buffer(6)]], device const int* seq_lens [[buffer(7)]],
    device const int* positions [[buffer(8)]], device const int* generated_seqs [[buffer(9)]],
    uint2 tg [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]],
    uint sg [[simdgroup_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]]);
template [[host_name("attention_flash_prefill_window_softcap_f16")]] kernel void
attention_flash_prefill<half, true, true>(
    constant AttentionFlashKArgs& args [[buffer(0)]], device float* out [[buffer(1)]],
    device const float* q [[buffer(2)]], device const half* k_cache [[buffer(3)]],
    device const half* v_cache [[buffer(4)]], device const int* block_tables [[buffer(5)]],
    device const int* query_start [[buffer(6)]], device const int* seq_lens [[buffer(7)]],
    device const int* positions [[buffer(8)]], device const int* generated_seqs [[buffer(9)]],
    uint2 tg [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]],
    uint sg [[simdgroup_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]]);

template [[host_name("attention_flash_prefill_q8_0")]] kernel void
attention_flash_prefill<BlockQ8_0, false, false>(
    constant AttentionFlashKArgs& args [[buffer(0)]], device float* out [[buffer(1)]],
    device const float* q [[buffer(2)]], device const BlockQ8_0* k_cache [[buffer(3)]],
    device const BlockQ8_0* v_cache [[buffer(4)]], device const int* block_tables [[buffer(5)]],
    device const int* query_start [[buffer(6)]], device const int* seq_lens [[buffer(7)]],
    device const int* positions [[buffer(8)]], device const int* generated_seqs [[buffer(9)]],
    uint2 tg [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]],
    uint sg [[simdgroup_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]]);
template [[host_name("attention_flash_prefill_softcap_q8_0")]] kernel void
attention_flash_prefill<BlockQ8_0, false, true>(
    constant AttentionFlashKArgs& args [[buffer(0)]], device float* out [[buffer(1)]],
    device const float* q [[buffer(2)]], device const BlockQ8_0* k_cache [[buffer(3)]],
    device const BlockQ8_0* v_cache [[buffer(4)]], device const int* block_tables [[buffer(5)]],
    device const int* query_start [[buffer(6)]], device const int* seq_lens [[buffer(7)]],
    device const int* positions [[buffer(8)]], device const int* generated_seqs [[buffer(9)]],
    uint2 tg [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]],
    uint sg [[simdgroup_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]]);
template [[host_name("attention_flash_prefill_window_q8_0")]] kernel void
attention_flash_prefill<BlockQ8_0, true, false>(
    constant AttentionFlashKArgs& args [[buffer(0)]], device float* out [[buffer(1)]],
    device const float* q [[buffer(2)]], device const BlockQ8_0* k_cache [[buffer(3)]],
    device const BlockQ8_0* v_cache [[buffer(4)]], device const int* block_tables [[buffer(5)]],
    device const int* query_start [[buffer(6)]], device const int* seq_lens [[buffer(7)]],
    device const int* positions [[buffer(8)]], device const int* generated_seqs [[buffer(9)]],
    uint2 tg [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]],
    uint sg [[simdgroup_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]]);
template [[host_name("attention_flash_prefill_window_softcap_q8_0")]] kernel void
attention_flash_prefill<BlockQ8_0, true, true>(
    constant AttentionFlashKArgs& args [[buffer(0)]], device float* out [[buffer(1)]],
    device const float* q [[buffer(2)]], device const BlockQ8_0* k_cache [[buffer(3)]],
    device const BlockQ8_0* v_cache [[buffer(4)]], device const int* block_tables [[buffer(5)]],
    device const int* query_start [[buffer(6)]], device const int* seq_lens [[buffer(7)]],
    device const int* positions [[buffer(8)]], device const int* generated_seqs [[buffer(9)]],
    uint2 tg [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]],
    uint sg [[simdgroup_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]]);
template [[host_name("attention_flash_prefill_q4_0")]] kernel void
attention_flash_prefill<BlockQ4_0, false, false>(
    constant AttentionFlashKArgs& args [[buffer(0)]], device float* out [[buffer(1)]],
    device const float* q [[buffer(2)]], device const BlockQ4_0* k_cache [[buffer(3)]],
    device const BlockQ4_0* v_cache [[buffer(4)]], device const int* block_tables [[buffer(5)]],
    device const int* query_start [[buffer(6)]], device const int* seq_lens [[buffer(7)]],
    device const int* positions [[buffer(8)]], device const int* generated_seqs [[buffer(9)]],
    uint2 tg [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]],
    uint sg [[simdgroup_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]]);
template [[host_name("attention_flash_prefill_softcap_q4_0")]] kernel void
attention_flash_prefill<BlockQ4_0, false, true>(
    constant AttentionFlashKArgs& args [[buffer(0)]], device float* out [[buffer(1)]],
    device const float* q [[buffer(2)]], device const BlockQ4_0* k_cache [[buffer(3)]],
    device const BlockQ4_0* v_cache [[buffer(4)]], device const int* block_tables [[buffer(5)]],
    device const int* query_start [[buffer(6)]], device const int* seq_lens [[buffer(7)]],
    device const int* positions [[buffer(8)]], device const int* generated_seqs [[buffer(9)]],
    uint2 tg [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]],
    uint sg [[simdgroup_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]]);
template [[host_name("attention_flash_prefill_window_q4_0")]] kernel void
attention_flash_prefill<BlockQ4_0, true, false>(
    constant AttentionFlashKArgs& args [[buffer(0)]], device float* out [[buffer(1)]],
    device const float* q [[buffer(2)]], device const BlockQ4_0* k_cache [[buffer(3)]],
    device const BlockQ4_0* v_cache [[buffer(4)]], device const int* block_tables [[buffer(5)]],
    device const int* query_start [[buffer(6)]], device const int* seq_lens [[buffer(7)]],
    device const int* positions [[buffer(8)]], device const int* generated_seqs [[buffer(9)]],
    uint2 tg [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]],
    uint sg [[simdgroup_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]]);
template [[host_name("attention_flash_prefill_window_softcap_q4_0")]] kernel void
attention_flash_prefill<BlockQ4_0, true, true>(
    constant AttentionFlashKArgs& args [[buffer(0)]], device float* out [[buffer(1)]],
    device const float* q [[buffer(2)]], device const BlockQ4_0* k_cache [[buffer(3)]],
    device const BlockQ4_0* v_cache [[buffer(4)]], device const int* block_tables [[buffer(5)]],
    device const int* query_start [[buffer(6)]], device const int* seq_lens [[buffer(7)]],
    device const int* positions [[buffer(8)]], device const int* generated_seqs [[buffer(9)]],
    uint2 tg [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]],
    uint sg [[simdgroup_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]]);
template [[host_name("attention_flash_prefill_q4_1")]] kernel void
attention_flash_prefill<BlockQ4_1, false, false>(
    constant AttentionFlashKArgs& args [[buffer(0)]], device float* out [[buffer(1)]],
    device const float* q [[buffer(2)]], device const BlockQ4_1* k_cache [[buffer(3)]],
    device const BlockQ4_1* v_cache [[buffer(4)]], device const int* block_tables [[buffer(5)]],
    device const int* query_start [[buffer(6)]], device const int* seq_lens [[buffer(7)]],
    device const int* positions [[buffer(8)]], device const int* generated_seqs [[buffer(9)]],
    uint2 tg [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]],
    uint sg [[simdgroup_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]]);
template [[host_name("attention_flash_prefill_softcap_q4_1")]] kernel void
attention_flash_prefill<BlockQ4_1, false, true>(
    constant AttentionFlashKArgs& args [[buffer(0)]], device float* out [[buffer(1)]],
    device const float* q [[buffer(2)]], device const BlockQ4_1* k_cache [[buffer(3)]],
    device const BlockQ4_1* v_cache [[buffer(4)]], device const int* block_tables [[buffer(5)]],
    device const int* query_start [[buffer(6)]], device const int* seq_lens [[buffer(7)]],
    device const int* positions [[buffer(8)]], device const int* generated_seqs [[buffer(9)]],
    uint2 tg [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]],
    uint sg [[simdgroup_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]]);
template [[host_name("attention_flash_prefill_window_q4_1")]] kernel void
attention_flash_prefill<BlockQ4_1, true, false>(
    constant AttentionFlashKArgs& args [[buffer(0)]], device float* out [[buffer(1)]],
    device const float* q [[buffer(2)]], device const BlockQ4_1* k_cache [[buffer(3)]],
    device const BlockQ4_1* v_cache [[buffer(4)]], device const int* block_tables [[buffer(5)]],
    device const int* query_start [[buffer(6)]], device const int* seq_lens [[buffer(7)]],
    device const int* positions [[buffer(8)]], device const int* generated_seqs [[buffer(9)]],
    uint2 tg [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]],
    uint sg [[simdgroup_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]]);
template [[host_name("attention_flash_prefill_window_softcap_q4_1")]] kernel void
attention_flash_prefill<BlockQ4_1, true, true>(
    constant AttentionFlashKArgs& args [[buffer(0)]], device float* out [[buffer(1)]],
    device const float* q [[buffer(2)]], device const BlockQ4_1* k_cache [[buffer(3)]],
    device const BlockQ4_1* v_cache [[buffer(4)]], device const int* block_tables [[buffer(5)]],
    device const int* query_start [[buffer(6)]], device const int* seq_lens [[buffer(7)]],
    device const int* positions [[buffer(8)]], device const int* generated_seqs [[buffer(9)]],
    uint2 tg [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]],
    uint sg [[simdgroup_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]]);
