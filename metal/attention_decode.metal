// Fused decode attention over the paged KV cache, for sequences with few query tokens.
// One threadgroup per (decode token, kv head x head chunk, key split): up to
// LONGBOW_ATTN_DECODE_HEADS query heads sharing one kv head (grouped-query attention), so every
// K/V row is read once for all of them. LONGBOW_ATTN_DECODE_THREADS threads = 4 SIMD groups; SIMD
// group sg takes the 32-key chunks sg, sg + 4, ... of the split with one key per lane for Q·K and
// one head_dim slice per lane for P·V (d = lane + 32 i).
//
//  attention_decode_fused_<cache> (stage 2): one pass over K and V. Each SIMD group keeps per head
//    a running max m, sum l and a rescaled accumulator O (online softmax, Milakov & Gimelshein
//    2018; the FlashAttention-2 recurrence): chunk scores -> simd_max -> m' -> p = exp(s - m'),
//    l = l e^(m - m') + simd_sum p, O = O e^(m - m') + P·V.
//  attention_decode_stage1_<cache> (stage 1, kept for comparison): pass 1 over K writes the scores
//    to a scratch row and keeps the online (m, l); pass 2 over V with p = exp(s - M) of the final
//    max.
//  Both end with the SIMD groups' states merged through threadgroup memory: M = max m_sg,
//  L = sum l_sg e^(m_sg - M), O = sum O_sg e^(m_sg - M) (one short pass per SIMD group).
//  attention_decode_merge_f32: flash-decoding (Dao et al. 2023) — when a token's keys were split
//    across threadgroups, each wrote (O, m, l) to a partial; this combines them the same way.
// Sliding window: a token's key range (and its splits) starts at its window, so no key before the
// window is read and no mask is needed. Logit soft-capping: the `_softcap` instantiations
// (SOFTCAP = true) cap each score after its dot product; the others have no trace of it.
// Threadgroup memory: ~21 KiB (queries, per-SIMD-group probabilities and rows, merged O).
#include <metal_stdlib>
#include "attention_paged.h"
#include "kv_elems.h"
using namespace metal;

#define DEC_SIMDS (LONGBOW_ATTN_DECODE_THREADS / 32)
#define DEC_HEADS LONGBOW_ATTN_DECODE_HEADS
#define DEC_DIM LONGBOW_ATTN_MAX_HEAD_DIM
#define DEC_SLICES (LONGBOW_ATTN_MAX_HEAD_DIM / 32)  // head_dim elements per lane

// What one decode threadgroup computes.
struct DecodeItem {
  int t, s, kvh;       // token, sequence, kv head
  int h0, nh;          // first query head (global) and number of heads in this chunk
  int k_begin, k_end;  // key range of this split
  int splits;          // key splits of this token (1: write out directly)
  int partial;         // partial slot of this split (when splits > 1)
};

// Maps threadgroup (x, y, z) to its item; false when it has nothing to do (uniform).
inline bool decode_item(constant AttentionDecodeKArgs& args, device const int* query_start,
                        device const int* generated_seqs, device const int* seq_lens,
                        device const int* positions, uint3 tg, thread DecodeItem& it) {
  if (!attn_find_decode_token(args.base, query_start, generated_seqs, args.select, int(tg.x), it.t,
                              it.s))
    return false;
  const int group = args.base.num_heads / args.base.num_kv_heads;
  it.kvh = int(tg.y) / args.num_head_chunks;
  const int first = (int(tg.y) % args.num_head_chunks) * args.head_chunk;  // within the group
  it.h0 = it.kvh * group + first;
  it.nh = min(args.head_chunk, group - first);
  const int keys = attn_keys_of(args.base, seq_lens, positions, it.s, it.t);
  const int first_key = attn_first_key(args.base, positions, it.t, keys);  // window start (0: none)
  int chunk = 0;
  it.splits = attn_key_splits(keys - first_key, args.num_splits, args.base.block_size, chunk);
  if (int(tg.z) >= it.splits) return false;
  it.k_begin = first_key + int(tg.z) * chunk;
  it.k_end = it.splits > 1 ? min(keys, it.k_begin + chunk) : keys;
  it.partial = (int(tg.x) * int(args.num_head_chunks * args.base.num_kv_heads) + int(tg.y)) *
                   args.num_splits +
               int(tg.z);
  return true;
}

// q_s (nh, head_dim) = q * scale; o_s (nh, head_dim) = 0. The caller barriers.
inline void decode_load_q(constant AttentionKArgs& a, device const float* q,
                          thread const DecodeItem& it, threadgroup float* q_s,
                          threadgroup float* o_s, uint tid) {
  const int D = a.head_dim;
  device const float* src = q + (long(it.t) * a.num_heads + it.h0) * D;  // (nh, D) contiguous heads
  for (int i = int(tid); i < it.nh * D; i += LONGBOW_ATTN_DECODE_THREADS) {
    q_s[i] = src[i] * a.scale;
    o_s[i] = 0.0f;
  }
}

