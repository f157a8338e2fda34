// Paged causal attention, split baseline (the reference the fused variants are checked against):
//  attention_scores_<cache>: s[t, h, j] = scale * q[t, h] . k_j for keys 0..pos[t] of t's sequence
//                            (first..pos[t] with a sliding window; soft-capped when logit_softcap >
//                            0), one threadgroup per (head, token), a SIMD group per key, simd_sum.
//  attention_softmax_f32:    row-wise max-subtracted softmax in place (simd_max / simd_sum).
//  attention_values_<cache>: out[t, h] = sum_j p[t, h, j] v_j, a thread per head_dim element.
// Keys are read through the sequence's block table: slot = table[j / block_size] * block_size +
// j % block_size. Scores live in a scratch (num_tokens * num_heads, ctx_cap) f32.
#include <metal_stdlib>
#include "kargs.h"
#include "kv_elems.h"
using namespace metal;

// The sequence of token t: the last s with query_start[s] <= t.
inline int attention_seq_of(device const int* query_start, int num_seqs, int t) {
  int lo = 0, hi = num_seqs - 1;
  while (lo < hi) {
    int mid = (lo + hi + 1) / 2;
    if (query_start[mid] <= t)
      lo = mid;
    else
      hi = mid - 1;
  }
  return lo;
}

// Keys token t attends to: pos + 1, clamped to the sequence length and the scratch row.
inline int attention_num_keys(constant AttentionKArgs& args, device const int* seq_lens,
                              device const int* positions, int s, int t) {
  return min(min(positions[t] + 1, seq_lens[s]), args.ctx_cap);
}

// First key token t attends to: the start of its sliding window (0 without one), at most n.
inline int attention_first_key(constant AttentionKArgs& args, device const int* positions, int t,
                               int n) {
  return args.sliding_window > 0 ? clamp(positions[t] - args.sliding_window + 1, 0, max(n, 0)) : 0;
}

// Cache row (slot * num_kv_heads + kvh) of key j of sequence s, or -1 when the block id is out of
// range; kv_elem reads its elements.
inline long attention_row(constant AttentionKArgs& args, device const int* block_tables, int s,
                          int kvh, int j) {
  const int blk = block_tables[long(s) * args.max_blocks_per_seq + j / args.block_size];
  if (blk < 0 || blk >= args.num_blocks) return -1;
  const long slot = long(blk) * args.block_size + j % args.block_size;
  return slot * args.num_kv_heads + kvh;
}

template <typename C>
kernel void attention_scores(
    constant AttentionKArgs& args [[buffer(0)]],
    device float* scores [[buffer(1)]],     // (num_tokens * num_heads, ctx_cap)
    device const float* q [[buffer(2)]],    // (num_tokens, num_heads, head_dim)
    device const C* k_cache [[buffer(3)]],  // (num_blocks, block_size, num_kv_heads, head_dim)
    device const int* block_tables [[buffer(4)]],  // (num_seqs, max_blocks_per_seq)
    device const int* query_start [[buffer(5)]],   // (num_seqs + 1,)
    device const int* seq_lens [[buffer(6)]],      // (num_seqs,)
    device const int* positions [[buffer(7)]],     // (num_tokens,)
    uint2 tg [[threadgroup_position_in_grid]], uint sg [[simdgroup_index_in_threadgroup]],
    uint num_sg [[simdgroups_per_threadgroup]], uint lane [[thread_index_in_simdgroup]]) {
  const int h = int(tg.x), t = int(tg.y), D = args.head_dim;
  const int s = attention_seq_of(query_start, args.num_seqs, t);
  const int kvh = h / (args.num_heads / args.num_kv_heads);
  const int n = attention_num_keys(args, seq_lens, positions, s, t);
  const int first = attention_first_key(args, positions, t, n);
  device const float* qv = q + (long(t) * args.num_heads + h) * D;
  device float* srow = scores + (long(t) * args.num_heads + h) * args.ctx_cap;
  for (int j = first + int(sg); j < n; j += int(num_sg)) {
    const long row = attention_row(args, block_tables, s, kvh, j);  // uniform in the SIMD group
    float acc = 0.0f;
    if (row >= 0) {
      for (int d = int(lane); d < D; d += 32) acc += qv[d] * kv_elem(k_cache, row, D, d);
    }
    acc = simd_sum(acc) * args.scale;
    if (args.logit_softcap > 0.0f)
      acc = args.logit_softcap * tanh(acc / args.logit_softcap);  // uniform
    if (lane == 0) srow[j] = row >= 0 ? acc : -INFINITY;
  }
}

