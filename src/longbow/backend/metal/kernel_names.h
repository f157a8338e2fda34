// Kernel host names: `<op>[_<variant>]_<type>` (STYLE.md). Every kernel family is written once,
// in the kernel table of kernel_names.cpp (op, variant, the types it is built for): the encoders
// ask kernel_name() for a name, which must be in the table, and all_kernel_names() enumerates it.
// tests/test_kernel_names.py checks the table against the kernels of metal/*.metal both ways.
#pragma once

#include <string>
#include <vector>

#include "longbow/backend/backend.h"

namespace longbow::metal {

// "matmul", "rms_norm", ... as used in kernel names.
const char* op_kernel_prefix(Op op);
// `<op>[_<variant>]_<type>`; variant may be empty. type is a dtype name ("f32", "q4_1") or a
// storage word ("u32", "u8"). std::invalid_argument when the kernel table has no such kernel.
std::string kernel_name(Op op, const std::string& variant, const std::string& type);
std::string kernel_name(Op op, const std::string& variant, DType dtype);
// Kernel variant of the gated activation: "silu" or "gelu_tanh".
const char* glu_variant(Activation act);
// Every name in the kernel table, sorted.
std::vector<std::string> all_kernel_names();

}  // namespace longbow::metal
