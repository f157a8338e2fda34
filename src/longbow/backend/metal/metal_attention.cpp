// Metal op encoders for the paged KV cache: kv_write, copy_blocks and attention (split baseline:
// scores -> softmax -> values through a scratch of (num_tokens * num_heads, ctx_cap) f32).
#include <stdexcept>
#include <string>

#include "kargs.h"
#include "longbow/backend/metal/kernel_names.h"
#include "longbow/backend/metal/metal_backend.h"

namespace longbow::metal {

namespace {
constexpr size_t SCORES_SLOT = 0;  // scratch slot of the attention scores
constexpr uint32_t SCORE_THREADS = 128;

void require(bool cond, const std::string& where, const std::string& message) {
  if (!cond) throw std::invalid_argument("[" + where + "] " + message);
}
uint32_t ceil_div(int64_t n, int64_t d) { return static_cast<uint32_t>((n + d - 1) / d); }
}  // namespace

void MetalBackend::kv_write(const KvWriteArgs& a) {
  require_supported(Op::KvWrite, a.cache_dtype, "kv_write");
  const std::string where = name_ + ".kv_write";
  require(a.num_tokens >= 0 && a.num_kv_heads > 0 && a.head_dim > 0 && a.num_slots >= 0, where,
          "expected num_tokens >= 0, num_kv_heads > 0, head_dim > 0, num_slots >= 0");
  const size_t row = static_cast<size_t>(a.num_kv_heads) * a.head_dim;  // elements per slot
  const size_t esize = a.cache_dtype == DType::F16 ? 2 : 4;
  require(row <= 0x7fffffff, where, "expected num_kv_heads * head_dim < 2^31, found " + std::to_string(row));
  std::vector<Bound> bufs = {
      bind_view(a.k, a.num_tokens * row * 4, "kv_write", "k"),                     // (num_tokens, num_kv_heads, head_dim)
      bind_view(a.v, a.num_tokens * row * 4, "kv_write", "v"),                     // (num_tokens, num_kv_heads, head_dim)
      bind_view(a.k_cache, a.num_slots * row * esize, "kv_write", "k_cache"),      // (num_slots, num_kv_heads, head_dim)
      bind_view(a.v_cache, a.num_slots * row * esize, "kv_write", "v_cache"),      // (num_slots, num_kv_heads, head_dim)
      bind_view(a.slot_mapping, static_cast<size_t>(a.num_tokens) * 4, "kv_write", "slot_mapping")};  // (num_tokens,)
  KvWriteKArgs k{a.num_tokens, static_cast<int32_t>(row), a.num_slots};
  encode(kernel_name(Op::KvWrite, "", a.cache_dtype), &k, sizeof k, bufs,
         {ceil_div(static_cast<int64_t>(row), LONGBOW_ROW_THREADS), static_cast<uint32_t>(a.num_tokens), 1},
         {LONGBOW_ROW_THREADS, 1, 1});
}

void MetalBackend::copy_blocks(const CopyBlocksArgs& a) {
  const std::string where = name_ + ".copy_blocks";
  require(a.num_pairs >= 0 && a.num_planes >= 0 && a.num_blocks >= 0, where, "expected non-negative sizes");
  if (a.num_pairs == 0 || a.num_planes == 0 || a.block_bytes == 0) return;
  const size_t plane_bytes = static_cast<size_t>(a.num_blocks) * a.block_bytes;
  std::vector<Bound> bufs = {bind_view(a.cache, a.num_planes * plane_bytes, "copy_blocks", "cache"),  // (num_planes, num_blocks, block_bytes)
                             bind_view(a.pairs, 2 * static_cast<size_t>(a.num_pairs) * 4, "copy_blocks", "pairs")};  // (num_pairs, 2)
  const bool words = a.block_bytes % 4 == 0 && bufs[0].offset % 4 == 0;
  const size_t block_words = words ? a.block_bytes / 4 : a.block_bytes;
  require(block_words <= 0xffffffffu, where, "expected block_bytes < 2^32, found " + std::to_string(a.block_bytes));
  CopyBlocksKArgs k{a.num_pairs, a.num_planes, a.num_blocks, static_cast<uint32_t>(block_words)};
  encode(kernel_name(Op::CopyBlocks, "", words ? "u32" : "u8"), &k, sizeof k, bufs,
         {static_cast<uint32_t>(a.num_planes), 1, 1}, {LONGBOW_ROW_THREADS, 1, 1});
}

// Every variant runs the split baseline here (fused decode / flash prefill kernels come later);
// all variants compute the same function.
void MetalBackend::attention(const AttentionArgs& a) {
  require_supported(Op::Attention, a.cache_dtype, "attention");
  const std::string where = name_ + ".attention";
  require(a.num_tokens >= 0 && a.num_seqs >= 0 && a.head_dim > 0 && a.block_size > 0 && a.num_kv_heads > 0 &&
              a.num_heads >= 0 && a.num_blocks >= 0 && a.max_blocks_per_seq >= 0,
          where, "expected non-negative sizes, positive head_dim, block_size and num_kv_heads");
  require(a.num_heads % a.num_kv_heads == 0, where,
          "expected num_heads a multiple of num_kv_heads, found " + std::to_string(a.num_heads) + " and " +
              std::to_string(a.num_kv_heads));
  require(a.head_dim <= 1024, where, "expected head_dim <= 1024, found " + std::to_string(a.head_dim));
  require(a.num_tokens == 0 || a.num_seqs > 0, where,
          "expected at least one sequence for " + std::to_string(a.num_tokens) + " tokens, found none");
  const size_t T = a.num_tokens, H = a.num_heads, D = a.head_dim;
  const size_t esize = a.cache_dtype == DType::F16 ? 2 : 4;
  const size_t cache_bytes = static_cast<size_t>(a.num_blocks) * a.block_size * a.num_kv_heads * D * esize;
  const size_t ctx_cap = static_cast<size_t>(a.max_blocks_per_seq) * a.block_size;
  const Bound out = bind_view(a.out, T * H * D * 4, "attention", "out");  // (num_tokens, num_heads, head_dim)
  const Bound q = bind_view(a.q, T * H * D * 4, "attention", "q");        // (num_tokens, num_heads, head_dim)
  // (num_blocks, block_size, num_kv_heads, head_dim) cache_dtype
  const Bound kc = bind_view(a.k_cache, cache_bytes, "attention", "k_cache");
  const Bound vc = bind_view(a.v_cache, cache_bytes, "attention", "v_cache");
  const Bound bt = bind_view(a.block_tables, static_cast<size_t>(a.num_seqs) * a.max_blocks_per_seq * 4, "attention",
                             "block_tables");                                                       // (num_seqs, max_blocks)
  const Bound qs = bind_view(a.query_start, (static_cast<size_t>(a.num_seqs) + 1) * 4, "attention", "query_start");  // (num_seqs+1,)
  const Bound sl = bind_view(a.seq_lens, static_cast<size_t>(a.num_seqs) * 4, "attention", "seq_lens");  // (num_seqs,)
  const Bound pos = bind_view(a.positions, T * 4, "attention", "positions");                            // (num_tokens,)
  if (T == 0 || H == 0 || ctx_cap == 0) return;
  require(ctx_cap <= 0x7fffffff, where, "expected max_blocks_per_seq * block_size < 2^31");
  const Bound scores = scratch(SCORES_SLOT, T * H * ctx_cap * 4);  // (num_tokens * num_heads, ctx_cap) f32

  AttentionKArgs k{a.num_tokens, a.num_seqs, a.num_heads, a.num_kv_heads, a.head_dim, a.block_size,
                   a.max_blocks_per_seq, a.num_blocks, static_cast<int32_t>(ctx_cap), a.scale};
  const GpuSize grid{static_cast<uint32_t>(H), static_cast<uint32_t>(T), 1};
  encode(kernel_name(Op::Attention, "scores", a.cache_dtype), &k, sizeof k, {scores, q, kc, bt, qs, sl, pos}, grid,
         {SCORE_THREADS, 1, 1});
  encode(kernel_name(Op::Attention, "softmax", DType::F32), &k, sizeof k, {scores, qs, sl, pos}, grid,
         {LONGBOW_ROW_THREADS, 1, 1});
  const uint32_t value_threads = static_cast<uint32_t>((D + 31) / 32 * 32);
  encode(kernel_name(Op::Attention, "values", a.cache_dtype), &k, sizeof k, {out, scores, vc, bt, qs, sl, pos}, grid,
         {value_threads, 1, 1});
}

}  // namespace longbow::metal
