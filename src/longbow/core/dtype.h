// Element types of weights, activations and the KV cache, and the GGUF block layouts.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace longbow {

// Block formats follow GGUF (ggml) byte layouts exactly so files can be mmap'ed and read in place.
enum class DType : uint8_t {
  F32 = 0,
  F16 = 1,
  BF16 = 2,
  Q8_0 = 3,  // block of 32: f16 d; int8 qs[32]                 x = d * q
  Q4_0 = 4,  // block of 32: f16 d; uint8 qs[16]  (lo nibbles = elements 0..15, hi = 16..31)  x = d * (q - 8)
  Q4_1 = 5,  // block of 32: f16 d; f16 m; uint8 qs[16] (same nibble order)               x = d * q + m
  I32 = 6,   // token ids, positions, tables
  I8 = 7,    // quantized KV cache (issue: KV quantization)
};

constexpr int QK = 32;  // elements per quantized block

struct BlockQ8_0 {
  uint16_t d;  // f16 bits
  int8_t qs[QK];
};
struct BlockQ4_0 {
  uint16_t d;
  uint8_t qs[QK / 2];
};
struct BlockQ4_1 {
  uint16_t d;
  uint16_t m;
  uint8_t qs[QK / 2];
};
static_assert(sizeof(BlockQ8_0) == 34 && sizeof(BlockQ4_0) == 18 && sizeof(BlockQ4_1) == 20);

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
