// The kernel table: each kernel family of metal/*.metal once, with the types it is built for. The
// op encoders (metal_ops.cpp, metal_attention.cpp, metal_sample.cpp) get every name through
// kernel_name(), which refuses a name the table does not hold.
#include "longbow/backend/metal/kernel_names.h"

#include "longbow/backend/op_checks.h"

#include <algorithm>
#include <stdexcept>

namespace longbow::metal {

const char* glu_variant(Activation act) { return act == Activation::Silu ? "silu" : "gelu_tanh"; }

namespace {

// A family's types: every dtype the shared kernel set allows for its op (kernel_set_supports in
// op_checks.cpp), or one fixed type.
constexpr const char* OP_DTYPES = nullptr;

struct KernelFamily {
  Op op;
  const char* variant;  // "" when the op has one kernel
  const char* type;     // OP_DTYPES or the family's one type
};

const KernelFamily KERNEL_TABLE[] = {
    {Op::Embed, "", OP_DTYPES},
    {Op::RmsNorm, "", OP_DTYPES},
    {Op::Matmul, "mv", OP_DTYPES},     // few rows of x (decode)
    {Op::Matmul, "tiled", OP_DTYPES},  // many rows (prefill)
    {Op::Rope, "", OP_DTYPES},
    {Op::Glu, glu_variant(Activation::Silu), OP_DTYPES},
    {Op::Glu, glu_variant(Activation::GeluTanh), OP_DTYPES},
    {Op::Add, "", OP_DTYPES},
    {Op::Softcap, "", OP_DTYPES},
    {Op::GetRows, "", OP_DTYPES},
    {Op::Sample, "", OP_DTYPES},
    {Op::KvWrite, "", OP_DTYPES},
    {Op::CopyBlocks, "", "u32"},  // whole blocks by 4-byte words when aligned, else by bytes
    {Op::CopyBlocks, "", "u8"},
    {Op::Attention, "scores", OP_DTYPES},  // split baseline: scores -> softmax -> values
    {Op::Attention, "softmax", "f32"},
    {Op::Attention, "values", OP_DTYPES},
    {Op::Attention, "decode_fused", OP_DTYPES},  // fused decode, flash-decoding splits merged after
    {Op::Attention, "decode_fused_softcap", OP_DTYPES},
    {Op::Attention, "decode_stage1", OP_DTYPES},
    {Op::Attention, "decode_stage1_softcap", OP_DTYPES},
    {Op::Attention, "decode_merge", "f32"},
    {Op::Attention, "flash_prefill", OP_DTYPES},  // FlashAttention-2 tiles
    {Op::Attention, "flash_prefill_softcap", OP_DTYPES},
    {Op::Attention, "flash_prefill_window", OP_DTYPES},
    {Op::Attention, "flash_prefill_window_softcap", OP_DTYPES},
};

// Whether family f is built for `type`.
bool family_has_type(const KernelFamily& f, const std::string& type) {
  if (f.type != OP_DTYPES) return type == f.type;
  for (int i = 0; i < NUM_DTYPES; ++i) {
    const auto t = static_cast<DType>(i);
    if (kernel_set_supports(f.op, t) && type == dtype_name(t)) return true;
  }
  return false;
}

std::string make_name(Op op, const char* variant, const std::string& type) {
  std::string name = op_kernel_prefix(op);
  if (*variant != '\0') name += std::string("_") + variant;
  return name + "_" + type;
}

}  // namespace

const char* op_kernel_prefix(Op op) { return op_family_name(op); }

std::string kernel_name(Op op, const std::string& variant, const std::string& type) {
  for (const KernelFamily& f : KERNEL_TABLE) {
    if (f.op == op && variant == f.variant && family_has_type(f, type))
      return make_name(op, f.variant, type);
  }
  throw std::invalid_argument(
      "[metal] kernel " + make_name(op, variant.c_str(), type) +
      ": expected a kernel of the kernel table (kernel_names.cpp), found none");
}

std::string kernel_name(Op op, const std::string& variant, DType dtype) {
  return kernel_name(op, variant, std::string(dtype_name(dtype)));
}

std::vector<std::string> all_kernel_names() {
  std::vector<std::string> names;
  for (const KernelFamily& f : KERNEL_TABLE) {
    if (f.type != OP_DTYPES) {
      names.push_back(make_name(f.op, f.variant, f.type));
      continue;
    }
    for (int i = 0; i < NUM_DTYPES; ++i) {
      const auto t = static_cast<DType>(i);
      if (kernel_set_supports(f.op, t)) names.push_back(make_name(f.op, f.variant, dtype_name(t)));
    }
  }
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace longbow::metal
