// Shared CPU attention helpers: argument validation into an AttnBatch, the portable scalar tile
// kernels and the run-time choice between them and the AVX2 ones (attention_kernels_avx2.cpp).
#include "longbow/backend/cpu/attention/attention_common.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "longbow/backend/cpu/simd/cpu_features.h"
#include "longbow/backend/op_checks.h"
#include "longbow/core/dtype.h"

namespace longbow::cpu {

namespace {
const char* WHERE = "cpu.attention";

void validate_batch(AttnBatch& b) {
  const int32_t* qs = b.query_start;
  require(qs[0] == 0 && qs[b.num_seqs] == b.num_tokens, WHERE, [&] {
    return "query_start: expected to run from 0 to num_tokens=" + std::to_string(b.num_tokens) +
           ", found " + std::to_string(qs[0]) + " .. " + std::to_string(qs[b.num_seqs]);
  });
  for (int s = 0; s < b.num_seqs; ++s) {
    require(qs[s + 1] >= qs[s], WHERE, [&] {
      return "query_start: expected non-decreasing, found a decrease at sequence " +
             std::to_string(s);
    });
    const int len = b.seq_lens[s];
    require(len >= 0 && len <= b.max_blocks_per_seq * b.block_size, WHERE, [&] {
      return "seq_lens[" + std::to_string(s) +
             "]: expected 0 <= len <= max_blocks_per_seq * block_size = " +
             std::to_string(b.max_blocks_per_seq * b.block_size) + ", found " + std::to_string(len);
    });
    for (int j = 0; j < (len + b.block_size - 1) / b.block_size; ++j) {
      const int blk = b.block_tables[static_cast<size_t>(s) * b.max_blocks_per_seq + j];
      require(blk >= 0 && blk < b.num_blocks, WHERE, [&] {
        return "block_tables[" + std::to_string(s) + ", " + std::to_string(j) +
               "]: expected a block id in [0, " + std::to_string(b.num_blocks) + "), found " +
               std::to_string(blk);
      });
    }
    for (int t = qs[s]; t < qs[s + 1]; ++t) {
      const int p = b.positions[t];
      require(p >= 0 && p < len, WHERE, [&] {
        return "positions[" + std::to_string(t) +
               "]: expected 0 <= pos < seq_len=" + std::to_string(len) + ", found " +
               std::to_string(p);
      });
    }
    b.max_ctx = std::max(b.max_ctx, len);
  }
}

// ---- portable scalar kernels ----

inline float load_elem(const void* base, size_t i, bool f16) {
  return f16 ? f16_to_f32(static_cast<const uint16_t*>(base)[i])
             : static_cast<const float*>(base)[i];
}

void scalar_scores(const float* q, int rows, int head_dim, const void* k, size_t k_stride, int nk,
                   bool f16, float* s, int s_stride) {
  for (int j = 0; j < nk; ++j) {
    for (int r = 0; r < rows; ++r) {
      const float* qr = q + static_cast<size_t>(r) * head_dim;
      float acc = 0.0f;
      for (int d = 0; d < head_dim; ++d) acc += qr[d] * load_elem(k, j * k_stride + d, f16);
      s[static_cast<size_t>(r) * s_stride + j] = acc;
    }
  }
}

void scalar_values(const float* p, int p_stride, int rows, int head_dim, const void* v,
                   size_t v_stride, int nk, bool f16, float* acc) {
  for (int j = 0; j < nk; ++j) {
    for (int r = 0; r < rows; ++r) {
      const float w = p[static_cast<size_t>(r) * p_stride + j];
      if (w == 0.0f) continue;
      float* o = acc + static_cast<size_t>(r) * head_dim;
      for (int d = 0; d < head_dim; ++d) o[d] += w * load_elem(v, j * v_stride + d, f16);
    }
  }
}

float scalar_exp_sum(float* x, int n, float m) {
  float sum = 0.0f;
  for (int i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - m);
    sum += x[i];
  }
  return sum;
}

float scalar_row_max(const float* x, int n) {
  float m = x[0];
  for (int i = 1; i < n; ++i) m = std::max(m, x[i]);
  return m;
}

const AttnKernels SCALAR = {"scalar", scalar_scores, scalar_values, scalar_exp_sum, scalar_row_max,
                            nullptr,  nullptr,       nullptr,       nullptr};

const AttnKernels& choose() {
  const CpuIsa& isa = cpu_isa();
  if (isa.avx512 && attn_avx512_kernels() != nullptr) return *attn_avx512_kernels();
  if (isa.avx2 && attn_avx2_kernels() != nullptr) return *attn_avx2_kernels();
  return SCALAR;
}
}  // namespace

