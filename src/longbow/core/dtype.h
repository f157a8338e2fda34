// Element types of weights, activations and the KV cache, and the GGUF block layouts.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "quant_blocks.h"

namespace longbow {

// Block formats follow GGUF (ggml) byte layouts exactly so files can be mmap'ed and read in place;
// the block structs (BlockQ8_0, BlockQ4_0, BlockQ4_1) and QK live in metal/quant_blocks.h, shared
// with the kernels.
enum class DType : uint8_t {
  F32 = 0,
  F16 = 1,
  BF16 = 2,
  Q8_0 = 3,  // BlockQ8_0
  Q4_0 = 4,  // BlockQ4_0
  Q4_1 = 5,  // BlockQ4_1
  I32 = 6,   // token ids, positions, tables
  I8 = 7,    // quantized KV cache (issue: KV quantization)
};
constexpr int NUM_DTYPES = 8;  // codes 0 .. NUM_DTYPES - 1

// Elements per block (1 for plain types).
int dtype_block_elems(DType t);
// Bytes per block (element size for plain types).
int dtype_block_bytes(DType t);
bool dtype_is_quantized(DType t);
const char* dtype_name(DType t);
// Parses "f32", "F16", "q4_1", ... ; throws std::invalid_argument naming `where` on failure.
DType dtype_from_name(const std::string& name, const char* where);
// Bytes of a row of n elements; throws std::invalid_argument if n is not a multiple of the block.
size_t dtype_row_bytes(DType t, int64_t n);

// Scalar conversions (IEEE half, bfloat16 round-to-nearest-even).
float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);
float bf16_to_f32(uint16_t h);
uint16_t f32_to_bf16(float f);

}  // namespace longbow
