// GGUF (ggml) quantized block layouts, the one definition read by the host (core/dtype.h, the CPU
// backend) and by the kernels (metal/weights.h). Written in the subset common to MSL and C++, as
// kargs.h: the f16 scale is `half` in the kernels and its IEEE bits on the host.
#pragma once

#if defined(__METAL_VERSION__)
#include <metal_stdlib>
#define LONGBOW_QUANT_BEGIN
#define LONGBOW_QUANT_END
#else
#include <cstdint>
#define LONGBOW_QUANT_BEGIN namespace longbow {
#define LONGBOW_QUANT_END }
#endif

// Elements per quantized block.
#define LONGBOW_QK 32

LONGBOW_QUANT_BEGIN

#if defined(__METAL_VERSION__)
typedef half quant_f16;
#else
typedef uint16_t quant_f16;  // f16 bits (f16_to_f32 in core/dtype.h)
constexpr int QK = LONGBOW_QK;
#endif

// x[j] = d * qs[j]
struct BlockQ8_0 {
  quant_f16 d;
  int8_t qs[LONGBOW_QK];
};
// x[j] = d * (q[j] - 8); qs[j] holds element j in its low nibble and element j + 16 in its high.
struct BlockQ4_0 {
  quant_f16 d;
  uint8_t qs[LONGBOW_QK / 2];
};
// x[j] = d * q[j] + m; nibbles as Q4_0.
struct BlockQ4_1 {
  quant_f16 d;
  quant_f16 m;
  uint8_t qs[LONGBOW_QK / 2];
};

LONGBOW_QUANT_END

#if !defined(__METAL_VERSION__)
static_assert(sizeof(longbow::quant_f16) == 2);
static_assert(sizeof(longbow::BlockQ8_0) == 34 && sizeof(longbow::BlockQ4_0) == 18 &&
              sizeof(longbow::BlockQ4_1) == 20);
static_assert(alignof(longbow::BlockQ8_0) == 2 && alignof(longbow::BlockQ4_0) == 2 &&
              alignof(longbow::BlockQ4_1) == 2);
#endif
