// Paged causal attention, split baseline: for each (token, head) compute all scores q·k over the
// sequence's keys 0..pos (window_begin..pos with a sliding window), soft-capped when asked, a
// max-subtracted softmax, then the weighted sum of V. The reference the fused-decode and
// flash-prefill variants are checked against.
#include <algorithm>
#include <cmath>
#include <string>

#include "longbow/backend/cpu/cpu_ops.h"
#include "longbow/backend/op_checks.h"

namespace longbow::cpu {

namespace {
// Checks the varlen batch description; returns the longest context.
int validate(const AttentionArgs& a, const int32_t* qs, const int32_t* lens, const int32_t* pos,
             const int32_t* bt, int32_t* token_seq) {
  const char* where = "cpu.attention";
  require(qs[0] == 0 && qs[a.num_seqs] == a.num_tokens, where, [&] {
    return "query_start: expected to run from 0 to num_tokens=" + std::to_string(a.num_tokens) +
           ", found " + std::to_string(qs[0]) + " .. " + std::to_string(qs[a.num_seqs]);
  });
  int max_ctx = 0;
  for (int s = 0; s < a.num_seqs; ++s) {
    require(qs[s + 1] >= qs[s], where, [&] {
      return "query_start: expected non-decreasing, found a decrease at sequence " +
             std::to_string(s);
    });
    const int len = lens[s];
    require(len >= 0 && len <= a.max_blocks_per_seq * a.block_size, where, [&] {
      return "seq_lens[" + std::to_string(s) +
             "]: expected 0 <= len <= max_blocks_per_seq * block_size = " +
             std::to_string(a.max_blocks_per_seq * a.block_size) + ", found " + std::to_string(len);
    });
    for (int j = 0; j < (len + a.block_size - 1) / a.block_size; ++j) {
      const int blk = bt[static_cast<size_t>(s) * a.max_blocks_per_seq + j];
      require(blk >= 0 && blk < a.num_blocks, where, [&] {
        return "block_tables[" + std::to_string(s) + ", " + std::to_string(j) +
               "]: expected a block id in [0, " + std::to_string(a.num_blocks) + "), found " +
               std::to_string(blk);
      });
    }
    for (int t = qs[s]; t < qs[s + 1]; ++t) {
      require(pos[t] >= 0 && pos[t] < len, where, [&] {
        return "positions[" + std::to_string(t) +
               "]: expected 0 <= pos < seq_len=" + std::to_string(len) + ", found " +
               std::to_string(pos[t]);
      });
      token_seq[t] = s;
    }
    max_ctx = std::max(max_ctx, len);
  }
  return max_ctx;
}
}  // namespace

void op_attention_split(Ctx& c, const AttentionArgs& a) {
  const char* where = "cpu.attention";
  require(a.num_tokens >= 0 && a.num_seqs >= 0 && a.head_dim > 0 && a.block_size > 0 &&
              a.num_kv_heads > 0 && a.num_heads >= 0 && a.num_blocks >= 0 &&
              a.max_blocks_per_seq >= 0,
          where, "expected non-negative sizes, positive head_dim, block_size and num_kv_heads");
  require(a.num_heads % a.num_kv_heads == 0, where, [&] {
    return "expected num_heads a multiple of num_kv_heads, found " + std::to_string(a.num_heads) +
           " and " + std::to_string(a.num_kv_heads);
  });
  check_attention_options(a, where);
  check_kv_dtype(a.k_dtype, a.head_dim, std::string(where) + " k_cache");
  check_kv_dtype(a.v_dtype, a.head_dim, std::string(where) + " v_cache");
  const size_t T = a.num_tokens, H = a.num_heads, Hkv = a.num_kv_heads, D = a.head_dim;
  // One (slot, kv head) row of K / V; a plane is (num_blocks, block_size, num_kv_heads) rows.
  const size_t k_row_bytes = kv_row_bytes(a.k_dtype, a.head_dim),
               v_row_bytes = kv_row_bytes(a.v_dtype, a.head_dim);
  const size_t slots = static_cast<size_t>(a.num_blocks) * a.block_size * Hkv;
  float* out = view_as<float>(a.out, T * H * D, where, "out");  // (num_tokens, num_heads, head_dim)
  const float* q =
      view_as<const float>(a.q, T * H * D, where, "q");  // (num_tokens, num_heads, head_dim)
  // (num_blocks, block_size, num_kv_heads) rows of head_dim values in k_dtype / v_dtype
  const auto* kc =
      static_cast<const uint8_t*>(view_ptr(a.k_cache, slots * k_row_bytes, where, "k_cache"));
  const auto* vc =
      static_cast<const uint8_t*>(view_ptr(a.v_cache, slots * v_row_bytes, where, "v_cache"));
  const int32_t* bt =
      view_as<const int32_t>(a.block_tables, static_cast<size_t>(a.num_seqs) * a.max_blocks_per_seq,
                             where, "block_tables");  // (num_seqs, max_blocks_per_seq)
  const int32_t* qs =
      view_as<const int32_t>(a.query_start, a.num_seqs + 1, where, "query_start");  // (num_seqs+1,)
  const int32_t* lens =
      view_as<const int32_t>(a.seq_lens, a.num_seqs, where, "seq_lens");            // (num_seqs,)
  const int32_t* pos = view_as<const int32_t>(a.positions, T, where, "positions");  // (num_tokens,)
  if (T == 0 || H == 0) return;

  c.scratch.token_seq.resize(T);
  int32_t* token_seq = c.scratch.token_seq.data();  // (num_tokens,)
  const int max_ctx = validate(a, qs, lens, pos, bt, token_seq);
  c.scratch.ensure(c.pool.num_threads(), static_cast<size_t>(max_ctx) + 2 * D);

  const RowKernels& kern = row_kernels();
  const size_t group = H / Hkv;

  c.pool.parallel_for(static_cast<int64_t>(T * H), [&](int64_t b, int64_t e, int thread_idx) {
    float* scores = c.scratch.f32[thread_idx].data();  // (max_ctx,)
    float* row = scores + max_ctx;                     // (head_dim,) dequantized K or V row
    float* acc = row + D;                              // (head_dim,)
    for (int64_t item = b; item < e; ++item) {
      const size_t t = item / H, h = item % H, kvh = h / group;
      const int s = token_seq[t];
      const int num_keys = pos[t] + 1;
      const int first =
          a.sliding_window > 0 ? std::max(0, pos[t] - a.sliding_window + 1) : 0;  // window start
      const int32_t* table = bt + static_cast<size_t>(s) * a.max_blocks_per_seq;
      const float* qv = q + (t * H + h) * D;
      // Key / value row j of this kv head, dequantized unless f32.
      auto load = [&](const uint8_t* cache, DType type, size_t row_bytes, int j) -> const float* {
        const size_t slot =
            static_cast<size_t>(table[j / a.block_size]) * a.block_size + j % a.block_size;
        const uint8_t* src = cache + (slot * Hkv + kvh) * row_bytes;
        if (type == DType::F32) return reinterpret_cast<const float*>(src);
        kern.dequant_row(type, src, row, a.head_dim);
        return row;
      };
      float max_score = -INFINITY;
      for (int j = first; j < num_keys; ++j) {
        scores[j] = kern.dot(qv, load(kc, a.k_dtype, k_row_bytes, j), a.head_dim) * a.scale;
        max_score = std::max(max_score, scores[j]);
      }
      if (a.logit_softcap > 0.0f) {
        const float cap = a.logit_softcap;
        max_score = -INFINITY;
        for (int j = first; j < num_keys; ++j) {
          scores[j] = cap * std::tanh(scores[j] / cap);
          max_score = std::max(max_score, scores[j]);
        }
      }
      double denom = 0.0;
      for (int j = first; j < num_keys; ++j) {
        scores[j] = std::exp(scores[j] - max_score);
        denom += scores[j];
      }
      std::fill(acc, acc + D, 0.0f);
      for (int j = first; j < num_keys; ++j)
        kern.axpy(scores[j], load(vc, a.v_dtype, v_row_bytes, j), acc, a.head_dim);
      const float inv = static_cast<float>(1.0 / denom);
      float* o = out + (t * H + h) * D;
      for (size_t i = 0; i < D; ++i) o[i] = acc[i] * inv;
    }
  });
}

}  // namespace longbow::cpu
