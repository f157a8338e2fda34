// Metal op encoders for the paged KV cache: kv_write, copy_blocks and attention. Attention
// variants:
//  Split         the baseline (attention.metal): scores -> softmax -> values through a scratch of
//                (num_tokens * num_heads, ctx_cap) f32.
//  FusedDecode   every token through attention_decode_{fused,stage1}_<cache> (+ the flash-decoding
//                merge when keys are split across threadgroups); LONGBOW_ATTN_DECODE_STAGE=1|2.
//  FlashPrefill  every token through attention_flash_prefill_<cache> (FlashAttention-2 tiles).
//  Auto          per sequence, the rule of attention_policy.h: generated tokens (decode, verify)
//                or at most LONGBOW_ATTN_DECODE_MAX_QUERY prompt tokens -> fused decode, else
//                flash prefill.
//                Head dims above LONGBOW_ATTN_MAX_HEAD_DIM run the baseline (forcing a fused
//                variant there is an error).
// Sliding window / logit soft-capping: the baseline checks them at run time (uniform branches
// outside its inner loops); the fused kernels have `_softcap` (decode, flash) and `_window`
// (flash) instantiations chosen here, so with both off the original kernels run. Decode kernels
// start a token's keys (and its flash-decoding splits) at its window and need no window variant.
// The host reads query_start (uploaded by the runner; unified memory) to size the grids; the
// kernels map threadgroups to tokens with the same rules (metal/attention_paged.h).
#include <algorithm>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "kargs.h"
#include "longbow/backend/attention_policy.h"
#include "longbow/backend/metal/kernel_names.h"
#include "longbow/backend/metal/metal_backend.h"
#include "longbow/backend/op_checks.h"
#include "longbow/core/check.h"

