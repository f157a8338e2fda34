// Paged-batch helpers shared by the fused attention kernels (attention_decode.metal,
// attention_flash.metal): which sequences a kernel serves, the mapping from a threadgroup to its
// query tokens, the keys each token sees, the flash-decoding key splits and the cache row of a key.
// The host (metal_attention.cpp) sizes the grids with the same rules.
#pragma once
#include <metal_stdlib>
#include "kargs.h"
using namespace metal;

// Does a sequence with n query tokens run the decode kernels (select 1: every sequence)? The
// Auto rule of src/longbow/backend/attention_policy.h: generated tokens (a decode or speculative
// verify step) at any count, prompt tokens up to LONGBOW_ATTN_DECODE_MAX_QUERY.
inline bool attn_is_decode(int select, int n, bool generated) {
  return n > 0 && (select == 1 || generated || n <= LONGBOW_ATTN_DECODE_MAX_QUERY);
}
// Does it run the flash prefill kernel?
inline bool attn_is_prefill(int select, int n, bool generated) {
  return n > 0 && (select == 1 || !(generated || n <= LONGBOW_ATTN_DECODE_MAX_QUERY));
}
// Are sequence s's query tokens generated ones (AttentionArgs::generated_seqs)?
inline bool attn_generated(constant AttentionKArgs& a, device const int* generated_seqs, int s) {
  return a.has_generated != 0 && generated_seqs[s] != 0;
}

// Decode token number idx (token order over the decode sequences) -> token t and sequence s.
// A linear scan: num_seqs is small next to the work of one threadgroup.
inline bool attn_find_decode_token(constant AttentionKArgs& a, device const int* query_start,
                                   device const int* generated_seqs, int select, int idx,
                                   thread int& t, thread int& s) {
  int seen = 0;
  for (int i = 0; i < a.num_seqs; ++i) {
    const int n = query_start[i + 1] - query_start[i];
    if (!attn_is_decode(select, n, attn_generated(a, generated_seqs, i))) continue;
    if (idx < seen + n) {
      s = i;
      t = query_start[i] + idx - seen;
      return true;
    }
    seen += n;
  }
  return false;
}

// Prefill tile number idx -> sequence s and tokens [t0, t1) (tiles of tile_tokens per sequence).
inline bool attn_find_prefill_tile(constant AttentionKArgs& a, device const int* query_start,
                                   device const int* generated_seqs, int select, int tile_tokens,
                                   int idx, thread int& s, thread int& t0, thread int& t1) {
  int seen = 0;
  for (int i = 0; i < a.num_seqs; ++i) {
    const int n = query_start[i + 1] - query_start[i];
    if (!attn_is_prefill(select, n, attn_generated(a, generated_seqs, i))) continue;
    const int tiles = (n + tile_tokens - 1) / tile_tokens;
    if (idx < seen + tiles) {
      s = i;
      t0 = query_start[i] + (idx - seen) * tile_tokens;
      t1 = min(t0 + tile_tokens, query_start[i + 1]);
      return true;
    }
    seen += tiles;
  }
  return false;
}

// Keys token t of sequence s attends to: pos + 1, clamped to [0, min(seq_len, ctx_cap)].
inline int attn_keys_of(constant AttentionKArgs& a, device const int* seq_lens,
                        device const int* positions, int s, int t) {
  return clamp(min(positions[t] + 1, seq_lens[s]), 0, a.ctx_cap);
}

// First key token t sees: its sliding window's start (0 without a window), at most `keys`.
inline int attn_first_key(constant AttentionKArgs& a, device const int* positions, int t,
                          int keys) {
  return a.sliding_window > 0 ? clamp(positions[t] - a.sliding_window + 1, 0, keys) : 0;
}

// Logit soft-capping (Gemma 2): cap * tanh(s / cap), cap > 0.
inline float attn_softcap(float s, float cap) { return cap * tanh(s / cap); }

// Flash-decoding split of `keys` keys into at most num_splits ranges of whole paged blocks, none
// shorter than LONGBOW_ATTN_MIN_SPLIT_KEYS (unless there is one). Returns the number of ranges;
// range i is [i * chunk, min(keys, (i + 1) * chunk)).
inline int attn_key_splits(int keys, int num_splits, int block_size, thread int& chunk) {
  int splits = min(num_splits, max(1, keys / LONGBOW_ATTN_MIN_SPLIT_KEYS));
  chunk = ((keys + splits - 1) / splits + block_size - 1) / block_size * block_size;
  return chunk > 0 ? (keys + chunk - 1) / chunk : 1;
}

// Cache row (slot * num_kv_heads + kvh) of key j of sequence s, or -1 when its block id is out of
// range (the key is then masked). Element d of the row is at row * head_dim + d.
inline int attn_cache_row(constant AttentionKArgs& a, device const int* block_tables, int s,
                          int kvh, int j) {
  const int blk = block_tables[long(s) * a.max_blocks_per_seq + j / a.block_size];
  if (blk < 0 || blk >= a.num_blocks) return -1;
  return (blk * a.block_size + j % a.block_size) * a.num_kv_heads + kvh;
}