// Scores of this lane's key (cache row `row`, -1: masked) for the nh heads; soft-capped when
// SOFTCAP.
template <typename C, bool SOFTCAP>
inline void decode_scores(constant AttentionKArgs& a, device const C* k_cache,
                          threadgroup const float* q_s, int nh, int row, thread float* sc) {
  const int D = a.head_dim;
  for (int g = 0; g < DEC_HEADS; ++g) sc[g] = row >= 0 ? 0.0f : -INFINITY;
  if (row < 0) return;
  for (int d = 0; d < D; ++d) {
    const float kd = kv_elem(k_cache, long(row), D, d);
    for (int g = 0; g < nh; ++g) sc[g] += q_s[g * D + d] * kd;
  }
  if (SOFTCAP) {
    for (int g = 0; g < nh; ++g) sc[g] = attn_softcap(sc[g], a.logit_softcap);
  }
}

// acc[g][i] += sum over the chunk's nk keys of p_s[g][key] * v_key[lane + 32 i]. p_s and rows
// were written by this SIMD group; the caller put a simdgroup_barrier in between.
template <typename C>
inline void decode_values(constant AttentionKArgs& a, device const C* v_cache,
                          threadgroup const float* p_s, threadgroup const int* row_s, int nh,
                          int nk, uint lane, thread float* acc) {
  const int D = a.head_dim;
  for (int jj = 0; jj < nk; ++jj) {
    const int row = row_s[jj];  // uniform in the SIMD group
    if (row < 0) continue;
    for (int i = 0; i < DEC_SLICES; ++i) {
      const int d = int(lane) + 32 * i;
      if (d >= D) break;
      const float vd = kv_elem(v_cache, long(row), D, d);
      for (int g = 0; g < nh; ++g) acc[g * DEC_SLICES + i] += p_s[g * 32 + jj] * vd;
    }
  }
}

// Merges the SIMD groups' (m, l, O) (ml_s written, barrier passed) and writes the result: out =
// O / L, or (O, M, L) to the item's partial slot. `rescale`: the SIMD groups' O are relative to
// their own m (stage 2) rather than to M (stage 1).
inline void decode_finish(constant AttentionDecodeKArgs& args, thread const DecodeItem& it,
                          thread const float* m, thread const float* acc, bool rescale,
                          threadgroup const float* ml_s, threadgroup float* o_s, device float* out,
                          device float* partials, uint tid, uint sg, uint lane) {
  const int D = args.base.head_dim;
  float f[DEC_HEADS];
  for (int g = 0; g < it.nh; ++g) {
    float M = -INFINITY;
    for (int k = 0; k < DEC_SIMDS; ++k) M = max(M, ml_s[(k * DEC_HEADS + g) * 2]);
    f[g] = !rescale ? 1.0f : (m[g] == -INFINITY ? 0.0f : exp(m[g] - M));
  }
  for (int k = 0; k < DEC_SIMDS; ++k) {  // one SIMD group at a time adds its O into o_s
    if (int(sg) == k) {
      for (int g = 0; g < it.nh; ++g) {
        for (int i = 0; i < DEC_SLICES; ++i) {
          const int d = int(lane) + 32 * i;
          if (d >= D) break;
          o_s[g * D + d] += acc[g * DEC_SLICES + i] * f[g];
        }
      }
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);
  }
  for (int i = int(tid); i < it.nh * D; i += LONGBOW_ATTN_DECODE_THREADS) {
    const int g = i / D, d = i % D;
    float M = -INFINITY, L = 0.0f;
    for (int k = 0; k < DEC_SIMDS; ++k) M = max(M, ml_s[(k * DEC_HEADS + g) * 2]);
    for (int k = 0; k < DEC_SIMDS; ++k) {
      const float mk = ml_s[(k * DEC_HEADS + g) * 2], lk = ml_s[(k * DEC_HEADS + g) * 2 + 1];
      if (mk != -INFINITY) L += lk * exp(mk - M);
    }
    if (it.splits > 1) {
      device float* p = partials + (long(it.partial) * args.head_chunk + g) * (D + 2);  // (D + 2,)
      p[d] = o_s[i];
      if (d == 0) {
        p[D] = M;
        p[D + 1] = L;
      }
    } else {
      out[(long(it.t) * args.base.num_heads + it.h0 + g) * D + d] = L > 0.0f ? o_s[i] / L : 0.0f;
    }
  }
}