namespace longbow::metal {

namespace {
constexpr size_t SCORES_SLOT = 0;    // scratch slot of the split baseline's scores
constexpr size_t PARTIALS_SLOT = 3;  // flash-decoding partials (sample uses slots 1 and 2)
constexpr size_t STAGE1_SLOT = 4;    // fused decode stage 1 scores
constexpr uint32_t SCORE_THREADS = 128;
// Flash-decoding: split keys while there are fewer decode threadgroups than this (enough to fill
// the GPU's cores), at most MAX_SPLITS ways.
constexpr int64_t DECODE_TARGET_THREADGROUPS = 128;
constexpr int MAX_SPLITS = 32;

uint32_t ceil_div(int64_t n, int64_t d) { return static_cast<uint32_t>((n + d - 1) / d); }

int decode_stage() { return attention_decode_stage("metal.attention"); }

// The one element type of a Metal KV cache: its kernels take K and V of the same type.
DType cache_type(DType k_dtype, DType v_dtype, const std::string& where) {
  require(k_dtype == v_dtype, where,
          "the Metal kernels need k_dtype == v_dtype, found " + std::string(dtype_name(k_dtype)) +
              " and " + dtype_name(v_dtype));
  return k_dtype;
}

// Work of one attention call for the fused kernels, from the host copy of query_start.
struct FusedPlan {
  int decode_select = 0, flash_select = 0;  // kargs `select` (0: the Auto rule, 1: every sequence)
  int64_t num_decode = 0;                   // tokens run by the decode kernels
  int64_t num_tiles = 0;                    // flash prefill query tiles
};

// gen: the host copy of generated_seqs, or nullptr (every sequence 0).
FusedPlan plan_fused(const std::string& where, AttentionVariant variant, const int32_t* qs,
                     const int32_t* gen, int num_seqs, int num_tokens, int tile_tokens) {
  require(qs[0] == 0 && qs[num_seqs] == num_tokens, where,
          "query_start: expected to run from 0 to num_tokens=" + std::to_string(num_tokens) +
              ", found " + std::to_string(qs[0]) + " .. " + std::to_string(qs[num_seqs]));
  FusedPlan p;
  p.decode_select = variant == AttentionVariant::FusedDecode ? 1 : 0;
  p.flash_select = variant == AttentionVariant::FlashPrefill ? 1 : 0;
  for (int s = 0; s < num_seqs; ++s) {
    const int n = qs[s + 1] - qs[s];
    require(
        n >= 0, where,
        "query_start: expected non-decreasing, found a decrease at sequence " + std::to_string(s));
    if (n == 0) continue;
    // The kernels' attn_is_decode rule.
    const bool is_decode = attention_is_decode(variant, n, gen != nullptr && gen[s] != 0);
    if (is_decode) {
      p.num_decode += n;
    } else {
      p.num_tiles += (n + tile_tokens - 1) / tile_tokens;
    }
  }
  return p;
}
}  // namespace

void MetalBackend::kv_write(const KvWriteArgs& a) {
  const std::string where = name_ + ".kv_write";
  const DType cache_dtype = cache_type(a.k_dtype, a.v_dtype, where);
  require_supported(Op::KvWrite, cache_dtype, "kv_write");
  require(a.num_tokens >= 0 && a.num_kv_heads > 0 && a.head_dim > 0 && a.num_slots >= 0, where,
          "expected num_tokens >= 0, num_kv_heads > 0, head_dim > 0, num_slots >= 0");
  const size_t row = static_cast<size_t>(a.num_kv_heads) * a.head_dim;  // elements per slot
  check_kv_dtype(cache_dtype, a.head_dim, where);
  // Bytes per slot: num_kv_heads rows (block types: head_dim / 32 blocks each).
  const size_t slot_bytes = a.num_kv_heads * kv_row_bytes(cache_dtype, a.head_dim);
  require(row <= 0x7fffffff, where,
          "expected num_kv_heads * head_dim < 2^31, found " + std::to_string(row));
  std::vector<Bound> bufs = {bind_view(a.k, a.num_tokens * row * 4, "kv_write",
                                       "k"),  // (num_tokens, num_kv_heads, head_dim)
                             bind_view(a.v, a.num_tokens * row * 4, "kv_write",
                                       "v"),  // (num_tokens, num_kv_heads, head_dim)
                             bind_view(a.k_cache, a.num_slots * slot_bytes, "kv_write",
                                       "k_cache"),  // (num_slots, num_kv_heads) rows
                             bind_view(a.v_cache, a.num_slots * slot_bytes, "kv_write",
                                       "v_cache"),  // (num_slots, num_kv_heads) rows
                             bind_view(a.slot_mapping, static_cast<size_t>(a.num_tokens) * 4,
                                       "kv_write", "slot_mapping")};  // (num_tokens,)
  KvWriteKArgs k{a.num_tokens, static_cast<int32_t>(row), a.num_slots};
  // A thread per element, or per 32-value group of a block type.
  const auto threads = static_cast<int64_t>(is_kv_block_dtype(cache_dtype) ? row / QK : row);
  encode(kernel_name(Op::KvWrite, "", cache_dtype), &k, sizeof k, bufs,
         {ceil_div(threads, LONGBOW_ROW_THREADS), static_cast<uint32_t>(a.num_tokens), 1},
         {LONGBOW_ROW_THREADS, 1, 1});
}

void MetalBackend::copy_blocks(const CopyBlocksArgs& a) {
  const std::string where = name_ + ".copy_blocks";
  require(a.num_pairs >= 0 && a.num_planes >= 0 && a.num_blocks >= 0, where,
          "expected non-negative sizes");
  if (a.num_pairs == 0 || a.num_planes == 0 || a.block_bytes == 0) return;
  const size_t plane_bytes = static_cast<size_t>(a.num_blocks) * a.block_bytes;
  std::vector<Bound> bufs = {bind_view(a.cache, a.num_planes * plane_bytes, "copy_blocks",
                                       "cache"),  // (num_planes, num_blocks, block_bytes)
                             bind_view(a.pairs, 2 * static_cast<size_t>(a.num_pairs) * 4,
                                       "copy_blocks", "pairs")};  // (num_pairs, 2)
  const bool words = a.block_bytes % 4 == 0 && bufs[0].offset % 4 == 0;
  const size_t block_words = words ? a.block_bytes / 4 : a.block_bytes;
  require(block_words <= 0xffffffffu, where,
          "expected block_bytes < 2^32, found " + std::to_string(a.block_bytes));
  CopyBlocksKArgs k{a.num_pairs, a.num_planes, a.num_blocks, static_cast<uint32_t>(block_words)};
  encode(kernel_name(Op::CopyBlocks, "", words ? "u32" : "u8"), &k, sizeof k, bufs,
         {static_cast<uint32_t>(a.num_planes), 1, 1}, {LONGBOW_ROW_THREADS, 1, 1});
}

// Split: the baseline. Others: the fused kernels chosen by plan_fused (see the top of the file).
void MetalBackend::attention(const AttentionArgs& a) {
  const std::string where = name_ + ".attention";
  const DType cache_dtype = cache_type(a.k_dtype, a.v_dtype, where);
  require_supported(Op::Attention, cache_dtype, "attention");
  check_attention_sizes(a, where);
  require(a.head_dim <= 1024, where,
          "expected head_dim <= 1024, found " + std::to_string(a.head_dim));
  require(
      a.num_tokens == 0 || a.num_seqs > 0, where,
      "expected at least one sequence for " + std::to_string(a.num_tokens) + " tokens, found none");
  const bool fused = a.variant != AttentionVariant::Split;
  if (fused && a.head_dim > LONGBOW_ATTN_MAX_HEAD_DIM) {
    require(a.variant == AttentionVariant::Auto, where,
            "fused_decode / flash_prefill: expected head_dim <= " +
                std::to_string(LONGBOW_ATTN_MAX_HEAD_DIM) + ", found " +
                std::to_string(a.head_dim) + " (use the split variant)");
  }
  const size_t T = a.num_tokens, H = a.num_heads, D = a.head_dim;
  check_kv_dtype(cache_dtype, a.head_dim, where);
  const size_t cache_bytes = static_cast<size_t>(a.num_blocks) * a.block_size * a.num_kv_heads *
                             kv_row_bytes(cache_dtype, a.head_dim);
  const size_t ctx_cap = static_cast<size_t>(a.max_blocks_per_seq) * a.block_size;
  const Bound out =
      bind_view(a.out, T * H * D * 4, "attention", "out");  // (num_tokens, num_heads, head_dim)
  const Bound q =
      bind_view(a.q, T * H * D * 4, "attention", "q");  // (num_tokens, num_heads, head_dim)
  // (num_blocks, block_size, num_kv_heads, head_dim) cache_dtype
  const Bound kc = bind_view(a.k_cache, cache_bytes, "attention", "k_cache");
  const Bound vc = bind_view(a.v_cache, cache_bytes, "attention", "v_cache");
  const Bound bt = bind_view(
      a.block_tables, static_cast<size_t>(a.num_seqs) * a.max_blocks_per_seq * 4, "attention",
      "block_tables");  // (num_seqs, max_blocks)
  const Bound qs = bind_view(a.query_start, (static_cast<size_t>(a.num_seqs) + 1) * 4, "attention",
                             "query_start");  // (num_seqs+1,)
  const Bound sl = bind_view(a.seq_lens, static_cast<size_t>(a.num_seqs) * 4, "attention",
                             "seq_lens");                                     // (num_seqs,)
  const Bound pos = bind_view(a.positions, T * 4, "attention", "positions");  // (num_tokens,)
  // (num_seqs,) i32 when given; else unread (positions stand in) and has_generated is 0.
  const bool has_gen = !a.generated_seqs.empty();
  const Bound gen = has_gen ? bind_view(a.generated_seqs, static_cast<size_t>(a.num_seqs) * 4,
                                        "attention", "generated_seqs")
                            : pos;
  if (T == 0 || H == 0 || ctx_cap == 0) return;
  require(ctx_cap <= 0x7fffffff, where, "expected max_blocks_per_seq * block_size < 2^31");
  AttentionKArgs k{a.num_tokens,
                   a.num_seqs,
                   a.num_heads,
                   a.num_kv_heads,
                   a.head_dim,
                   a.block_size,
                   a.max_blocks_per_seq,
                   a.num_blocks,
                   static_cast<int32_t>(ctx_cap),
                   a.scale,
                   a.sliding_window,
                   a.logit_softcap,
                   has_gen ? 1 : 0};

  if (!fused || a.head_dim > LONGBOW_ATTN_MAX_HEAD_DIM) {
    const Bound scores =
        scratch(SCORES_SLOT, T * H * ctx_cap * 4);  // (num_tokens * num_heads, ctx_cap) f32
    const GpuSize grid{static_cast<uint32_t>(H), static_cast<uint32_t>(T), 1};
    encode(kernel_name(Op::Attention, "scores", cache_dtype), &k, sizeof k,
           {scores, q, kc, bt, qs, sl, pos}, grid, {SCORE_THREADS, 1, 1});
    encode(kernel_name(Op::Attention, "softmax", DType::F32), &k, sizeof k, {scores, qs, sl, pos},
           grid, {LONGBOW_ROW_THREADS, 1, 1});
    const uint32_t value_threads = static_cast<uint32_t>((D + 31) / 32 * 32);
    encode(kernel_name(Op::Attention, "values", cache_dtype), &k, sizeof k,
           {out, scores, vc, bt, qs, sl, pos}, grid, {value_threads, 1, 1});
    return;
  }

  // Fused kernels: cache rows are int32 in the kernels.
  require(static_cast<int64_t>(a.num_blocks) * a.block_size * a.num_kv_heads <= 0x7fffffff, where,
          "expected num_blocks * block_size * num_kv_heads < 2^31 for the fused kernels, found " +
              std::to_string(static_cast<int64_t>(a.num_blocks) * a.block_size * a.num_kv_heads));
  const int group = a.num_heads / a.num_kv_heads;
  AttentionFlashKArgs fk{k, 0, 0, 0, 0, 0, 0};
  fk.head_chunk = std::min(group, LONGBOW_ATTN_FLASH_ROWS);
  fk.num_head_chunks = (group + fk.head_chunk - 1) / fk.head_chunk;
  fk.tile_tokens = LONGBOW_ATTN_FLASH_ROWS / fk.head_chunk;
  fk.dim_pad = (a.head_dim + 7) / 8 * 8;
  fk.key_tile =
      std::min(LONGBOW_ATTN_FLASH_MAX_KEYS, LONGBOW_ATTN_FLASH_KV_FLOATS / fk.dim_pad / 8 * 8);
  const auto* qs_host =
      reinterpret_cast<const int32_t*>(static_cast<const char*>(qs.buffer->contents()) + qs.offset);
  const auto* gen_host = has_gen
                             ? reinterpret_cast<const int32_t*>(
                                   static_cast<const char*>(gen.buffer->contents()) + gen.offset)
                             : nullptr;
  const FusedPlan plan =
      plan_fused(where, a.variant, qs_host, gen_host, a.num_seqs, a.num_tokens, fk.tile_tokens);
  fk.select = plan.flash_select;
  const std::string softcap = a.logit_softcap > 0.0f ? "_softcap" : "";
  const std::string window = a.sliding_window > 0 ? "_window" : "";

  if (plan.num_decode > 0) {
    AttentionDecodeKArgs dk{k, plan.decode_select, 1, std::min(group, LONGBOW_ATTN_DECODE_HEADS),
                            0};
    dk.num_head_chunks = (group + dk.head_chunk - 1) / dk.head_chunk;
    const int64_t items = plan.num_decode * a.num_kv_heads * dk.num_head_chunks;
    if (items < DECODE_TARGET_THREADGROUPS) {
      // Keys a token can see: the window bounds them.
      const int64_t keys =
          a.sliding_window > 0 ? std::min<int64_t>(ctx_cap, a.sliding_window) : ctx_cap;
      const int64_t most = std::max<int64_t>(1, keys / LONGBOW_ATTN_MIN_SPLIT_KEYS);
      dk.num_splits = static_cast<int32_t>(
          std::min<int64_t>({(DECODE_TARGET_THREADGROUPS + items - 1) / items, MAX_SPLITS, most}));
    }
    const GpuSize grid{static_cast<uint32_t>(plan.num_decode),
                       static_cast<uint32_t>(a.num_kv_heads * dk.num_head_chunks),
                       static_cast<uint32_t>(dk.num_splits)};
    // (decode tokens, kv heads * head chunks, num_splits, head_chunk, head_dim + 2) f32, or unused
    const Bound parts = dk.num_splits > 1
                            ? scratch(PARTIALS_SLOT, static_cast<size_t>(items) * dk.num_splits *
                                                         dk.head_chunk * (D + 2) * 4)
                            : out;
    const GpuSize threads{LONGBOW_ATTN_DECODE_THREADS, 1, 1};
    if (decode_stage() == 1) {
      const Bound scores = scratch(STAGE1_SLOT, static_cast<size_t>(plan.num_decode) * H * ctx_cap *
                                                    4);  // (decode tokens, num_heads, ctx_cap)
      encode(kernel_name(Op::Attention, "decode_stage1" + softcap, cache_dtype), &dk, sizeof dk,
             {out, parts, scores, q, kc, vc, bt, qs, sl, pos, gen}, grid, threads);
    } else {
      encode(kernel_name(Op::Attention, "decode_fused" + softcap, cache_dtype), &dk, sizeof dk,
             {out, parts, q, kc, vc, bt, qs, sl, pos, gen}, grid, threads);
    }
    if (dk.num_splits > 1) {
      encode(kernel_name(Op::Attention, "decode_merge", DType::F32), &dk, sizeof dk,
             {out, parts, qs, sl, pos, gen}, {grid.x, grid.y, 1}, threads);
    }
  }
  if (plan.num_tiles > 0) {
    encode(kernel_name(Op::Attention, "flash_prefill" + window + softcap, cache_dtype), &fk,
           sizeof fk, {out, q, kc, vc, bt, qs, sl, pos, gen},
           {static_cast<uint32_t>(plan.num_tiles),
            static_cast<uint32_t>(a.num_kv_heads * fk.num_head_chunks), 1},
           {LONGBOW_ATTN_FLASH_THREADS, 1, 1});
  }
}

}  // namespace longbow::metal