kernel void attention_softmax_f32(constant AttentionKArgs& args [[buffer(0)]],
                                  device float* scores
                                  [[buffer(1)]],  // (num_tokens * num_heads, ctx_cap)
                                  device const int* query_start [[buffer(2)]],  // (num_seqs + 1,)
                                  device const int* seq_lens [[buffer(3)]],     // (num_seqs,)
                                  device const int* positions [[buffer(4)]],    // (num_tokens,)
                                  uint2 tg [[threadgroup_position_in_grid]],
                                  uint tid [[thread_index_in_threadgroup]],
                                  uint sg [[simdgroup_index_in_threadgroup]],
                                  uint lane [[thread_index_in_simdgroup]]) {
  threadgroup float part_max[LONGBOW_ROW_THREADS / 32];
  threadgroup float part_sum[LONGBOW_ROW_THREADS / 32];
  const int h = int(tg.x), t = int(tg.y);
  const int s = attention_seq_of(query_start, args.num_seqs, t);
  const int n = attention_num_keys(args, seq_lens, positions, s, t);
  const int first = attention_first_key(args, positions, t, n);
  device float* row = scores + (long(t) * args.num_heads + h) * args.ctx_cap;
  float m = -INFINITY;
  for (int j = first + int(tid); j < n; j += LONGBOW_ROW_THREADS) m = max(m, row[j]);
  m = simd_max(m);
  if (lane == 0) part_max[sg] = m;
  threadgroup_barrier(mem_flags::mem_threadgroup);
  m = -INFINITY;
  for (uint i = 0; i < LONGBOW_ROW_THREADS / 32; ++i) m = max(m, part_max[i]);
  float sum = 0.0f;
  for (int j = first + int(tid); j < n; j += LONGBOW_ROW_THREADS) {
    const float e = row[j] == -INFINITY ? 0.0f : exp(row[j] - m);
    row[j] = e;
    sum += e;
  }
  sum = simd_sum(sum);
  if (lane == 0) part_sum[sg] = sum;
  threadgroup_barrier(mem_flags::mem_threadgroup);
  sum = 0.0f;
  for (uint i = 0; i < LONGBOW_ROW_THREADS / 32; ++i) sum += part_sum[i];
  const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
  for (int j = first + int(tid); j < n; j += LONGBOW_ROW_THREADS)
    row[j] *= inv;  // this thread's own elements
}

template <typename C>
kernel void attention_values(
    constant AttentionKArgs& args [[buffer(0)]],
    device float* out [[buffer(1)]],          // (num_tokens, num_heads, head_dim)
    device const float* probs [[buffer(2)]],  // (num_tokens * num_heads, ctx_cap)
    device const C* v_cache [[buffer(3)]],    // (num_blocks, block_size, num_kv_heads, head_dim)
    device const int* block_tables [[buffer(4)]],  // (num_seqs, max_blocks_per_seq)
    device const int* query_start [[buffer(5)]],   // (num_seqs + 1,)
    device const int* seq_lens [[buffer(6)]],      // (num_seqs,)
    device const int* positions [[buffer(7)]],     // (num_tokens,)
    uint2 tg [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]]) {
  const int h = int(tg.x), t = int(tg.y), D = args.head_dim;
  if (int(tid) >= D) return;  // no barriers in this kernel
  const int s = attention_seq_of(query_start, args.num_seqs, t);
  const int kvh = h / (args.num_heads / args.num_kv_heads);
  const int n = attention_num_keys(args, seq_lens, positions, s, t);
  device const float* p = probs + (long(t) * args.num_heads + h) * args.ctx_cap;
  float acc = 0.0f;
  for (int j = attention_first_key(args, positions, t, n); j < n; ++j) {
    const long row = attention_row(args, block_tables, s, kvh, j);
    if (row >= 0) acc += p[j] * kv_elem(v_cache, row, D, int(tid));
  }
  out[(long(t) * args.num_heads + h) * D + tid] = acc;
}

template [[host_name("attention_scores_f32")]] kernel void attention_scores<float>(
    constant AttentionKArgs& args [[buffer(0)]], device float* scores [[buffer(1)]],
    device const float* q [[buffer(2)]], device const float* k_cache [[buffer(3)]],
    device const int* block_tables [[buffer(4)]], device const int* query_start [[buffer(5)]],
    device const int* seq_lens [[buffer(6)]], device const int* positions [[buffer(7)]],
    uint2 tg [[threadgroup_position_in_grid]], uint sg [[simdgroup_index_in_threadgroup]],
    uint num_sg [[simdgroups_per_threadgroup]], uint lane [[thread_index_in_simdgroup]]);
template [[host_name("attention_values_f32")]] kernel void attention_values<float>(
    constant AttentionKArgs& args [[buffer(0)]], device float* out [[buffer(1)]],
    device const float* probs [[buffer(2)]], device const float* v_cache [[buffer(3)]],
    device const int* block_tables [[buffer(4)]], device const int* query_start [[buffer(5)]],
    device const int* seq_lens [[buffer(6)]], device const int* positions [[buffer(7)]],
    uint2 tg [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]]);

