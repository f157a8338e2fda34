// Backend-independent pieces every backend shares: op family names, the (op, dtype) table of
// the kernel set, and the size checks of op arguments (before any view is bound).
#pragma once

#include <span>
#include <string>

#include "longbow/backend/backend.h"

namespace longbow {

// "matmul", "rms_norm", ... (the `<op>` of kernel names and of error messages).
const char* op_family_name(Op op);
// The (op, dtype) pairs of the shared kernel set: weights in every dtype for matmul/embed,
// f16/f32 and the block types (is_kv_block_dtype) for the KV cache, f32 activations elsewhere. A
// backend's supports() may narrow it.
bool kernel_set_supports(Op op, DType dtype);
// KV cache element types: f32 and f16, and the block types q8_0, q4_0, q4_1 (core/quant_blocks.h:
// 32 values along head_dim per block, per token and kv head). The rule lives here once.
bool is_kv_block_dtype(DType t);
// Throws std::invalid_argument("[where] ...") unless t is a KV cache type and head_dim suits it
// (a multiple of 32 for the block types).
void check_kv_dtype(DType t, int head_dim, const std::string& where);
// A KV cache type by name: a dtype name (f16, f32, q8_0, q4_0, q4_1), or "q8" (q8_0) and "q4"
// (q4_1: the affine 4-bit type, which measured 11.8 % perplexity loss against q4_0's 23.8 % on the
// default model at ctx 512). Throws std::invalid_argument naming `where` for an unknown name.
DType kv_dtype_from_name(const std::string& name, const std::string& where);
// The (K, V) cache types of the settings kv_dtype (both), k_dtype and v_dtype (each overrides
// kv_dtype for its plane when not empty): the one rule for the bindings, the C++ API and the CLI.
struct KvDtypes {
  DType k, v;
};
KvDtypes kv_dtypes_from_names(const std::string& kv_dtype, const std::string& k_dtype,
                              const std::string& v_dtype, const std::string& where);
// Bytes of one (slot, kv head) row of head_dim values in t.
size_t kv_row_bytes(DType t, int head_dim);
// Throw std::invalid_argument("[where] expected ..., found ...") for sizes no kernel can take.
void check_matmul_sizes(const MatmulArgs& a, const std::string& where);
// Every part of a matmul_group reads part 0's x view with its M and K.
void check_matmul_group(std::span<const MatmulArgs> parts, const std::string& where);
void check_rope_sizes(const RopeArgs& a, const std::string& where);
// Sizes, then check_attention_options.
void check_attention_sizes(const AttentionArgs& a, const std::string& where);
// sliding_window >= 0 and a finite logit_softcap >= 0 (0 = off for both); no string work unless
// one is bad (the CPU backend calls it on every attention op).
void check_attention_options(const AttentionArgs& a, const char* where);

}  // namespace longbow
