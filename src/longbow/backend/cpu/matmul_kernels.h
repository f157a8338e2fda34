// Matmul micro-kernels shared by the scalar, AVX2 and NEON implementations (matmul_*.cpp).
//
// Quantized weights (Q4_0, Q4_1, Q8_0) are multiplied against activations quantized once per
// matmul into BlockQ16A (per 32 values: f32 scale, f32 scaled sum, int16 values), with integer dot
// products per block (16-bit multiplies, 32-bit sums). 16-bit rather than llama.cpp's 8-bit
// activations: the rounding error (amax / 65534) is far below the weight quantization error, so
// quantized-weight models keep the accuracy of f32 activations, for about 20 % more ALU work. Float weights (F32, F16, BF16) are multiplied against f32 activations.
//
// A tile kernel computes out[m * ldo] = dot(w_row, x_m) for up to MAX_MR activation rows at once,
// so one unpacked weight block serves several tokens during prefill. Every output accumulates in
// the same order whatever mr is, so a token gives bit-identical results alone or in a batch.
#pragma once

#include <cstddef>
#include <cstdint>

#include "longbow/core/dtype.h"

namespace longbow::cpu {

// One block of 32 activations quantized to int16: x[i] ~= d * qs[i]; s = d * sum(qs).
struct BlockQ16A {
  float d;
  float s;
  int16_t qs[QK];
};
static_assert(sizeof(BlockQ16A) == 72);
constexpr float Q16_MAX = 32767.f;

constexpr int MAX_MR = 8;  // activation rows per tile call (upper bound over kernel sets)

struct MatmulKernels {
  const char* name;
  int mr;  // activation rows per dot_q / dot_f call that this set runs best with (<= MAX_MR)
  // y (K/32,) = quantized x (K,) ; K a multiple of 32. Rounds to nearest-even, |q| <= 32767.
  void (*quantize_q16a)(const float* x, BlockQ16A* y, int64_t K);
  // out[m * ldo] = w_row · x_m for m < mr; w_row is one (K,) row in dtype t (Q4_0/Q4_1/Q8_0),
  // x_m = xq + m * ldx blocks.
  void (*dot_q)(DType t, const void* w_row, const BlockQ16A* xq, size_t ldx, int mr, int64_t K, float* out,
                size_t ldo);
  // Same for F32/F16/BF16 weights against f32 activations x_m = x + m * ldx; nullptr when the
  // implementation has no direct float kernel (the caller then dequantizes rows and uses RowKernels).
  void (*dot_f)(DType t, const void* w_row, const float* x, size_t ldx, int mr, int64_t K, float* out,
                size_t ldo);
};

const MatmulKernels& scalar_matmul_kernels();
const MatmulKernels* avx2_matmul_kernels();  // nullptr when not compiled in
const MatmulKernels* avx512_matmul_kernels();  // nullptr when not compiled in or the CPU lacks AVX-512 F/BW/VL
const MatmulKernels* neon_matmul_kernels();  // nullptr when not compiled in
// The active set: the widest SIMD set the CPU has (avx512 > avx2 on x86-64, neon on arm64);
// LONGBOW_CPU_SIMD=scalar forces the portable kernels, LONGBOW_CPU_SIMD=avx2 caps x86-64 at AVX2.
const MatmulKernels& matmul_kernels();

inline bool is_block_quant(DType t) { return t == DType::Q4_0 || t == DType::Q4_1 || t == DType::Q8_0; }

}  // namespace longbow::cpu