template [[host_name("attention_scores_f16")]] kernel void attention_scores<half>(
    constant AttentionKArgs& args [[buffer(0)]], device float* scores [[buffer(1)]],
    device const float* q [[buffer(2)]], device const half* k_cache [[buffer(3)]],
    device const int* block_tables [[buffer(4)]], device const int* query_start [[buffer(5)]],
    device const int* seq_lens [[buffer(6)]], device const int* positions [[buffer(7)]],
    uint2 tg [[threadgroup_position_in_grid]], uint sg [[simdgroup_index_in_threadgroup]],
    uint num_sg [[simdgroups_per_threadgroup]], uint lane [[thread_index_in_simdgroup]]);
template [[host_name("attention_values_f16")]] kernel void attention_values<half>(
    constant AttentionKArgs& args [[buffer(0)]], device float* out [[buffer(1)]],
    device const float* probs [[buffer(2)]], device const half* v_cache [[buffer(3)]],
    device const int* block_tables [[buffer(4)]], device const int* query_start [[buffer(5)]],
    device const int* seq_lens [[buffer(6)]], device const int* positions [[buffer(7)]],
    uint2 tg [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]]);

template [[host_name("attention_scores_q8_0")]] kernel void attention_scores<BlockQ8_0>(
    constant AttentionKArgs& args [[buffer(0)]], device float* scores [[buffer(1)]],
    device const float* q [[buffer(2)]], device const BlockQ8_0* k_cache [[buffer(3)]],
    device const int* block_tables [[buffer(4)]], device const int* query_start [[buffer(5)]],
    device const int* seq_lens [[buffer(6)]], device const int* positions [[buffer(7)]],
    uint2 tg [[threadgroup_position_in_grid]], uint sg [[simdgroup_index_in_threadgroup]],
    uint num_sg [[simdgroups_per_threadgroup]], uint lane [[thread_index_in_simdgroup]]);
template [[host_name("attention_values_q8_0")]] kernel void attention_values<BlockQ8_0>(
    constant AttentionKArgs& args [[buffer(0)]], device float* out [[buffer(1)]],
    device const float* probs [[buffer(2)]], device const BlockQ8_0* v_cache [[buffer(3)]],
    device const int* block_tables [[buffer(4)]], device const int* query_start [[buffer(5)]],
    device const int* seq_lens [[buffer(6)]], device const int* positions [[buffer(7)]],
    uint2 tg [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]]);
template [[host_name("attention_scores_q4_0")]] kernel void attention_scores<BlockQ4_0>(
    constant AttentionKArgs& args [[buffer(0)]], device float* scores [[buffer(1)]],
    device const float* q [[buffer(2)]], device const BlockQ4_0* k_cache [[buffer(3)]],
    device const int* block_tables [[buffer(4)]], device const int* query_start [[buffer(5)]],
    device const int* seq_lens [[buffer(6)]], device const int* positions [[buffer(7)]],
    uint2 tg [[threadgroup_position_in_grid]], uint sg [[simdgroup_index_in_threadgroup]],
    uint num_sg [[simdgroups_per_threadgroup]], uint lane [[thread_index_in_simdgroup]]);
template [[host_name("attention_values_q4_0")]] kernel void attention_values<BlockQ4_0>(
    constant AttentionKArgs& args [[buffer(0)]], device float* out [[buffer(1)]],
    device const float* probs [[buffer(2)]], device const BlockQ4_0* v_cache [[buffer(3)]],
    device const int* block_tables [[buffer(4)]], device const int* query_start [[buffer(5)]],
    device const int* seq_lens [[buffer(6)]], device const int* positions [[buffer(7)]],
    uint2 tg [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]]);
template [[host_name("attention_scores_q4_1")]] kernel void attention_scores<BlockQ4_1>(
    constant AttentionKArgs& args [[buffer(0)]], device float* scores [[buffer(1)]],
    device const float* q [[buffer(2)]], device const BlockQ4_1* k_cache [[buffer(3)]],
    device const int* block_tables [[buffer(4)]], device const int* query_start [[buffer(5)]],
    device const int* seq_lens [[buffer(6)]], device const int* positions [[buffer(7)]],
    uint2 tg [[threadgroup_position_in_grid]], uint sg [[simdgroup_index_in_threadgroup]],
    uint num_sg [[simdgroups_per_threadgroup]], uint lane [[thread_index_in_simdgroup]]);
template [[host_name("attention_values_q4_1")]] kernel void attention_values<BlockQ4_1>(
    constant AttentionKArgs& args [[buffer(0)]], device float* out [[buffer(1)]],
    device const float* probs [[buffer(2)]], device const BlockQ4_1* v_cache [[buffer(3)]],
    device const int* block_tables [[buffer(4)]], device const int* query_start [[buffer(5)]],
    device const int* seq_lens [[buffer(6)]], device const int* positions [[buffer(7)]],
    uint2 tg [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]]);