AttnBatch parse_attention(const AttentionArgs& a) {
  require(a.num_tokens >= 0 && a.num_seqs >= 0 && a.head_dim > 0 && a.block_size > 0 &&
              a.num_kv_heads > 0 && a.num_heads >= 0 && a.num_blocks >= 0 &&
              a.max_blocks_per_seq >= 0,
          WHERE, "expected non-negative sizes, positive head_dim, block_size and num_kv_heads");
  require(a.num_heads % a.num_kv_heads == 0, WHERE, [&] {
    return "expected num_heads a multiple of num_kv_heads, found " + std::to_string(a.num_heads) +
           " and " + std::to_string(a.num_kv_heads);
  });
  AttnBatch b;
  const size_t T = a.num_tokens, H = a.num_heads, D = a.head_dim;
  auto plane = [&](DType t, const BufView& view, const char* name) {
    check_kv_dtype(t, a.head_dim, std::string(WHERE) + " " + name);
    KvPlane p;
    p.type = t, p.f16 = t == DType::F16, p.staged = is_kv_block_dtype(t);
    require(!p.staged || a.head_dim <= ATTN_STAGE_MAX_DIM, WHERE, [&] {
      return std::string(name) + ": a " + dtype_name(t) +
             " KV cache needs head_dim <= " + std::to_string(ATTN_STAGE_MAX_DIM) + ", found " +
             std::to_string(a.head_dim);
    });
    p.row_bytes = kv_row_bytes(t, a.head_dim);
    const size_t cache_bytes =
        static_cast<size_t>(a.num_blocks) * a.block_size * a.num_kv_heads * p.row_bytes;
    p.cache = static_cast<const uint8_t*>(view_ptr(view, cache_bytes, WHERE, name));
    return p;
  };
  b.k = plane(a.k_dtype, a.k_cache, "k_cache");
  b.v = plane(a.v_dtype, a.v_cache, "v_cache");
  b.out = view_as<float>(a.out, T * H * D, WHERE, "out");
  b.q = view_as<const float>(a.q, T * H * D, WHERE, "q");
  b.block_tables =
      view_as<const int32_t>(a.block_tables, static_cast<size_t>(a.num_seqs) * a.max_blocks_per_seq,
                             WHERE, "block_tables");
  b.query_start = view_as<const int32_t>(a.query_start, a.num_seqs + 1, WHERE, "query_start");
  b.seq_lens = view_as<const int32_t>(a.seq_lens, a.num_seqs, WHERE, "seq_lens");
  b.positions = view_as<const int32_t>(a.positions, T, WHERE, "positions");
  if (!a.generated_seqs.empty()) {
    b.generated = view_as<const int32_t>(a.generated_seqs, a.num_seqs, WHERE, "generated_seqs");
  }
  b.num_tokens = a.num_tokens, b.num_seqs = a.num_seqs, b.num_heads = a.num_heads;
  b.num_kv_heads = a.num_kv_heads, b.head_dim = a.head_dim, b.group = a.num_heads / a.num_kv_heads;
  b.block_size = a.block_size, b.max_blocks_per_seq = a.max_blocks_per_seq,
  b.num_blocks = a.num_blocks;
  b.scale = a.scale;
  check_attention_options(a, WHERE);
  b.window = a.sliding_window, b.softcap = a.logit_softcap;
  if (T == 0 || H == 0) return b;
  validate_batch(b);
  return b;
}

const AttnKernels& attn_scalar_kernels() { return SCALAR; }

void kv_stage_rows(const AttnBatch& b, const KvPlane& p, int seq, int kvh, int j0, int nk,
                   float* dst) {
  const RowKernels& rk = row_kernels();
  const int D = b.head_dim;
  for (int j = j0; j < j0 + nk; ++j) {
    rk.dequant_row(p.type, b.row(p, seq, kvh, j), dst + static_cast<size_t>(j - j0) * D, D);
  }
}

void attn_block_scores(const AttnKernels& kern, const AttnBatch& b, const float* q, int rows,
                       int seq, int kvh, int j, int nk, float* s, int s_stride) {
  const int D = b.head_dim;
  if (!b.k.staged) {
    kern.scores(q, rows, D, b.row(b.k, seq, kvh, j), b.row_stride(), nk, b.k.f16, s, s_stride);
    return;
  }
  float k[ATTN_STAGE_MAX_DIM];  // one dequantized key row
  for (int i = 0; i < nk; ++i) {
    kv_stage_rows(b, b.k, seq, kvh, j + i, 1, k);
    kern.scores(q, rows, D, k, D, 1, false, s + i, s_stride);
  }
}

void attn_block_values(const AttnKernels& kern, const AttnBatch& b, const float* p, int p_stride,
                       int rows, int seq, int kvh, int j, int nk, float* acc) {
  const int D = b.head_dim;
  if (!b.v.staged) {
    kern.values(p, p_stride, rows, D, b.row(b.v, seq, kvh, j), b.row_stride(), nk, b.v.f16, acc);
    return;
  }
  float v[ATTN_STAGE_MAX_DIM];  // one dequantized value row
  for (int i = 0; i < nk; ++i) {
    kv_stage_rows(b, b.v, seq, kvh, j + i, 1, v);
    kern.values(p + i, p_stride, rows, D, v, D, 1, false, acc);
  }
}

const AttnKernels& attn_kernels() {
  static const AttnKernels& k = choose();
  return k;
}

#if !(defined(__x86_64__) || defined(__i386__))
const AttnKernels* attn_avx2_kernels() { return nullptr; }
#endif

}  // namespace longbow::cpu