template <typename C, bool SOFTCAP>
kernel void attention_decode_fused(
    constant AttentionDecodeKArgs& args [[buffer(0)]],
    device float* out [[buffer(1)]],  // (num_tokens, num_heads, head_dim)
    device float* partials
    [[buffer(2)]],  // (decode tokens, kv heads * head chunks, num_splits, head_chunk, head_dim + 2)
    device const float* q [[buffer(3)]],    // (num_tokens, num_heads, head_dim)
    device const C* k_cache [[buffer(4)]],  // (num_blocks, block_size, num_kv_heads, head_dim)
    device const C* v_cache [[buffer(5)]],  // (num_blocks, block_size, num_kv_heads, head_dim)
    device const int* block_tables [[buffer(6)]],     // (num_seqs, max_blocks_per_seq)
    device const int* query_start [[buffer(7)]],      // (num_seqs + 1,)
    device const int* seq_lens [[buffer(8)]],         // (num_seqs,)
    device const int* positions [[buffer(9)]],        // (num_tokens,)
    device const int* generated_seqs [[buffer(10)]],  // (num_seqs,) 1 = generated tokens
    uint3 tg [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]],
    uint sg [[simdgroup_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]]) {
  threadgroup float q_s[DEC_HEADS * DEC_DIM];  // (nh, head_dim) q * scale
  threadgroup float o_s[DEC_HEADS * DEC_DIM];  // (nh, head_dim) merged O
  threadgroup float
      p_s[DEC_SIMDS * DEC_HEADS * 32];    // per SIMD group (heads, 32 keys) probabilities
  threadgroup int row_s[DEC_SIMDS * 32];  // per SIMD group: cache row of each lane's key
  threadgroup float ml_s[DEC_SIMDS * DEC_HEADS * 2];  // per SIMD group (heads, (m, l))
  DecodeItem it;
  if (!decode_item(args, query_start, generated_seqs, seq_lens, positions, tg, it))
    return;  // whole threadgroup, no barrier yet
  decode_load_q(args.base, q, it, q_s, o_s, tid);
  threadgroup_barrier(mem_flags::mem_threadgroup);

  float m[DEC_HEADS], l[DEC_HEADS], acc[DEC_HEADS * DEC_SLICES];
  for (int g = 0; g < DEC_HEADS; ++g) m[g] = -INFINITY, l[g] = 0.0f;
  for (int i = 0; i < DEC_HEADS * DEC_SLICES; ++i) acc[i] = 0.0f;
  threadgroup float* my_p = p_s + sg * DEC_HEADS * 32;
  threadgroup int* my_rows = row_s + sg * 32;
  const int num_chunks = (it.k_end - it.k_begin + 31) / 32;
  for (int c = int(sg); c < num_chunks; c += DEC_SIMDS) {  // uniform in the SIMD group
    const int j0 = it.k_begin + c * 32, j = j0 + int(lane);
    const int row = j < it.k_end ? attn_cache_row(args.base, block_tables, it.s, it.kvh, j) : -1;
    float sc[DEC_HEADS];
    decode_scores<C, SOFTCAP>(args.base, k_cache, q_s, it.nh, row, sc);
    my_rows[lane] = row;
    for (int g = 0; g < it.nh; ++g) {
      const float m_new = max(m[g], simd_max(sc[g]));
      const float p = sc[g] == -INFINITY ? 0.0f : exp(sc[g] - m_new);
      const float alpha = m[g] == -INFINITY ? 0.0f : exp(m[g] - m_new);
      l[g] = l[g] * alpha + simd_sum(p);
      m[g] = m_new;
      for (int i = 0; i < DEC_SLICES; ++i) acc[g * DEC_SLICES + i] *= alpha;
      my_p[g * 32 + lane] = p;
    }
    simdgroup_barrier(mem_flags::mem_threadgroup);
    decode_values(args.base, v_cache, my_p, my_rows, it.nh, min(32, it.k_end - j0), lane, acc);
    simdgroup_barrier(mem_flags::mem_threadgroup);  // before the next chunk overwrites my_p
  }
  if (lane == 0) {
    for (int g = 0; g < it.nh; ++g) {
      ml_s[(sg * DEC_HEADS + g) * 2] = m[g];
      ml_s[(sg * DEC_HEADS + g) * 2 + 1] = l[g];
    }
  }
  threadgroup_barrier(mem_flags::mem_threadgroup);
  decode_finish(args, it, m, acc, true, ml_s, o_s, out, partials, tid, sg, lane);
}

