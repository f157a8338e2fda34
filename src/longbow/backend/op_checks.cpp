#include "longbow/backend/op_checks.h"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <stdexcept>

#include "longbow/core/check.h"

namespace longbow {

const char* op_family_name(Op op) {
  switch (op) {
    case Op::Embed: return "embed";
    case Op::RmsNorm: return "rms_norm";
    case Op::Matmul: return "matmul";
    case Op::Rope: return "rope";
    case Op::KvWrite: return "kv_write";
    case Op::Attention: return "attention";
    case Op::Glu: return "glu";
    case Op::Softcap: return "softcap";
    case Op::Add: return "add";
    case Op::GetRows: return "get_rows";
    case Op::Sample: return "sample";
    case Op::CopyBlocks: return "copy_blocks";
  }
  throw std::invalid_argument("[backend] expected a known op, found " +
                              std::to_string(static_cast<int>(op)));
}

bool kernel_set_supports(Op op, DType dtype) {
  switch (op) {
    case Op::Matmul:
    case Op::Embed:
      return dtype == DType::F32 || dtype == DType::F16 || dtype == DType::BF16 ||
             dtype == DType::Q8_0 || dtype == DType::Q4_0 || dtype == DType::Q4_1;
    case Op::KvWrite:
    case Op::Attention:
      return dtype == DType::F32 || dtype == DType::F16 || is_kv_block_dtype(dtype);
    case Op::CopyBlocks: return dtype == DType::F32 || dtype == DType::F16;
    case Op::RmsNorm:
    case Op::Rope:
    case Op::Glu:
    case Op::Add:
    case Op::Softcap:
    case Op::GetRows:
    case Op::Sample: return dtype == DType::F32;
  }
  return false;
}

void check_matmul_sizes(const MatmulArgs& a, const std::string& where) {
  require(a.M >= 0 && a.N >= 0 && a.K >= 0, where,
          "expected non-negative M, N, K, found " + std::to_string(a.M) + ", " +
              std::to_string(a.N) + ", " + std::to_string(a.K));
}

void check_rope_sizes(const RopeArgs& a, const std::string& where) {
  require(a.num_tokens >= 0 && a.num_heads >= 0 && a.num_kv_heads >= 0 && a.head_dim > 0, where,
          "expected non-negative sizes and head_dim > 0, found num_tokens=" +
              std::to_string(a.num_tokens) + " num_heads=" + std::to_string(a.num_heads) +
              " num_kv_heads=" + std::to_string(a.num_kv_heads) +
              " head_dim=" + std::to_string(a.head_dim));
  require(a.rot_dim > 0 && a.rot_dim % 2 == 0 && a.rot_dim <= a.head_dim, where,
          "expected an even rot_dim in (0, head_dim=" + std::to_string(a.head_dim) + "], found " +
              std::to_string(a.rot_dim));
}

bool is_kv_block_dtype(DType t) { return t == DType::Q8_0 || t == DType::Q4_0 || t == DType::Q4_1; }

void check_kv_dtype(DType t, int head_dim, const std::string& where) {
  if (t == DType::F32 || t == DType::F16) return;
  if (!is_kv_block_dtype(t)) {
    throw std::invalid_argument("[" + where +
                                "] expected a KV cache type f32, f16, q8_0, q4_0 or q4_1, found " +
                                dtype_name(t));
  }
  if (head_dim % QK != 0) {
    throw std::invalid_argument("[" + where + "] a " + dtype_name(t) +
                                " KV cache needs head_dim a multiple of " + std::to_string(QK) +
                                ", found " + std::to_string(head_dim));
  }
}

size_t kv_row_bytes(DType t, int head_dim) { return dtype_row_bytes(t, head_dim); }

DType kv_dtype_from_name(const std::string& name, const std::string& where) {
  if (name == "q8") return DType::Q8_0;
  if (name == "q4") return DType::Q4_1;
  return dtype_from_name(name, where.c_str());
}

KvDtypes kv_dtypes_from_names(const std::string& kv_dtype, const std::string& k_dtype,
                              const std::string& v_dtype, const std::string& where) {
  return {kv_dtype_from_name(k_dtype.empty() ? kv_dtype : k_dtype,
                             where + (k_dtype.empty() ? " kv_dtype" : " k_dtype")),
          kv_dtype_from_name(v_dtype.empty() ? kv_dtype : v_dtype,
                             where + (v_dtype.empty() ? " kv_dtype" : " v_dtype"))};
}

void check_attention_sizes(const AttentionArgs& a, const std::string& where) {
  require(a.num_tokens >= 0 && a.num_seqs >= 0 && a.head_dim > 0 && a.block_size > 0 &&
              a.num_kv_heads > 0 && a.num_heads >= 0 && a.num_blocks >= 0 &&
              a.max_blocks_per_seq >= 0,
          where, "expected non-negative sizes, positive head_dim, block_size and num_kv_heads");
  require(a.num_heads % a.num_kv_heads == 0, where,
          "expected num_heads a multiple of num_kv_heads, found " + std::to_string(a.num_heads) +
              " and " + std::to_string(a.num_kv_heads));
  check_attention_options(a, where.c_str());
}

void check_attention_options(const AttentionArgs& a, const char* where) {
  if (a.sliding_window < 0) {
    throw std::invalid_argument(std::string("[") + where +
                                "] sliding_window: expected >= 0 (0 = off), found " +
                                std::to_string(a.sliding_window));
  }
  if (!(std::isfinite(a.logit_softcap) && a.logit_softcap >= 0.0f)) {
    std::ostringstream found;
    found << a.logit_softcap;
    throw std::invalid_argument(std::string("[") + where +
                                "] logit_softcap: expected a finite value >= 0 (0 = off), found " +
                                found.str());
  }
}

void check_matmul_group(std::span<const MatmulArgs> parts, const std::string& where) {
  for (size_t i = 1; i < parts.size(); ++i) {
    const MatmulArgs& a = parts[0];
    const MatmulArgs& b = parts[i];
    if (b.x.buffer != a.x.buffer || b.x.offset != a.x.offset || b.M != a.M || b.K != a.K) {
      throw std::invalid_argument(
          "[" + where + "] part " + std::to_string(i) +
          ": expected the x view, M and K of part 0 (M=" + std::to_string(a.M) + ", K=" +
          std::to_string(a.K) + "), found M=" + std::to_string(b.M) + ", K=" + std::to_string(b.K) +
          (b.x.buffer != a.x.buffer || b.x.offset != a.x.offset ? " and another x" : ""));
    }
  }
  // Parts may run in any order or all at once: none may write where x is read.
  for (size_t i = 0; i < parts.size(); ++i) {
    const MatmulArgs& p = parts[i];
    const size_t x0 = p.x.offset,
                 x1 = x0 + static_cast<size_t>(std::max(p.M, 0)) * std::max(p.K, 0) * sizeof(float);
    const size_t o0 = p.out.offset,
                 o1 = o0 + static_cast<size_t>(std::max(p.M, 0)) * std::max(p.N, 0) * sizeof(float);
    if (p.out.buffer != nullptr && p.out.buffer == p.x.buffer && o0 < x1 && x0 < o1) {
      throw std::invalid_argument("[" + where + "] part " + std::to_string(i) + ": out overlaps x");
    }
  }
}

}  // namespace longbow
