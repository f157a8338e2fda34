// Shared pieces of the CPU attention variants (fused decode, flash prefill): the parsed batch
// view, the work-item list, the SIMD tile kernels and the online-softmax tile loop.
//
// Algorithm map (CPU -> future Metal threadgroup kernel), one work item = one threadgroup:
//   item  = (sequence, query tokens [t0, t1), kv heads [kvh, kvh + num_kvh), key range [k_begin,
//   k_end))
//           prefill: one kv head; decode: all kv heads, so each paged slot (all heads of one
//           token, contiguous) is read once by one item
//   rows  = (t1 - t0) query tokens x group query heads sharing the kv head   (simdgroups x rows)
//   tile  = up to ATTN_TILE_KEYS keys, whole paged blocks read through the block table
//           (staged in threadgroup memory on Metal; read in place from L1 here)
//   state = per row running max m, running sum l, unnormalized accumulator O (rows, head_dim)
//   loop  : S = Q·Kᵀ (tile) -> [soft-cap] -> causal [+ window] mask -> m' = max(m, rowmax S)
//           -> P = exp(S - m') -> O = O·exp(m - m') + P·V, l = l·exp(m - m') + rowsum P
//           (FlashAttention-2)
//   window: decode items start at the token's first window key; prefill items start at the tile
//           (ATTN_TILE_KEYS-aligned) holding their rows' first window key, so keys wholly before
//           the window are never read. The window and soft-cap code is compiled into separate
//           template instantiations; with both off the original loops run unchanged.
//   end   : out = O / l, or, when the keys were split (flash-decoding), write (m, l, O) as a
//           partial and merge the splits in a second pass.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "longbow/backend/cpu/cpu_ops.h"

namespace longbow::cpu {

// Keys per online-softmax tile (rounded to whole paged blocks).
constexpr int ATTN_TILE_KEYS = 64;
// Keys per tile of the SIMD decode item (all kv heads: 16 keys x 3 heads x 64 dims f16 = 6 KB of
// K and 6 KB of V), the next tile prefetched while one runs. When the cache streams from DRAM (a
// real batched decode step) 16 is ~15% faster end to end than 32 (L1 holds this tile and the
// next); on an L3-resident cache 32 is ~10% faster.
constexpr int ATTN_DECODE_TILE_KEYS = 16;
// Query tokens per flash-prefill tile.
constexpr int ATTN_PREFILL_TOKENS = 16;
// Flash-decoding: a decode token's keys are split into ranges of about this many keys (whole
// blocks), and into two from ATTN_SPLIT_MIN_KEYS keys on, so one sequence keeps two threads busy.
// The split depends only on the token's context length, never on the rest of the batch, so a
// decode row is bitwise the same alone or batched.
constexpr int ATTN_SPLIT_KEYS = 256;
constexpr int ATTN_SPLIT_MIN_KEYS = 128;

// One plane (K or V) of the paged cache: (num_blocks, block_size, num_kv_heads) rows of head_dim
// values in `type`, row_bytes each. K and V may have different types.
struct KvPlane {
  const uint8_t* cache = nullptr;
  DType type = DType::F32;
  bool f16 = false;      // type is f16
  bool staged = false;   // type is a block type (q8_0, q4_0, q4_1)
  size_t row_bytes = 0;  // bytes of one (slot, kv head) row
};

// The batch of one attention call, validated.
struct AttnBatch {
  float* out = nullptr;      // (num_tokens, num_heads, head_dim)
  const float* q = nullptr;  // (num_tokens, num_heads, head_dim)
  KvPlane k, v;
  const int32_t* block_tables = nullptr;  // (num_seqs, max_blocks_per_seq)
  const int32_t* query_start = nullptr;   // (num_seqs + 1,)
  const int32_t* seq_lens = nullptr;      // (num_seqs,)
  const int32_t* positions = nullptr;     // (num_tokens,)
  const int32_t* generated = nullptr;     // (num_seqs,) 1 = generated tokens; nullptr: all 0
  int num_tokens = 0, num_seqs = 0, num_heads = 0, num_kv_heads = 0, head_dim = 0, group = 1;
  int block_size = 16, max_blocks_per_seq = 0, num_blocks = 0;
  int max_ctx = 0;  // longest seq_len
  float scale = 1.0f;
  int window = 0;        // sliding window (0 = off): position p sees keys [window_begin(p), p]
  float softcap = 0.0f;  // logit soft-cap (0 = off): s -> softcap * tanh(s / softcap)