template <typename C, bool SOFTCAP>
kernel void attention_decode_stage1(
    constant AttentionDecodeKArgs& args [[buffer(0)]],
    device float* out [[buffer(1)]],  // (num_tokens, num_heads, head_dim)
    device float* partials
    [[buffer(2)]],  // (decode tokens, kv heads * head chunks, num_splits, head_chunk, head_dim + 2)
    device float* scores [[buffer(3)]],     // (decode tokens, num_heads, ctx_cap)
    device const float* q [[buffer(4)]],    // (num_tokens, num_heads, head_dim)
    device const C* k_cache [[buffer(5)]],  // (num_blocks, block_size, num_kv_heads, head_dim)
    device const C* v_cache [[buffer(6)]],  // (num_blocks, block_size, num_kv_heads, head_dim)
    device const int* block_tables [[buffer(7)]],     // (num_seqs, max_blocks_per_seq)
    device const int* query_start [[buffer(8)]],      // (num_seqs + 1,)
    device const int* seq_lens [[buffer(9)]],         // (num_seqs,)
    device const int* positions [[buffer(10)]],       // (num_tokens,)
    device const int* generated_seqs [[buffer(11)]],  // (num_seqs,) 1 = generated tokens
    uint3 tg [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]],
    uint sg [[simdgroup_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]]) {
  threadgroup float q_s[DEC_HEADS * DEC_DIM];  // (nh, head_dim) q * scale
  threadgroup float o_s[DEC_HEADS * DEC_DIM];  // (nh, head_dim) merged O
  threadgroup float
      p_s[DEC_SIMDS * DEC_HEADS * 32];    // per SIMD group (heads, 32 keys) probabilities
  threadgroup int row_s[DEC_SIMDS * 32];  // per SIMD group: cache row of each lane's key
  threadgroup float ml_s[DEC_SIMDS * DEC_HEADS * 2];  // per SIMD group (heads, (m, l))
  DecodeItem it;
  if (!decode_item(args, query_start, generated_seqs, seq_lens, positions, tg, it))
    return;  // whole threadgroup, no barrier yet
  decode_load_q(args.base, q, it, q_s, o_s, tid);
  threadgroup_barrier(mem_flags::mem_threadgroup);

  // Pass 1 over K: scores to the scratch row (this lane's keys), online (m, l) per head.
  device float* srow =
      scores + (long(tg.x) * args.base.num_heads + it.h0) * args.base.ctx_cap;  // (nh, ctx_cap)
  float m[DEC_HEADS], l[DEC_HEADS], acc[DEC_HEADS * DEC_SLICES];
  for (int g = 0; g < DEC_HEADS; ++g) m[g] = -INFINITY, l[g] = 0.0f;
  for (int i = 0; i < DEC_HEADS * DEC_SLICES; ++i) acc[i] = 0.0f;
  const int num_chunks = (it.k_end - it.k_begin + 31) / 32;
  for (int c = int(sg); c < num_chunks; c += DEC_SIMDS) {
    const int j = it.k_begin + c * 32 + int(lane);
    const int row = j < it.k_end ? attn_cache_row(args.base, block_tables, it.s, it.kvh, j) : -1;
    float sc[DEC_HEADS];
    decode_scores<C, SOFTCAP>(args.base, k_cache, q_s, it.nh, row, sc);
    for (int g = 0; g < it.nh; ++g) {
      if (j < it.k_end) srow[long(g) * args.base.ctx_cap + j] = sc[g];
      const float m_new = max(m[g], simd_max(sc[g]));
      const float p = sc[g] == -INFINITY ? 0.0f : exp(sc[g] - m_new);
      l[g] = l[g] * (m[g] == -INFINITY ? 0.0f : exp(m[g] - m_new)) + simd_sum(p);
      m[g] = m_new;
    }
  }
  if (lane == 0) {
    for (int g = 0; g < it.nh; ++g) {
      ml_s[(sg * DEC_HEADS + g) * 2] = m[g];
      ml_s[(sg * DEC_HEADS + g) * 2 + 1] = l[g];
    }
  }
  threadgroup_barrier(mem_flags::mem_threadgroup);
  float M[DEC_HEADS];
  for (int g = 0; g < it.nh; ++g) {
    M[g] = -INFINITY;
    for (int k = 0; k < DEC_SIMDS; ++k) M[g] = max(M[g], ml_s[(k * DEC_HEADS + g) * 2]);
  }

  // Pass 2 over V: p = exp(s - M) of the final max, from the scores this lane wrote.
  threadgroup float* my_p = p_s + sg * DEC_HEADS * 32;
  threadgroup int* my_rows = row_s + sg * 32;
  for (int c = int(sg); c < num_chunks; c += DEC_SIMDS) {
    const int j0 = it.k_begin + c * 32, j = j0 + int(lane);
    my_rows[lane] = j < it.k_end ? attn_cache_row(args.base, block_tables, it.s, it.kvh, j) : -1;
    for (int g = 0; g < it.nh; ++g) {
      const float s = j < it.k_end ? srow[long(g) * args.base.ctx_cap + j] : -INFINITY;
      my_p[g * 32 + lane] = s == -INFINITY ? 0.0f : exp(s - M[g]);
    }
    simdgroup_barrier(mem_flags::mem_threadgroup);
    decode_values(args.base, v_cache, my_p, my_rows, it.nh, min(32, it.k_end - j0), lane, acc);
    simdgroup_barrier(mem_flags::mem_threadgroup);
  }
  decode_finish(args, it, m, acc, false, ml_s, o_s, out, partials, tid, sg, lane);
}

