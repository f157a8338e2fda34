// The one place kernel host names are made; all_kernel_names() mirrors the choices the op
// encoders make (metal_ops.cpp, metal_attention.cpp, metal_sample.cpp).
#include "longbow/backend/metal/kernel_names.h"

#include "longbow/backend/op_checks.h"

#include <algorithm>
#include <stdexcept>

namespace longbow::metal {

const char* op_kernel_prefix(Op op) { return op_family_name(op); }

std::string kernel_name(Op op, const std::string& variant, const std::string& type) {
  std::string name = op_kernel_prefix(op);
  if (!variant.empty()) name += "_" + variant;
  return name + "_" + type;
}

std::string kernel_name(Op op, const std::string& variant, DType dtype) {
  return kernel_name(op, variant, std::string(dtype_name(dtype)));
}

const char* glu_variant(Activation act) { return act == Activation::Silu ? "silu" : "gelu_tanh"; }

std::vector<std::string> all_kernel_names() {
  const DType weight_types[] = {DType::F32, DType::F16, DType::BF16, DType::Q8_0, DType::Q4_0, DType::Q4_1};
  const DType cache_types[] = {DType::F32, DType::F16};
  std::vector<std::string> names;
  for (DType t : weight_types) {
    names.push_back(kernel_name(Op::Embed, "", t));
    names.push_back(kernel_name(Op::Matmul, "mv", t));
    names.push_back(kernel_name(Op::Matmul, "tiled", t));
  }
  for (DType t : cache_types) {
    names.push_back(kernel_name(Op::KvWrite, "", t));
    names.push_back(kernel_name(Op::Attention, "scores", t));
    names.push_back(kernel_name(Op::Attention, "values", t));
    for (const char* softcap : {"", "_softcap"}) {
      names.push_back(kernel_name(Op::Attention, std::string("decode_fused") + softcap, t));
      names.push_back(kernel_name(Op::Attention, std::string("decode_stage1") + softcap, t));
      for (const char* window : {"", "_window"}) {
        names.push_back(kernel_name(Op::Attention, std::string("flash_prefill") + window + softcap, t));
      }
    }
  }
  names.push_back(kernel_name(Op::Attention, "softmax", DType::F32));
  names.push_back(kernel_name(Op::Attention, "decode_merge", DType::F32));
  names.push_back(kernel_name(Op::RmsNorm, "", DType::F32));
  names.push_back(kernel_name(Op::Rope, "", DType::F32));
  for (Activation act : {Activation::Silu, Activation::GeluTanh}) names.push_back(kernel_name(Op::Glu, glu_variant(act), DType::F32));
  names.push_back(kernel_name(Op::Softcap, "", DType::F32));
  names.push_back(kernel_name(Op::Add, "", DType::F32));
  names.push_back(kernel_name(Op::GetRows, "", DType::F32));
  names.push_back(kernel_name(Op::Sample, "", DType::F32));
  names.push_back(kernel_name(Op::CopyBlocks, "", "u32"));
  names.push_back(kernel_name(Op::CopyBlocks, "", "u8"));
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace longbow::metal
