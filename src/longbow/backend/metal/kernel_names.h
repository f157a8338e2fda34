// Kernel host names: `<op>[_<variant>]_<type>` (STYLE.md). The host asks for kernels only through
// kernel_name(); all_kernel_names() lists every name it can request (tests check they exist).
#pragma once

#include <string>
#include <vector>

#include "longbow/backend/backend.h"

namespace longbow::metal {

// "matmul", "rms_norm", ... as used in kernel names.
const char* op_kernel_prefix(Op op);
// `<op>[_<variant>]_<type>`; variant may be empty. type is a dtype name ("f32", "q4_1") or a
// storage word ("u32", "u8").
std::string kernel_name(Op op, const std::string& variant, const std::string& type);
std::string kernel_name(Op op, const std::string& variant, DType dtype);
// Every name the Metal host code can request, sorted.
// Kernel variant of the gated activation: "silu" or "gelu_tanh".
const char* glu_variant(Activation act);
std::vector<std::string> all_kernel_names();

}  // namespace longbow::metal