kernel void attention_decode_merge_f32(
    constant AttentionDecodeKArgs& args [[buffer(0)]],
    device float* out [[buffer(1)]],  // (num_tokens, num_heads, head_dim)
    device const float* partials
    [[buffer(2)]],  // (decode tokens, kv heads * head chunks, num_splits, head_chunk, head_dim + 2)
    device const int* query_start [[buffer(3)]],     // (num_seqs + 1,)
    device const int* seq_lens [[buffer(4)]],        // (num_seqs,)
    device const int* positions [[buffer(5)]],       // (num_tokens,)
    device const int* generated_seqs [[buffer(6)]],  // (num_seqs,) 1 = generated tokens
    uint3 tg [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]]) {
  DecodeItem it;
  if (!decode_item(args, query_start, generated_seqs, seq_lens, positions, uint3(tg.x, tg.y, 0u),
                   it))
    return;
  if (it.splits <= 1) return;  // the decode kernel wrote out directly; no barriers here
  const int D = args.base.head_dim;
  const long p0 =
      (long(tg.x) * (args.num_head_chunks * args.base.num_kv_heads) + tg.y) * args.num_splits;
  for (int i = int(tid); i < it.nh * D; i += LONGBOW_ATTN_DECODE_THREADS) {
    const int g = i / D, d = i % D;
    float M = -INFINITY;
    for (int k = 0; k < it.splits; ++k)
      M = max(M, partials[((p0 + k) * args.head_chunk + g) * (D + 2) + D]);
    float L = 0.0f, O = 0.0f;
    if (M != -INFINITY) {
      for (int k = 0; k < it.splits; ++k) {
        device const float* p = partials + ((p0 + k) * args.head_chunk + g) * (D + 2);  // (D + 2,)
        if (p[D] == -INFINITY) continue;
        const float w = exp(p[D] - M);
        L += p[D + 1] * w;
        O += p[d] * w;
      }
    }
    out[(long(it.t) * args.base.num_heads + it.h0 + g) * D + d] = L > 0.0f ? O / L : 0.0f;
  }
}

template [[host_name("attention_decode_fused_f32")]] kernel void
attention_decode_fused<float, false>(
    constant AttentionDecodeKArgs& args [[buffer(0)]], device float* out [[buffer(1)]],
    device float* partials [[buffer(2)]], device const float* q [[buffer(3)]],
    device const float* k_cache [[buffer(4)]], device const float* v_cache [[buffer(5)]],
    device const int* block_tables [[buffer(6)]], device const int* query_start [[buffer(7)]],
    device const int* seq_lens [[buffer(8)]], device const int* positions [[buffer(9)]],
    device const int* generated_seqs [[buffer(10)]], uint3 tg [[threadgroup_position_in_grid]],
    uint tid [[thread_index_in_threadgroup]], uint sg [[simdgroup_index_in_threadgroup]],
    uint lane [[thread_index_in_simdgroup]]);
template [[host_name("attention_decode_fused_softcap_f32")]] kernel void
attention_decode_fused<float, true>(
    constant AttentionDecodeKArgs& args [[buffer(0)]], device float* out [[buffer(1)]],
    device float* partials [[buffer(2)]], device const float* q [[buffer(3)]],
    device const float* k_cache [[buffer(4)]], device const float* v_cache [[buffer(5)]],
    device const int* block_tables [[buffer(6)]], device const int* query_start [[buffer(7)]],
    device const int* seq_lens [[buffer(8)]], device const int* positions [[buffer(9)]],
    device const int* generated_seqs [[buffer(10)]], uint3 tg [[threadgroup_position_in_grid]],
    uint tid [[thread_index_in_threadgroup]], uint sg [[simdgroup_index_in_threadgroup]],
    uint lane [[thread_index_in_simdgroup]]);
template [[host_name("attention_decode_stage1_f32")]] kernel void
attention_decode_stage1<float, false>(
    constant AttentionDecodeKArgs& args [[buffer(0)]], device float* out [[buffer(1)]],
    device float* partials [[buffer(2)]], device float* scores [[buffer(3)]],
    device const float* q [[buffer(4)]], device const float* k_cache [[buffer(5)]],
    device const float* v_cache [[buffer(6)]], device const int* block_tables [[buffer(7)]],
    device const int* query_start [[buffer(8)]], device const int* seq_lens [[buffer(9)]],
    device const int* positions [[buffer(10)]], device const int* generated_seqs [[buffer(11)]],
    uint3 tg [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]],
    uint sg [[simdgroup_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]]);
