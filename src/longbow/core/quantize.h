// Float rows to GGUF block rows, bit-exact with ggml's reference quantizers (and gguf-py's), so a
// weight quantized at load time equals the same weight in a file quantized by llama.cpp.
#pragma once

#include <cstdint>

#include "longbow/core/dtype.h"

namespace longbow {

// f32, f16 or bf16.
bool dtype_is_float(DType t);
// dst (n,) f32 = src, a row of n elements stored as t (a float dtype).
void float_row_to_f32(const uint8_t* src, DType t, int64_t n, float* dst);
// dst (dtype_row_bytes(to, n) bytes) = x (n,) as blocks of `to` (q8_0, q4_0 or q4_1);
// n a multiple of QK.
void quantize_row(const float* x, int64_t n, DType to, uint8_t* dst);

}  // namespace longbow