  bool is_generated(int s) const { return generated != nullptr && generated[s] != 0; }
  // Either plane is block-typed (rows dequantized, never read in place as floats).
  bool staged() const { return k.staged || v.staged; }

  // First key a query at position p sees.
  int window_begin(int p) const { return window > 0 ? std::max(0, p - window + 1) : 0; }

  // Address of key/value row j of sequence s, kv head kvh in plane p; rows of one block are
  // contiguous with a stride of row_stride() elements (slot_bytes(p) bytes).
  const void* row(const KvPlane& p, int s, int kvh, int j) const {
    const int32_t blk = block_tables[static_cast<size_t>(s) * max_blocks_per_seq + j / block_size];
    const size_t slot = static_cast<size_t>(blk) * block_size + j % block_size;
    return p.cache + (slot * num_kv_heads + kvh) * p.row_bytes;
  }
  size_t row_stride() const { return static_cast<size_t>(num_kv_heads) * head_dim; }
  size_t slot_bytes(const KvPlane& p) const {
    return static_cast<size_t>(num_kv_heads) * p.row_bytes;
  }
};

// Validates the args (same checks as the split baseline) and returns the parsed batch.
AttnBatch parse_attention(const AttentionArgs& a);

// Largest head_dim of a block-typed (staged) KV cache: rows are dequantized on the stack.
constexpr int ATTN_STAGE_MAX_DIM = 1024;
// dst (nk, head_dim) f32 = rows [j0, j0 + nk) of sequence seq, kv head kvh, of cache plane p
// (any type), dequantized. The kernels stage a tile (whole blocks, tens of keys) at a time in L1:
// never a dequantized copy of the cache.
void kv_stage_rows(const AttnBatch& b, const KvPlane& p, int seq, int kvh, int j0, int nk,
                   float* dst);

// One unit of parallel work (see the map at the top). Stored as int32 in shared scratch.
struct AttnItem {
  int32_t seq, t0, t1;
  int32_t kvh, num_kvh;    // kv heads [kvh, kvh + num_kvh)
  int32_t k_begin, k_end;  // key range; the causal limit per row still applies
  // >= 0: write (m, l, O) of kv head kvh + h to partial slot partial + h * partial_stride instead
  // of out (a token's slots are (num_kvh, num_splits), so each head's splits are contiguous).
  int32_t partial, partial_stride;
  int32_t decode_stage;  // 0: flash prefill tile; 1: fused decode stage 1; 2: fused decode stage 2
                         // (online loop)
  int32_t merge;         // >= 0: index of the split merge (one per token) this partial belongs to
};

// The item's kv head h alone (h < num_kvh), for the single-head runners.
inline AttnItem attn_item_head(const AttnItem& it, int h) {
  AttnItem one = it;
  one.kvh = it.kvh + h;
  one.num_kvh = 1;
  one.partial = it.partial < 0 ? -1 : it.partial + h * it.partial_stride;
  return one;
}

// Number of flash-decoding key splits of a decode token that sees `keys` keys (see
// ATTN_SPLIT_KEYS).
inline int attn_decode_splits(int keys) {
  if (keys < ATTN_SPLIT_MIN_KEYS) return 1;
  return std::max(2, (keys + ATTN_SPLIT_KEYS - 1) / ATTN_SPLIT_KEYS);
}

// Keys per online-softmax tile for a block size: whole blocks, about ATTN_TILE_KEYS keys.
inline int attn_tile_keys(int block_size) {
  return block_size * (ATTN_TILE_KEYS / block_size > 1 ? ATTN_TILE_KEYS / block_size : 1);
}

// Keys per SIMD decode tile for a block size: whole blocks, about ATTN_DECODE_TILE_KEYS keys.
inline int attn_decode_tile_keys(int block_size) {
  return block_size *
         (ATTN_DECODE_TILE_KEYS / block_size > 1 ? ATTN_DECODE_TILE_KEYS / block_size : 1);
}

// Prefetches share `part` of `parts` of the cache lines holding keys [j0, j1) of one sequence
// (block table `table`, slot_bytes per slot: all kv heads of one token). The slots of a paged
// block are contiguous, so a key range is one contiguous run per block, each split into the
// shares. Every line is prefetched: the hardware prefetchers do not follow these runs (measured:
// prefetching every second line or only a run's first lines is 2x slower from DRAM).
// LOCALITY: 3 into L1, 2 into L2.
template <int LOCALITY>
inline void attn_prefetch_keys(const uint8_t* cache, const int32_t* table, int block_size,
                               size_t slot_bytes, int j0, int j1, int part, int parts) {
  for (int j = j0; j < j1;) {
    const int blk = j / block_size, je = std::min(j1, (blk + 1) * block_size);
    const auto begin = reinterpret_cast<uintptr_t>(
        cache + (static_cast<size_t>(table[blk]) * block_size + j % block_size) * slot_bytes);
    const uintptr_t first = begin & ~uintptr_t{63},
                    end = begin + static_cast<size_t>(je - j) * slot_bytes;
    const size_t lines = (end - first + 63) / 64;
    const char* base = reinterpret_cast<const char*>(first);
    for (size_t i = lines * part / parts; i < lines * (part + 1) / parts; ++i) {
      __builtin_prefetch(base + i * 64, 0, LOCALITY);
      // GCC (-ffinite-loops, the C++ default) deletes a loop of prefetches alone as side-effect
      // free; the empty asm keeps it.
      asm volatile("" : : "r"(base + i * 64));
    }
    j = je;
  }
}

// SIMD kernels of the tile loop, chosen once: AVX-512, AVX2 or scalar (as cpu_isa()
// allows: LONGBOW_CPU_SIMD=avx2 caps at AVX2, =scalar forces scalar).
struct AttnKernels {
  const char* name;
  // s[r, j] = q[r, :] · k_j for r < rows, j < nk; k_j at k + j * k_stride elements (f16 or f32).
  void (*scores)(const float* q, int rows, int head_dim, const void* k, size_t k_stride, int nk,
                 bool f16, float* s, int s_stride);
  // acc[r, :] += sum_j p[r, j] * v_j for r < rows, j < nk.
  void (*values)(const float* p, int p_stride, int rows, int head_dim, const void* v,
                 size_t v_stride, int nk, bool f16, float* acc);
  // x[i] = exp(x[i] - m) for i < n; returns the sum (exp(-inf) = 0).
  float (*exp_sum)(float* x, int n, float m);
  // max_i x[i] over n > 0 elements.
  float (*row_max)(const float* x, int n);
  // Whole online-softmax item in the transposed form (attention_tile_simd.h), used for every
  // flash-prefill item (decode_stage 0) when head_dim % 4 == 0, whatever its number of rows, so a
  // token's result does not depend on how its sequence was tiled (prefix caching, chunking);
  // nullptr: the generic tile loop.
  void (*prefill_item)(const AttnBatch& b, const AttnItem& it, float* f32);
  // f32 scratch prefill_item needs for `rows` rows.
  size_t (*prefill_scratch)(const AttnBatch& b, int rows);
  // Whole fused decode item (stage 2, one token, all its kv heads; attention_decode_simd.h),
  // writing out or its partials; returns false, doing nothing, when it does not handle the batch's
  // head_dim (the generic tile loop runs per kv head instead). i32 scratch: 2 x
  // attn_decode_tile_keys. nullptr: none.
  bool (*decode_item)(const AttnBatch& b, const AttnItem& it, float* f32, int32_t* i32,
                      float* partials);
  // f32 scratch decode_item needs.
  size_t (*decode_scratch)(const AttnBatch& b);
};
const AttnKernels& attn_scalar_kernels();
// kern.scores / kern.values over keys [j, j + nk) of one paged block of sequence seq, kv head
// kvh: f16 / f32 rows read in place, block-typed rows dequantized one at a time.
void attn_block_scores(const AttnKernels& kern, const AttnBatch& b, const float* q, int rows,
                       int seq, int kvh, int j, int nk, float* s, int s_stride);
void attn_block_values(const AttnKernels& kern, const AttnBatch& b, const float* p, int p_stride,
                       int rows, int seq, int kvh, int j, int nk, float* acc);
// Sliding-window / soft-cap instantiations of the SIMD items, compiled in their own files
// (attention_kernels_ext_avx2.cpp, attention_kernels_ext_avx512.cpp) so that the plain items'
// files compile to the code they had before these existed (GCC's inlining budget is per file).
// Prefill: b.window > 0 or b.softcap > 0. Decode: b.softcap > 0, head_dim a multiple of the lanes.
void avx2_prefill_item_ext(const AttnBatch& b, const AttnItem& it, float* f32);
void avx2_decode_item_softcap(const AttnBatch& b, const AttnItem& it, float* f32, int32_t* i32,
                              float* partials);
// Block-typed or mixed caches (K and V each f16, q8_0, q4_0 or q4_1), any softcap: rows
// dequantized in registers. False, doing nothing, for other type pairs (an f32 plane beside
// another type: the generic tile loop runs).
bool avx2_decode_item_quant(const AttnBatch& b, const AttnItem& it, float* f32, int32_t* i32,
                            float* partials);
bool avx512_decode_item_quant(const AttnBatch& b, const AttnItem& it, float* f32, int32_t* i32,
                              float* partials);
void avx512_prefill_item_ext(const AttnBatch& b, const AttnItem& it, float* f32);
void avx512_decode_item_softcap(const AttnBatch& b, const AttnItem& it, float* f32, int32_t* i32,
                                float* partials);
const AttnKernels* attn_avx2_kernels();    // nullptr when not compiled in
const AttnKernels* attn_avx512_kernels();  // nullptr when not compiled in
const AttnKernels& attn_kernels();

// s[i] = cap * tanh(s[i] / cap) for i < n: logit soft-capping (Gemma 2) of natural-unit scores.
inline void attn_softcap(float* s, int n, float cap) {
  for (int i = 0; i < n; ++i) s[i] = cap * std::tanh(s[i] / cap);
}

// Per-thread f32 scratch needed by run_attention_item for items of up to `rows` rows and
// (stage 1) `stage1_keys` keys; i32 scratch is 2 * `rows`.
size_t attn_item_scratch(const AttnBatch& b, int rows, int stage1_keys);

// Work item runners with per-thread scratch `f32` / `i32`; partials is (num_partials, group,
// head_dim + 2) and holds (O (head_dim,), m, l) per query head of the kv group. FlashAttention-2
// online tile loop: flash prefill and fused decode stage 2 (attention_flash_prefill.cpp).
void run_online_item(const AttnBatch& b, const AttnItem& it, float* f32, int32_t* i32,
                     float* partials);
// run_online_item for calls with a sliding window and / or soft-capping (items that need neither
// go to run_online_item); attention_flash_prefill_ext.cpp, a file of its own for the reason given
// above the SIMD ones.
void run_online_item_ext(const AttnBatch& b, const AttnItem& it, float* f32, int32_t* i32,
                         float* partials);
// Fused decode stage 1: scores + online max/sum in one pass over K, then one pass over V.
void run_stage1_item(const AttnBatch& b, const AttnItem& it, float* f32, float* partials);

// Merges the key splits of token t, kv head kvh: partial slots [p0, p0 + num_splits).
void merge_attention_splits(const AttnBatch& b, int t, int kvh, int p0, int num_splits,
                            const float* partials);

// Seconds per phase of the split baseline, summed over threads, and the wall time of the call.
struct AttentionPhaseTimes {
  double scores = 0.0, softmax = 0.0, values = 0.0, wall = 0.0;
};
// Runs the split algorithm on its own pool of num_threads with phase timers (profiling only).
AttentionPhaseTimes profile_attention_split(const AttentionArgs& a, int num_threads);

}  // namespace longbow::cpu