template [[host_name("attention_decode_stage1_softcap_f32")]] kernel void
attention_decode_stage1<float, true>(
    constant AttentionDecodeKArgs& args [[buffer(0)]], device float* out [[buffer(1)]],
    device float* partials [[buffer(2)]], device float* scores [[buffer(3)]],
    device const float* q [[buffer(4)]], device const float* k_cache [[buffer(5)]],
    device const float* v_cache [[buffer(6)]], device const int* block_tables [[buffer(7)]],
    device const int* query_start [[buffer(8)]], device const int* seq_lens [[buffer(9)]],
    device const int* positions [[buffer(10)]], device const int* generated_seqs [[buffer(11)]],
    uint3 tg [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]],
    uint sg [[simdgroup_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]]);
template [[host_name("attention_decode_fused_f16")]] kernel void
attention_decode_fused<half, false>(
    constant AttentionDecodeKArgs& args [[buffer(0)]], device float* out [[buffer(1)]],
    device float* partials [[buffer(2)]], device const float* q [[buffer(3)]],
    device const half* k_cache [[buffer(4)]], device const half* v_cache [[buffer(5)]],
    device const int* block_tables [[buffer(6)]], device const int* query_start [[buffer(7)]],
    device const int* seq_lens [[buffer(8)]], device const int* positions [[buffer(9)]],
    device const int* generated_seqs [[buffer(10)]], uint3 tg [[threadgroup_position_in_grid]],
    uint tid [[thread_index_in_threadgroup]], uint sg [[simdgroup_index_in_threadgroup]],
    uint lane [[thread_index_in_simdgroup]]);
template [[host_name("attention_decode_fused_softcap_f16")]] kernel void
attention_decode_fused<half, true>(
    constant AttentionDecodeKArgs& args [[buffer(0)]], device float* out [[buffer(1)]],
    device float* partials [[buffer(2)]], device const float* q [[buffer(3)]],
    device const half* k_cache [[buffer(4)]], device const half* v_cache [[buffer(5)]],
    device const int* block_tables [[buffer(6)]], device const int* query_start [[buffer(7)]],
    device const int* seq_lens [[buffer(8)]], device const int* positions [[buffer(9)]],
    device const int* generated_seqs [[buffer(10)]], uint3 tg [[threadgroup_position_in_grid]],
    uint tid [[thread_index_in_threadgroup]], uint sg [[simdgroup_index_in_threadgroup]],
    uint lane [[thread_index_in_simdgroup]]);
template [[host_name("attention_decode_stage1_f16")]] kernel void
attention_decode_stage1<half, false>(
    constant AttentionDecodeKArgs& args [[buffer(0)]], device float* out [[buffer(1)]],
    device float* partials [[buffer(2)]], device float* scores [[buffer(3)]],
    device const float* q [[buffer(4)]], device const half* k_cache [[buffer(5)]],
    device const half* v_cache [[buffer(6)]], device const int* block_tables [[buffer(7)]],
    device const int* query_start [[buffer(8)]], device const int* seq_lens [[buffer(9)]],
    device const int* positions [[buffer(10)]], device const int* generated_seqs [[buffer(11)]],
    uint3 tg [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]],
    uint sg [[simdgroup_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]]);
template [[host_name("attention_decode_stage1_softcap_f16")]] kernel void
attention_decode_stage1<half, true>(
    constant AttentionDecodeKArgs& args [[buffer(0)]], device float* out [[buffer(1)]],
    device float* partials [[buffer(2)]], device float* scores [[buffer(3)]],
    device const float* q [[buffer(4)]], device const half* k_cache [[buffer(5)]],
    device const half* v_cache [[buffer(6)]], device const int* block_tables [[buffer(7)]],
    device const int* query_start [[buffer(8)]], device const int* seq_lens [[buffer(9)]],
    device const int* positions [[buffer(10)]], device const int* generated_seqs [[buffer(11)]],
    uint3 tg [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]],
    uint sg [[simdgroup_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]]);

template [[host_name("attention_decode_fused_q8_0")]] kernel void
attention_decode_fused<BlockQ8_0, false>(
    constant AttentionDecodeKArgs& args [[buffer(0)]], device float* out [[buffer(1)]],
    device float* partials [[buffer(2)]], device const float* q [[buffer(3)]],
    device const BlockQ8_0* k_cache [[buffer(4)]], device const BlockQ8_0* v_cache [[buffer(5)]],
    device const int* block_tables [[buffer(6)]], device const int* query_start [[buffer(7)]],
    device const int* seq_lens [[buffer(8)]], device const int* positions [[buffer(9)]],
    device const int* generated_seqs [[buffer(10)]], uint3 tg [[threadgroup_position_in_grid]],
    uint tid [[thread_index_in_threadgroup]], uint sg [[simdgroup_index_in_threadgroup]],
    uint lane [[thread_index_in_simdgroup]]);
