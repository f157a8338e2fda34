// Built with -ffp-contract=off (src/CMakeLists.txt): a fused multiply-add would round differently
// from the reference quantizers and change the bits.
#include "longbow/core/quantize.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

namespace longbow {

namespace {

// Round half away from zero (C roundf), as ggml does.
int8_t round_away(float v) { return static_cast<int8_t>(std::round(v)); }

void quantize_block_q8_0(const float* x, BlockQ8_0* y) {
  float amax = 0.0f;
  for (int j = 0; j < QK; ++j) amax = std::max(amax, std::fabs(x[j]));
  const float d = amax / 127.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  y->d = f32_to_f16(d);
  for (int j = 0; j < QK; ++j) y->qs[j] = round_away(x[j] * id);
}

// v (>= 0 here) truncated and clipped to 15; callers add the reference's rounding offset.
uint8_t nibble(float v) { return static_cast<uint8_t>(std::min(static_cast<int>(v), 15)); }

void pack_nibbles(const uint8_t* q, uint8_t* qs) {
  for (int j = 0; j < QK / 2; ++j) qs[j] = static_cast<uint8_t>(q[j] | (q[j + QK / 2] << 4));
}

void quantize_block_q4_0(const float* x, BlockQ4_0* y) {
  float amax = 0.0f, max = 0.0f;  // max: the element of largest magnitude, with its sign
  for (int j = 0; j < QK; ++j) {
    if (std::fabs(x[j]) > amax) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  }
  const float d = max / -8.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  y->d = f32_to_f16(d);
  uint8_t q[QK];
  for (int j = 0; j < QK; ++j) q[j] = nibble(x[j] * id + 8.5f);
  pack_nibbles(q, y->qs);
}

void quantize_block_q4_1(const float* x, BlockQ4_1* y) {
  float min = x[0], max = x[0];
  for (int j = 1; j < QK; ++j) {
    min = std::min(min, x[j]);
    max = std::max(max, x[j]);
  }
  const float d = (max - min) / 15.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  y->d = f32_to_f16(d);
  y->m = f32_to_f16(min);
  uint8_t q[QK];
  for (int j = 0; j < QK; ++j) q[j] = nibble((x[j] - min) * id + 0.5f);
  pack_nibbles(q, y->qs);
}

template <typename Block, void (*quantize_block)(const float*, Block*)>
void quantize_blocks(const float* x, int64_t n, uint8_t* dst) {
  for (int64_t b = 0; b < n / QK; ++b) {
    Block blk;
    quantize_block(x + b * QK, &blk);
    std::memcpy(dst + b * sizeof(Block), &blk, sizeof(Block));
  }
}

}  // namespace

bool dtype_is_float(DType t) { return t == DType::F32 || t == DType::F16 || t == DType::BF16; }

void float_row_to_f32(const uint8_t* src, DType t, int64_t n, float* dst) {
  for (int64_t i = 0; i < n; ++i) {
    uint16_t h;
    switch (t) {
      case DType::F32: std::memcpy(&dst[i], src + 4 * i, 4); break;
      case DType::F16:
        std::memcpy(&h, src + 2 * i, 2);
        dst[i] = f16_to_f32(h);
        break;
      case DType::BF16:
        std::memcpy(&h, src + 2 * i, 2);
        dst[i] = bf16_to_f32(h);
        break;
      default:
        throw std::invalid_argument(std::string("[dtype] float_row_to_f32: expected f32, f16 or "
                                                "bf16, found ") +
                                    dtype_name(t));
    }
  }
}

void quantize_row(const float* x, int64_t n, DType to, uint8_t* dst) {
  dtype_row_bytes(to, n);  // throws unless n is a multiple of the block
  switch (to) {
    case DType::Q8_0: quantize_blocks<BlockQ8_0, quantize_block_q8_0>(x, n, dst); break;
    case DType::Q4_0: quantize_blocks<BlockQ4_0, quantize_block_q4_0>(x, n, dst); break;
    case DType::Q4_1: quantize_blocks<BlockQ4_1, quantize_block_q4_1>(x, n, dst); break;
    default:
      throw std::invalid_argument(std::string("[dtype] quantize_row: expected q8_0, q4_0 or "
                                              "q4_1, found ") +
                                  dtype_name(to));
  }
}

}  // namespace longbow