template [[host_name("attention_decode_fused_softcap_q8_0")]] kernel void
attention_decode_fused<BlockQ8_0, true>(
    constant AttentionDecodeKArgs& args [[buffer(0)]], device float* out [[buffer(1)]],
    device float* partials [[buffer(2)]], device const float* q [[buffer(3)]],
    device const BlockQ8_0* k_cache [[buffer(4)]], device const BlockQ8_0* v_cache [[buffer(5)]],
    device const int* block_tables [[buffer(6)]], device const int* query_start [[buffer(7)]],
    device const int* seq_lens [[buffer(8)]], device const int* positions [[buffer(9)]],
    device const int* generated_seqs [[buffer(10)]], uint3 tg [[threadgroup_position_in_grid]],
    uint tid [[thread_index_in_threadgroup]], uint sg [[simdgroup_index_in_threadgroup]],
    uint lane [[thread_index_in_simdgroup]]);
template [[host_name("attention_decode_stage1_q8_0")]] kernel void
attention_decode_stage1<BlockQ8_0, false>(
    constant AttentionDecodeKArgs& args [[buffer(0)]], device float* out [[buffer(1)]],
    device float* partials [[buffer(2)]], device float* scores [[buffer(3)]],
    device const float* q [[buffer(4)]], device const BlockQ8_0* k_cache [[buffer(5)]],
    device const BlockQ8_0* v_cache [[buffer(6)]], device const int* block_tables [[buffer(7)]],
    device const int* query_start [[buffer(8)]], device const int* seq_lens [[buffer(9)]],
    device const int* positions [[buffer(10)]], device const int* generated_seqs [[buffer(11)]],
    uint3 tg [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]],
    uint sg [[simdgroup_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]]);
template [[host_name("attention_decode_stage1_softcap_q8_0")]] kernel void
attention_decode_stage1<BlockQ8_0, true>(
    constant AttentionDecodeKArgs& args [[buffer(0)]], device float* out [[buffer(1)]],
    device float* partials [[buffer(2)]], device float* scores [[buffer(3)]],
    device const float* q [[buffer(4)]], device const BlockQ8_0* k_cache [[buffer(5)]],
    device const BlockQ8_0* v_cache [[buffer(6)]], device const int* block_tables [[buffer(7)]],
    device const int* query_start [[buffer(8)]], device const int* seq_lens [[buffer(9)]],
    device const int* positions [[buffer(10)]], device const int* generated_seqs [[buffer(11)]],
    uint3 tg [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]],
    uint sg [[simdgroup_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]]);
template [[host_name("attention_decode_fused_q4_0")]] kernel void
attention_decode_fused<BlockQ4_0, false>(
    constant AttentionDecodeKArgs& args [[buffer(0)]], device float* out [[buffer(1)]],
    device float* partials [[buffer(2)]], device const float* q [[buffer(3)]],
    device const BlockQ4_0* k_cache [[buffer(4)]], device const BlockQ4_0* v_cache [[buffer(5)]],
    device const int* block_tables [[buffer(6)]], device const int* query_start [[buffer(7)]],
    device const int* seq_lens [[buffer(8)]], device const int* positions [[buffer(9)]],
    device const int* generated_seqs [[buffer(10)]], uint3 tg [[threadgroup_position_in_grid]],
    uint tid [[thread_index_in_threadgroup]], uint sg [[simdgroup_index_in_threadgroup]],
    uint lane [[thread_index_in_simdgroup]]);
template [[host_name("attention_decode_fused_softcap_q4_0")]] kernel void
attention_decode_fused<BlockQ4_0, true>(
    constant AttentionDecodeKArgs& args [[buffer(0)]], device float* out [[buffer(1)]],
    device float* partials [[buffer(2)]], device const float* q [[buffer(3)]],
    device const BlockQ4_0* k_cache [[buffer(4)]], device const BlockQ4_0* v_cache [[buffer(5)]],
    device const int* block_tables [[buffer(6)]], device const int* query_start [[buffer(7)]],
    device const int* seq_lens [[buffer(8)]], device const int* positions [[buffer(9)]],
    device const int* generated_seqs [[buffer(10)]], uint3 tg [[threadgroup_position_in_grid]],
    uint tid [[thread_index_in_threadgroup]], uint sg [[simdgroup_index_in_threadgroup]],
    uint lane [[thread_index_in_simdgroup]]);
template [[host_name("attention_decode_stage1_q4_0")]] kernel void
attention_decode_stage1<BlockQ4_0, false>(
    constant AttentionDecodeKArgs& args [[buffer(0)]], device float* out [[buffer(1)]],
    device float* partials [[buffer(2)]], device float* scores [[buffer(3)]],
    device const float* q [[buffer(4)]], device const BlockQ4_0* k_cache [[buffer(5)]],
    device const BlockQ4_0* v_cache [[buffer(6)]], device const int* block_tables [[buffer(7)]],
    device const int* query_start [[buffer(8)]], device const int* seq_lens [[buffer(9)]],
    device const int* positions [[buffer(10)]], device const int* generated_seqs [[buffer(11)]],
    uint3 tg [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]],
    uint sg [[simdgroup_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]]);
template [[host_name("attention_decode_stage1_softcap_q4_0")]] kernel void
attention_decode_stage1<BlockQ4_0, true>(
    constant AttentionDecodeKArgs& args [[buffer(0)]], device float* out [[buffer(1)]],
    device float* partials [[buffer(2)]], device float* scores [[buffer(3)]],
    device const float* q [[buffer(4)]], device const BlockQ4_0* k_cache [[buffer(5)]],
    device const BlockQ4_0* v_cache [[buffer(6)]], device const int* block_tables [[buffer(7)]],
    device const int* query_start [[buffer(8)]], device const int* seq_lens [[buffer(9)]],
    device const int* positions [[buffer(10)]], device const int* generated_seqs [[buffer(11)]],
    uint3 tg [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]],
    uint sg [[simdgroup_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]]);
template [[host_name("attention_decode_fused_q4_1")]] kernel void
attention_decode_fused<BlockQ4_1, false>(
    constant AttentionDecodeKArgs& args [[buffer(0)]], device float* out [[buffer(1)]],
    device float* partials [[buffer(2)]], device const float* q [[buffer(3)]],
    device const BlockQ4_1* k_cache [[buffer(4)]], device const BlockQ4_1* v_cache [[buffer(5)]],
    device const int* block_tables [[buffer(6)]], device const int* query_start [[buffer(7)]],
    device const int* seq_lens [[buffer(8)]], device const int* positions [[buffer(9)]],
    device const int* generated_seqs [[buffer(10)]], uint3 tg [[threadgroup_position_in_grid]],
    uint tid [[thread_index_in_threadgroup]], uint sg [[simdgroup_index_in_threadgroup]],
    uint lane [[thread_index_in_simdgroup]]);
template [[host_name("attention_decode_fused_softcap_q4_1")]] kernel void
attention_decode_fused<BlockQ4_1, true>(
    constant AttentionDecodeKArgs& args [[buffer(0)]], device float* out [[buffer(1)]],
    device float* partials [[buffer(2)]], device const float* q [[buffer(3)]],
    device const BlockQ4_1* k_cache [[buffer(4)]], device const BlockQ4_1* v_cache [[buffer(5)]],
    device const int* block_tables [[buffer(6)]], device const int* query_start [[buffer(7)]],
    device const int* seq_lens [[buffer(8)]], device const int* positions [[buffer(9)]],
    device const int* generated_seqs [[buffer(10)]], uint3 tg [[threadgroup_position_in_grid]],
    uint tid [[thread_index_in_threadgroup]], uint sg [[simdgroup_index_in_threadgroup]],
    uint lane [[thread_index_in_simdgroup]]);
template [[host_name("attention_decode_stage1_q4_1")]] kernel void
attention_decode_stage1<BlockQ4_1, false>(
    constant AttentionDecodeKArgs& args [[buffer(0)]], device float* out [[buffer(1)]],
    device float* partials [[buffer(2)]], device float* scores [[buffer(3)]],
    device const float* q [[buffer(4)]], device const BlockQ4_1* k_cache [[buffer(5)]],
    device const BlockQ4_1* v_cache [[buffer(6)]], device const int* block_tables [[buffer(7)]],
    device const int* query_start [[buffer(8)]], device const int* seq_lens [[buffer(9)]],
    device const int* positions [[buffer(10)]], device const int* generated_seqs [[buffer(11)]],
    uint3 tg [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]],
    uint sg [[simdgroup_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]]);
template [[host_name("attention_decode_stage1_softcap_q4_1")]] kernel void
attention_decode_stage1<BlockQ4_1, true>(
    constant AttentionDecodeKArgs& args [[buffer(0)]], device float* out [[buffer(1)]],
    device float* partials [[buffer(2)]], device float* scores [[buffer(3)]],
    device const float* q [[buffer(4)]], device const BlockQ4_1* k_cache [[buffer(5)]],
    device const BlockQ4_1* v_cache [[buffer(6)]], device const int* block_tables [[buffer(7)]],
    device const int* query_start [[buffer(8)]], device const int* seq_lens [[buffer(9)]],
    device const int* positions [[buffer(10)]], device const int* generated_seqs [[buffer(11)]],
    uint3 tg [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]],
    uint sg [[simdgroup_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]]);
